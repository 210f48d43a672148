"""``python -m robnet.cli`` (what ``torchrun -m robnet.cli ...`` runs)."""

from robnet.cli.app import main

raise SystemExit(main())

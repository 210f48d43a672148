"""``python -m fspkit.cli`` (what ``torchrun -m fspkit.cli ...`` runs)."""

from fspkit.cli.app import main

raise SystemExit(main())

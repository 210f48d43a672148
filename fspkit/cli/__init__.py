"""The ``fspkit`` command line: ``fspkit demo | score | search STAGE | stats | plot``."""

from fspkit.cli.app import main

__all__ = ["main"]

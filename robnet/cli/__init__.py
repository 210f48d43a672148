"""The ``robnet`` command line: ``robnet demo | models | train | eval | search``."""

from robnet.cli.app import main

__all__ = ["main"]

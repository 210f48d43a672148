"""``fspkit``: FSP-based robustness analysis on top of robnet.

Commands: demo (the whole study on the bundled digits, minutes on a CPU) | score (per-cell FSP
distance of any model) | search STAGE (robnet's one-shot search plus FSP and proxies) | stats |
plot. Errors print one line and exit 1 (usage errors exit 2); --debug shows the traceback. The
flags speak the same language as ``robnet``'s (:mod:`robnet.cli.common`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from fspkit.cli.score import add_score_parser, cmd_score
from fspkit.cli.search import add_fsp_search_parser, cmd_search
from fspkit.cli.study import add_study_parsers, cmd_demo, cmd_plot, cmd_stats
from robnet.cli.common import main_entry, plain

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fspkit", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_study_parsers(sub)
    add_score_parser(sub)
    add_fsp_search_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``fspkit demo | score | search STAGE | stats | plot``; returns the exit status (no arguments: a
    short help naming the demo, exit 0)."""
    commands = {"score": cmd_score, "demo": cmd_demo, "search": cmd_search, "stats": cmd_stats, "plot": cmd_plot}
    return main_entry("fspkit", build_parser(), commands, argv)

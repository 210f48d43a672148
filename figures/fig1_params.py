"""Fig. 1: parameter count vs PGD accuracy of the evaluated candidates, one colour per conv budget.

    python figures/fig1_params.py RESULTS [--out fig1_params.png]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (robnet.search.records.read_records).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fspkit import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    return plots.draw_figure("fig1_params", records)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig1_params.png", draw=draw, seed_help=None)


if __name__ == "__main__":
    sys.exit(main())

"""Fig. 7 (Finding #3): per cell, the Spearman correlation of the negated FSP distance with PGD accuracy
(deep cells shaded, Holm-significant ones starred), and the median raw and relative distance of the
robust and non-robust candidates with order-statistic intervals.

    python figures/fig7_fsp_depth.py RESULTS [--out fig7_fsp_depth.png] [--stage after|before] [--seed 0]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (robnet.search.records.read_records).
Every number drawn comes from fspkit.stats.analyze of the records: what `fspkit stats` prints.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fspkit import plots, stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", choices=["after", "before"], default=None,
                        help="finetuned or inherited weights (default: after, when recorded)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    analysis = stats.analyze(records, rng=args.seed)
    return plots.draw_figure("fig7_fsp_depth", records, analysis=analysis, stage=args.stage)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig7_fsp_depth.png", draw=draw, extra_args=options)


if __name__ == "__main__":
    sys.exit(main())

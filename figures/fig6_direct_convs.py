"""Fig. 6 (Finding #2): mean PGD accuracy (95% t interval) per number of sep-convs on direct edges,
one series per conv budget (an unconstrained search: per conv-count range; cell-free: the mean over
cells, to the nearest 0.5), Spearman per series.

    python figures/fig6_direct_convs.py RESULTS [--out fig6_direct_convs.png] [--seed 0]

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


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    return plots.draw_figure("fig6_direct_convs", records, analysis=stats.analyze(records, rng=args.seed))


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig6_direct_convs.png", draw=draw)


if __name__ == "__main__":
    sys.exit(main())

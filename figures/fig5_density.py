"""Fig. 5 (Finding #1): density (paper Eq. 2) vs PGD accuracy coloured by conv count, the least-squares
line with its 95% band, the marginal Spearman and the within-conv-count one that decides the verdict.

    python figures/fig5_density.py RESULTS [--out fig5_density.png] [--seed 0]

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
    return plots.draw_figure("fig5_density", records, analysis=stats.analyze(records, rng=args.seed))


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig5_density.png", draw=draw)


if __name__ == "__main__":
    sys.exit(main())

"""Fig. 7 (FSP filter): PGD-accuracy histogram of all candidates and of those the FSP filter keeps,
with the filter's recall of the true top candidates and its exact p-value against a random filter.

    python figures/fig7_filtering.py RESULTS [--out fig7_filtering.png] [--keep 0.3] [--seed 0]

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
    parser.add_argument("--keep", type=float, default=plots.KEEP,
                        help="kept fraction of a simulated filter (default: %(default)s)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    return plots.draw_figure("fig7_filtering", records, analysis=stats.analyze(records, rng=args.seed, keep=args.keep))


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig7_filtering.png", draw=draw, extra_args=options)


if __name__ == "__main__":
    sys.exit(main())

"""The proxy table: each cheap proxy's and free baseline's sign-adjusted Spearman with final PGD
accuracy (95% CI; hollow when it does not beat the parameter count), its recall of the true top 10%
keeping 30% (interval, exact p-value against a random filter) and its cost per candidate.

    python figures/proxy_table.py RESULTS [--out proxy_table.png] [--keep 0.3] [--top 0.1] [--seed 0]

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
    parser.add_argument("--keep", type=float, default=0.3, help="kept fraction (default: %(default)s)")
    parser.add_argument("--top", type=float, default=0.1, help="the true top fraction (default: %(default)s)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    analysis = stats.analyze(records, rng=args.seed, keep=args.keep, top=args.top)
    return plots.draw_figure("proxy_table", records, analysis=analysis)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="proxy_table.png", draw=draw, extra_args=options)


if __name__ == "__main__":
    sys.exit(main())

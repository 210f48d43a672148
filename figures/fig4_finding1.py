"""Fig. 4 (Finding #1): t-SNE of the genotype bits of the most and least robust candidates (from 100
points on), the paper's classifier's weight per (edge, op) bit and the classifier's within strata of
equal conv count, with the positive share of identity and conv bits and its permutation p-value.

    python figures/fig4_finding1.py RESULTS [--out fig4_finding1.png] [--k K] [--seed 0]

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
    parser.add_argument("--k", type=int, default=None, help="group size of the paper's classifier (default: 30%% of "
                        "the evaluated candidates)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    return plots.draw_figure("fig4_finding1", records, analysis=stats.analyze(records, rng=args.seed, k=args.k))


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig4_finding1.png", draw=draw, extra_args=options)


if __name__ == "__main__":
    sys.exit(main())

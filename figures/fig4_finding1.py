"""Fig. 4 (Finding #1): t-SNE of the genotype bits of the top-k (robust) and bottom-k candidates by
PGD accuracy, and a logistic-regression classifier's weight per (edge, op) bit.

    python figures/fig4_finding1.py RESULTS [--out fig4_finding1.png] [--k K] [--seed 0]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (fspkit.stats.study.load_records).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fspkit import plots, stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--k", type=int, default=None, help="group size (default: 30%% of the evaluated candidates)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    rows = [r for r in records if r.get("bits") is not None and r.get("pgd_acc") is not None]
    result = stats.finding1(stats.list_column(rows, "bits"), stats.column(rows, "pgd_acc"), k=args.k, rng=args.seed)
    shared = len(result.weights) <= stats.BITS_PER_CELL
    fig = plots.new_figure(11.0, 6.2 if shared else 4.6)
    with plots.plot_style():
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.0 if shared else 1.6]})
        plots.plot_tsne(result, left)
        plots.plot_weights(result, right)
    return fig, result.n


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig4_finding1.png", draw=draw, extra_args=options,
                               seed_help="seed of the t-SNE and the cross-validation folds")


if __name__ == "__main__":
    sys.exit(main())

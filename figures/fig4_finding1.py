"""Fig. 4 (Finding #1): t-SNE of the genotype bits of the top-k (robust) and bottom-k candidates by
PGD accuracy, and a logistic-regression classifier's weight per (edge, op) bit.

    python figures/fig4_finding1.py RESULTS [--out fig4_finding1.png] [--k K] [--seed 0]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (fspkit.study.load_records).
"""

from __future__ import annotations

import argparse
import sys

from fspkit import plots, stats
from fspkit.study import load_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="run folder, .jsonl or .csv of candidate records")
    parser.add_argument("--out", default="fig4_finding1.png", help="output file: .png, .pdf or .svg")
    parser.add_argument("--k", type=int, default=None, help="group size (default: 30%% of the evaluated candidates)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the t-SNE and the cross-validation folds")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        rows = [r for r in records if r.get("bits") is not None and r.get("pgd_acc") is not None]
        result = stats.finding1(stats.list_column(rows, "bits"), stats.column(rows, "pgd_acc"), k=args.k,
                                rng=args.seed)
        shared = len(result.weights) <= stats.BITS_PER_CELL
        fig = plots.new_figure(11.0, 6.2 if shared else 4.6)
        with plots.plot_style():
            left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.0 if shared else 1.6]})
            plots.plot_tsne(result, left)
            plots.plot_weights(result, right)
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)), n=result.n)
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

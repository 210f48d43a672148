"""Fig. 5 (Finding #2): architecture density vs PGD accuracy, the least-squares line and its 95% band.

    python figures/fig5_density.py RESULTS [--out fig5_density.png] [--seed 0]

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
    parser.add_argument("--out", default="fig5_density.png", help="output file: .png, .pdf or .svg")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap interval of Spearman's rho")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        rows = [r for r in records if r.get("density") is not None and r.get("pgd_acc") is not None]
        density, pgd = stats.column(rows, "density"), stats.column(rows, "pgd_acc")
        fit = stats.finding2(density, pgd, rng=args.seed)
        fig = plots.new_figure(6.5, 5.4)
        with plots.plot_style():
            plots.plot_density(fit, density, pgd, fig.subplots())
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)), n=len(rows))
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fig. 6 (Finding #2): mean PGD accuracy per number of sep-convs on direct edges, one series per
conv budget (or, for an unconstrained search, per tercile of the candidates' own conv count;
cell-free: the mean over cells, to the nearest 0.5).

    python figures/fig6_direct_convs.py RESULTS [--out fig6_direct_convs.png] [--seed 0]

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
    parser.add_argument("--out", default="fig6_direct_convs.png", help="output file: .png, .pdf or .svg")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals of Spearman's rho")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        rows = [r for r in records if r.get("direct_convs") is not None and r.get("pgd_acc") is not None]
        keys, labels = plots.series(rows)
        result = stats.direct_convs_by_budget(plots.direct_convs(rows), keys, stats.column(rows, "pgd_acc"),
                                              rng=args.seed)
        fig = plots.new_figure(6.5, 5.4)
        with plots.plot_style():
            plots.plot_direct_convs(result, fig.subplots(), labels=labels)
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)), n=len(rows))
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

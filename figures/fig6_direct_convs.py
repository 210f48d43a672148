"""Fig. 6 (Finding #2): mean PGD accuracy per number of sep-convs on direct edges, one series per
conv budget (or, for an unconstrained search, per tercile of the candidates' own conv count;
cell-free: the mean over cells, to the nearest 0.5).

    python figures/fig6_direct_convs.py RESULTS [--out fig6_direct_convs.png] [--seed 0]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (fspkit.stats.study.load_records).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fspkit import plots, stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    rows = [r for r in records if r.get("direct_convs") is not None and r.get("pgd_acc") is not None]
    keys, labels = plots.series(rows)
    result = stats.direct_convs_by_budget(plots.direct_convs(rows), keys, stats.column(rows, "pgd_acc"), rng=args.seed)
    fig = plots.new_figure(6.5, 5.4)
    with plots.plot_style():
        plots.plot_direct_convs(result, fig.subplots(), labels=labels)
    return fig, len(rows)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig6_direct_convs.png", draw=draw,
                               seed_help="seed of the bootstrap intervals of Spearman's rho")


if __name__ == "__main__":
    sys.exit(main())

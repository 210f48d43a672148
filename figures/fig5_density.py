"""Fig. 5 (Finding #2): architecture density vs PGD accuracy, the least-squares line and its 95% band.

    python figures/fig5_density.py RESULTS [--out fig5_density.png] [--seed 0]

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
    rows = [r for r in records if r.get("density") is not None and r.get("pgd_acc") is not None]
    density, pgd = stats.column(rows, "density"), stats.column(rows, "pgd_acc")
    fit = stats.finding2(density, pgd, rng=args.seed)
    fig = plots.new_figure(6.5, 5.4)
    with plots.plot_style():
        plots.plot_density(fit, density, pgd, fig.subplots())
    return fig, len(rows)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig5_density.png", draw=draw,
                               seed_help="seed of the bootstrap interval of Spearman's rho")


if __name__ == "__main__":
    sys.exit(main())

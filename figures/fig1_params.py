"""Fig. 1: parameter count vs PGD accuracy of the evaluated candidates, one colour per conv budget.

    python figures/fig1_params.py RESULTS [--out fig1_params.png]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (fspkit.stats.study.load_records).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fspkit import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    rows = [r for r in records if r.get("params") is not None and r.get("pgd_acc") is not None]
    fig = plots.new_figure(5.5, 4.2)
    with plots.plot_style():
        plots.plot_params(rows, fig.subplots())
    return fig, len(rows)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig1_params.png", draw=draw)


if __name__ == "__main__":
    sys.exit(main())

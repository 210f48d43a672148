"""Fig. 3: PGD accuracy with the inherited supernet weights vs after finetuning (with y = x), and
the two distributions overlaid.

    python figures/fig3_finetune.py RESULTS [--out fig3_finetune.png]

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
    fig = plots.new_figure(10.0, 4.2)
    with plots.plot_style():
        left, right = fig.subplots(1, 2)
        plots.plot_finetune(records, left)
        plots.plot_finetune_hist(records, right)
    return fig, sum(r.get("pgd_acc_before_finetune") is not None for r in records)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig3_finetune.png", draw=draw)


if __name__ == "__main__":
    sys.exit(main())

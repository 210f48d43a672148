"""Fig. 7 (FSP filter): the PGD-accuracy distribution of all candidates and of those the FSP filter
keeps (the run's own filter, or one simulated at --keep on an unfiltered run).

    python figures/fig7_filtering.py RESULTS [--out fig7_filtering.png] [--keep 0.3]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (fspkit.stats.study.load_records).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fspkit import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep", type=float, default=plots.KEEP,
                        help="kept fraction of a simulated filter (default: %(default)s)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    filtered = any(r.get("filtered_out") for r in records)
    score = ("fsp_deep_before_finetune" if any(r.get("fsp_deep_before_finetune") is not None for r in records)
             else "fsp_before_finetune")
    needs = ("pgd_acc_before_finetune",) if filtered else (score, "pgd_acc")
    fig = plots.new_figure(6.5, 4.4)
    with plots.plot_style():
        plots.plot_filtering(records, fig.subplots(), keep=args.keep)
    return fig, sum(all(r.get(c) is not None for c in needs) for r in records)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig7_filtering.png", draw=draw, extra_args=options)


if __name__ == "__main__":
    sys.exit(main())

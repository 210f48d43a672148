"""Fig. 7 (Finding #3): FSP distance per cell depth of the robust (top-k by PGD accuracy) and
non-robust (bottom-k) candidates, raw and relative (||G(x) - G(x_adv)||^2 / ||G(x)||^2).

    python figures/fig7_fsp_depth.py RESULTS [--out fig7_fsp_depth.png] [--stage after|before] [--k K]

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
    parser.add_argument("--stage", choices=["after", "before"], default=None,
                        help="finetuned or inherited weights (default: after, when recorded)")
    parser.add_argument("--k", type=int, default=None, help="group size (default: 30%% of the candidates)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    stage = args.stage or ("after" if any(r.get("fsp") is not None for r in records) else "before")
    raw, _, _, pgd, _ = stats.STAGES[stage]
    fig = plots.new_figure(11.0, 4.4)
    plots.plot_fsp_depth(records, fig, stage=stage, k=args.k)
    return fig, sum(r.get(raw) is not None and r.get(pgd) is not None for r in records)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig7_fsp_depth.png", draw=draw, extra_args=options)


if __name__ == "__main__":
    sys.exit(main())

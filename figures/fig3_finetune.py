"""Fig. 3: PGD accuracy with the inherited supernet weights vs after finetuning, and both distributions.

    python figures/fig3_finetune.py RESULTS [--out fig3_finetune.png]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (robnet.search.records.read_records).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from fspkit import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    return plots.draw_figure("fig3_finetune", records)


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="fig3_finetune.png", draw=draw, seed_help=None)


if __name__ == "__main__":
    sys.exit(main())

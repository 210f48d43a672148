"""The proxy table as a figure: each cheap robustness proxy's Spearman with final PGD accuracy
(95% CI), its recall of the true top 10% when keeping 30%, and its cost per candidate.

    python figures/proxy_table.py RESULTS [--out proxy_table.png] [--keep 0.3] [--top 0.1] [--seed 0]

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
    parser.add_argument("--keep", type=float, default=0.3, help="kept fraction (default: %(default)s)")
    parser.add_argument("--top", type=float, default=0.1, help="the true top fraction (default: %(default)s)")


def draw(records: list[dict[str, Any]], args: argparse.Namespace) -> tuple[Figure, int]:
    present = [p for p, (col, _, _) in stats.PROXIES.items() if stats.has_column(records, col)]
    table = stats.proxy_table(records, present, keep=args.keep, top=args.top, rng=args.seed)
    filtered = sum(bool(r.get("filtered_out")) for r in records)
    note = (f"the FSP filter left out {filtered} candidates: every proxy is ranked among the finetuned ones "
            "only" if filtered else None)
    fig = plots.new_figure(11.0, 1.6 + 0.45 * len(table.rows) + (0.3 if note else 0.0))
    plots.plot_proxies(table, fig, note=note)
    return fig, table.rows[0].quality.n if table.rows else 0


def main(argv: list[str] | None = None) -> int:
    return plots.figure_script(argv, doc=__doc__ or "", default_out="proxy_table.png", draw=draw, extra_args=options,
                               seed_help="seed of the bootstrap intervals")


if __name__ == "__main__":
    sys.exit(main())

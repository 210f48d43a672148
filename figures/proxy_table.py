"""The proxy table as a figure: each cheap robustness proxy's Spearman with final PGD accuracy
(95% CI), its recall of the true top 10% when keeping 30%, and its cost per candidate.

    python figures/proxy_table.py RESULTS [--out proxy_table.png] [--keep 0.3] [--top 0.1] [--seed 0]

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
    parser.add_argument("--out", default="proxy_table.png", help="output file: .png, .pdf or .svg")
    parser.add_argument("--keep", type=float, default=0.3, help="kept fraction (default: %(default)s)")
    parser.add_argument("--top", type=float, default=0.1, help="the true top fraction (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        present = [p for p, (col, _, _) in stats.PROXIES.items() if stats.has_column(records, col)]
        table = stats.proxy_table(records, present, keep=args.keep, top=args.top, rng=args.seed)
        filtered = sum(bool(r.get("filtered_out")) for r in records)
        note = (f"the FSP filter left out {filtered} candidates: every proxy is ranked among the finetuned ones "
                "only" if filtered else None)
        fig = plots.new_figure(11.0, 1.6 + 0.45 * len(table.rows) + (0.3 if note else 0.0))
        plots.plot_proxies(table, fig, note=note)
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)),
                          n=table.rows[0].quality.n if table.rows else 0)
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

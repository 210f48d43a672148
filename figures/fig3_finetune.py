"""Fig. 3: PGD accuracy with the inherited supernet weights vs after finetuning (with y = x), and
the two distributions overlaid.

    python figures/fig3_finetune.py RESULTS [--out fig3_finetune.png]

RESULTS: a run folder, or a .jsonl / .csv of candidate records (fspkit.study.load_records).
"""

from __future__ import annotations

import argparse
import sys

from fspkit import plots
from fspkit.study import load_records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="run folder, .jsonl or .csv of candidate records")
    parser.add_argument("--out", default="fig3_finetune.png", help="output file: .png, .pdf or .svg")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        n = sum(r.get("pgd_acc_before_finetune") is not None for r in records)
        fig = plots.new_figure(10.0, 4.2)
        with plots.plot_style():
            left, right = fig.subplots(1, 2)
            plots.plot_finetune(records, left)
            plots.plot_finetune_hist(records, right)
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)), n=n)
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fig. 7 (FSP filter): the PGD-accuracy distribution of all candidates and of those the FSP filter
keeps (the run's own filter, or one simulated at --keep on an unfiltered run).

    python figures/fig7_filtering.py RESULTS [--out fig7_filtering.png] [--keep 0.3]

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
    parser.add_argument("--out", default="fig7_filtering.png", help="output file: .png, .pdf or .svg")
    parser.add_argument("--keep", type=float, default=plots.KEEP,
                        help="kept fraction of a simulated filter (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        filtered = any(r.get("filtered_out") for r in records)
        score = ("fsp_deep_before_finetune" if any(r.get("fsp_deep_before_finetune") is not None for r in records)
                 else "fsp_before_finetune")
        needs = ("pgd_acc_before_finetune",) if filtered else (score, "pgd_acc")
        n = sum(all(r.get(c) is not None for c in needs) for r in records)
        fig = plots.new_figure(6.5, 4.4)
        with plots.plot_style():
            plots.plot_filtering(records, fig.subplots(), keep=args.keep)
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)), n=n)
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

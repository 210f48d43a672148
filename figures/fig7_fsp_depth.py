"""Fig. 7 (Finding #3): FSP distance per cell depth of the robust (top-k by PGD accuracy) and
non-robust (bottom-k) candidates, raw and relative (||G(x) - G(x_adv)||^2 / ||G(x)||^2).

    python figures/fig7_fsp_depth.py RESULTS [--out fig7_fsp_depth.png] [--stage after|before] [--k K]

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
    parser.add_argument("--out", default="fig7_fsp_depth.png", help="output file: .png, .pdf or .svg")
    parser.add_argument("--stage", choices=["after", "before"], default=None,
                        help="finetuned or inherited weights (default: after, when recorded)")
    parser.add_argument("--k", type=int, default=None, help="group size (default: 30%% of the candidates)")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        stage = args.stage or ("after" if any(r.get("fsp") is not None for r in records) else "before")
        raw, _, _, pgd, _ = stats.STAGES[stage]
        n = sum(r.get(raw) is not None and r.get(pgd) is not None for r in records)
        fig = plots.new_figure(11.0, 4.4)
        plots.plot_fsp_depth(records, fig, stage=stage, k=args.k)
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)), n=n)
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fig. 1: parameter count vs PGD accuracy of the evaluated candidates, one colour per conv budget.

    python figures/fig1_params.py RESULTS [--out fig1_params.png]

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
    parser.add_argument("--out", default="fig1_params.png", help="output file: .png, .pdf or .svg")
    args = parser.parse_args(argv)
    try:
        records = load_records(args.results)
        rows = [r for r in records if r.get("params") is not None and r.get("pgd_acc") is not None]
        fig = plots.new_figure(5.5, 4.2)
        with plots.plot_style():
            plots.plot_params(rows, fig.subplots())
        plots.add_caption(fig, plots.run_context(args.results, n=len(records)), n=len(rows))
        print(plots.save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

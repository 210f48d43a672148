"""The statistics at NAS-benchmark scale: `fspkit stats` on 100,000 candidate records.

Side by side in one run (results: ``benchmarks/results/bench_stats.md``):

1. ``fspkit.stats.analyze`` on 5,000 synthetic records (``tests/_synthetic.make_records``: six cells,
   budgets 4/7/10, FSP and proxy columns) with the defaults, against the same analysis resampling at
   every n (``resample_max_n=None``) with t-SNE and the classifier on every point (the caps lifted):
   the cost the caps remove, where both can still be run.
2. ``fspkit stats FILE.jsonl --json OUT`` on 100,000 records in a fresh process: wall time and peak
   resident memory (the acceptance: about a minute, under 2 GB), and ``analyze`` alone in this
   process.

Timings are never test assertions. Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_stats.py               # ~5 min on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: tests._synthetic
from _machine import describe

from fspkit import stats
from fspkit.stats import classifier
from robnet.io.results import append_jsonl
from tests._synthetic import make_records


def _analyze(records: list[dict], **kwargs: object) -> float:
    t0 = time.perf_counter()
    stats.analyze(records, **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - t0


def part_caps(n: int) -> None:
    records = make_records(n, seed=0, cells=6, budgets=(4, 7, 10))
    ours = _analyze(records)
    caps = (classifier.TSNE_MAX_POINTS, classifier.CLASSIFIER_MAX_POINTS)
    classifier.TSNE_MAX_POINTS = classifier.CLASSIFIER_MAX_POINTS = n + 1
    try:
        naive = _analyze(records, resample_max_n=None)
    finally:
        classifier.TSNE_MAX_POINTS, classifier.CLASSIFIER_MAX_POINTS = caps
    print(f"\n## 1. `analyze` on {n:,} records: the defaults vs resampling everything, no caps\n")
    print("| analysis | seconds | ratio |")
    print("|---|---:|---:|")
    print(f"| defaults (resample_max_n {stats.RESAMPLE_MAX_N}, t-SNE on at most {caps[0]:,} points, the "
          f"classifier on at most {caps[1]:,}) | {ours:.1f} | 1.00 |")
    print(f"| resampling at every n, t-SNE and classifier on all {n:,} points | {naive:.1f} | {naive / ours:.1f}x |")


def part_scale(n: int, tmp: Path) -> None:
    records = make_records(n, seed=0, cells=6, budgets=(4, 7, 10))
    path = tmp / "records.jsonl"
    append_jsonl(path, records)
    alone = _analyze(records)
    del records
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fspkit.cli", "stats", str(path), "--json", str(tmp / "stats.json"),
                    "--quiet"], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux: the largest child so far
    settings = json.loads((tmp / "stats.json").read_text())["settings"]
    print(f"\n## 2. `fspkit stats` on {n:,} records ({path.stat().st_size / 2**20:.0f} MiB of JSON Lines)\n")
    print("| what | seconds | peak memory |")
    print("|---|---:|---:|")
    print(f"| `fspkit stats FILE.jsonl --json OUT` (a fresh process: read, check, analyse, print, write) | "
          f"{wall:.1f} | {max(peak, before) / 2**20:.2f} GiB |")
    print(f"| `fspkit.stats.analyze(records)` alone, records in memory | {alone:.1f} | |")
    print(f"\nrecorded in stats.json: resample_max_n {settings['resample_max_n']}, tsne_max_points "
          f"{settings['tsne_max_points']}, classifier_max_points {settings['classifier_max_points']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--caps-n", type=int, default=5_000, help="records of part 1")
    p.add_argument("--n", type=int, default=100_000, help="records of part 2")
    args = p.parse_args(argv)
    import torch

    print("# bench_stats\n")
    print(describe(torch.device("cpu")))
    part_caps(args.caps_n)
    with tempfile.TemporaryDirectory() as tmp:
        part_scale(args.n, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The one-shot search's cost: processes vs threads, successive halving vs full finetuning, the demo's
wall time, and the paper-scale estimate.

Five parts in one run, each measured side by side (results: ``benchmarks/results/bench_search.md``):

1. **Processes.** ``fspkit search all --preset cpu-demo --candidates 12`` with ``--procs 1`` and with
   the default (one process per core, each with one thread), into two fresh folders: wall time,
   the ratio, and a check that both sampled the same candidates (and, from the same supernet, give
   the same records: the second folder's finetune stage is rerun on the first folder's supernet), and
   the bound on the supernet stage: in one process, a supernet step at the per-process batch against
   one at the whole batch (no data-parallel split can do better than that ratio).
2. **Successive halving.** On one trained cpu-demo supernet, the same candidates finetuned for
   ``--epochs`` (default 4) epochs with ``--finetune-schedule full`` and with ``halving``: the
   candidate-epochs spent, the wall time, how many of ``full``'s top 10% the halving schedule also
   ranks in its top 10%, and, as the yardstick, the test-retest noise of the measurement (Spearman
   of ``pgd_acc_half`` vs ``pgd_acc_retest``) and the top-10% overlap two equally noisy
   measurements would have.
3. **The demo.** ``fspkit demo`` (the default settings) from scratch: wall time, against its promise
   of under 10 minutes on 2 idle CPU cores.
4. **Under load.** The cpu-demo supernet (``--supernet-epochs 3``) on 1 process x 2 threads (the
   old default), 1 x 1 and the default (one process per core x 1 thread), on idle cores and with
   a busy-looping process beside it: images/s, and how much the load slowed each.
5. **The ``--preset paper`` estimate** on one GPU from per-step times recorded on an H200
   (``benchmarks/results/bench_supernet.md``), for both schedules and with the FSP filter: an
   estimate, no paper-scale search is run.

Timings are never test assertions. Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_search.py                 # ~20 min on 2 CPU cores
    OMP_NUM_THREADS=1 python benchmarks/bench_search.py --skip-demo     # parts 1, 2, 4
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

import robnet.search as search
from fspkit.cli import main as fspkit_main
from fspkit.search import FSPSearchConfig, plugins
from robnet.models.genotype import sample
from robnet.models.supernet import build_supernet
from robnet.train.loop import adversarial_step
from robnet.utils import default_procs, resolve_device


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    if fspkit_main(argv):
        raise SystemExit(f"`fspkit {' '.join(argv)}` failed")
    return time.perf_counter() - t0


def candidates_of(run: Path) -> list[str]:
    return [c["genotype"] for c in json.loads((run / "candidates.json").read_text())["candidates"]]


def stable(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["id"]: {k: v for k, v in r.items() if not k.startswith("seconds") and k not in ("versions", "rank")}
            for r in records}


# --------------------------------------------------------------------------------------- part 1
def part_processes(tmp: Path, n: int) -> None:
    procs = default_procs("cpu")
    base = ["search", "all", "--preset", "cpu-demo", "--candidates", str(n), "--quiet"]
    one = wall([*base, "--out", str(tmp / "p1"), "--procs", "1"])
    many = wall([*base, "--out", str(tmp / "pn")])
    same_candidates = candidates_of(tmp / "p1") == candidates_of(tmp / "pn")
    # from the same supernet, the same records: finetune p1's supernet again on `procs` processes
    again = tmp / "again"
    shutil.copytree(tmp / "p1", again)
    for f in [*again.glob("*.rank*.jsonl"), again / "selection.json"]:
        f.unlink(missing_ok=True)
    wall(["search", "finetune", "--out", str(again), "--quiet"])
    same_records = stable(search.read_records(again).records) == stable(search.read_records(tmp / "p1").records)
    supernet = [_supernet_seconds(tmp / d) for d in ("p1", "pn")]
    rest = [one - supernet[0], many - supernet[1]]
    print("\n## 1. Processes: `fspkit search all --preset cpu-demo --candidates", n, "`\n")
    print("| processes x threads | wall (s) | supernet epochs (s) | the rest (s) | ratio to 1 process |")
    print("|---|---:|---:|---:|---:|")
    print(f"| 1 x 1 | {one:.0f} | {supernet[0]:.0f} | {rest[0]:.0f} | 1.00 |")
    print(f"| {procs} x 1 (default) | {many:.0f} | {supernet[1]:.0f} | {rest[1]:.0f} | {many / one:.2f} |")
    print(f"\nper stage: the supernet's epochs {supernet[1] / supernet[0]:.2f}x, the rest (start-up, candidates, "
          f"selection) {rest[1] / rest[0]:.2f}x. Same candidates sampled: {same_candidates}; from the same supernet, "
          f"{procs} processes give the 1-process records field for field (timings, versions and the writing rank "
          f"aside): {same_records}")
    batch = search.preset_config("cpu-demo").supernet.batch_size
    half, full = _step_bound(batch, procs)
    print(f"\nthe bound on the supernet stage: in one process, with no communication, a cpu-demo supernet step at "
          f"the per-process batch ({batch // procs}) takes {half * 1e3:.0f} ms and one at the whole batch ({batch}) "
          f"{full * 1e3:.0f} ms (medians): {half / full:.2f}x. No data-parallel split of this supernet over {procs} "
          "processes can take less than that share of the 1-process time.")


def _step_bound(batch: int, procs: int, reps: int = 12, steps: int = 5) -> tuple[float, float]:
    """Median seconds of a cpu-demo supernet step (PGD attack + update) at ``batch // procs`` and at ``batch``,
    timed in this process, interleaved (the same random architectures for both)."""
    cfg = search.preset_config("cpu-demo")
    torch.manual_seed(0)
    net = build_supernet(C=cfg.C, layers=cfg.layers, in_channels=1).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = random.Random(0)
    archs = [sample(rng, cell_free=False, layers=cfg.layers, budget=None) for _ in range(steps)]
    times: dict[int, list[float]] = {batch // procs: [], batch: []}
    for _ in range(reps):
        for size, out in times.items():
            x = torch.rand(size, 1, 8, 8).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 10, (size,))
            t0 = time.perf_counter()
            for g in archs:
                adversarial_step(net, net.bind(g), opt, x, y, config=cfg.supernet, noise=torch.rand_like(x) * 2 - 1,
                                 amp=False, args=(g,))
            out.append((time.perf_counter() - t0) / steps)
    return statistics.median(times[batch // procs]), statistics.median(times[batch])


def _supernet_seconds(run: Path) -> float:
    rows = (run / "supernet" / "log.csv").read_text().splitlines()[1:]
    header = (run / "supernet" / "log.csv").read_text().splitlines()[0].split(",")
    return sum(float(r.split(",")[header.index("seconds")]) for r in rows)


# --------------------------------------------------------------------------------------- part 2
def part_halving(tmp: Path, n: int, epochs: int) -> None:
    cfg = search.preset_config("cpu-demo", candidates=n, retest=None)
    cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, epochs=epochs))
    plugin = FSPSearchConfig().plugin()
    scorer, candidate_filter = plugins(plugin)
    base = tmp / "full"
    search.run(base, cfg, stages=("supernet",), scorer=scorer, candidate_filter=candidate_filter,
               plugin=plugin, progress=False)  # the folder records the plug-in the stages use
    results, seconds = {}, {}
    for schedule in ("full", "halving"):
        run = tmp / schedule
        if schedule != "full":
            run.mkdir()
            shutil.copytree(base / "supernet", run / "supernet")
        t0 = time.perf_counter()
        results[schedule] = search.run(run, dataclasses.replace(cfg, finetune_schedule=schedule),
                                       stages=("sample", "finetune"), scorer=scorer, candidate_filter=candidate_filter,
                                       plugin=plugin, progress=False).records
        seconds[schedule] = time.perf_counter() - t0
    full, halving = results["full"], results["halving"]
    spent = {k: sum(r["finetune_epochs"] for r in v) for k, v in results.items()}
    k = max(1, math.ceil(0.1 * n))
    top_full = _top(full, k)
    kept = len(top_full & _top(halving, k))
    half, retest = (np.array([r[c] for r in full]) for c in ("pgd_acc_half", "pgd_acc_retest"))
    rho = sps.spearmanr(half, retest).statistic
    noise_overlap = _noise_overlap(full, k)
    print(f"\n## 2. Successive halving vs full finetuning (cpu-demo, {n} candidates, K = {epochs} epochs, the same "
          "supernet and candidates)\n")
    print("| schedule | candidate-epochs | finetune + evaluation wall (s) |")
    print("|---|---:|---:|")
    for s in ("full", "halving"):
        print(f"| {s} | {spent[s]} | {seconds[s]:.0f} |")
    print(f"\nhalving spent {spent['halving'] / spent['full']:.2f}x the candidate-epochs of full and "
          f"{seconds['halving'] / seconds['full']:.2f}x its wall time. Of full's top {k} (10%) by PGD accuracy, "
          f"halving's top {k} holds {kept}.")
    print(f"yardstick, the measurement's own noise: test-retest Spearman {rho:+.2f} (two halves of the "
          f"{full[0]['n_eval']} validation images, fresh attack seeds); two equally noisy measurements of full's "
          f"candidates share {noise_overlap:.1f} of {k} top-10% candidates on average (parametric bootstrap). "
          f"A difference inside that is no difference.")


def _top(records: list[dict[str, Any]], k: int) -> set[int]:
    ranked = sorted((r for r in records if r["pgd_acc"] is not None), key=lambda r: (-r["pgd_acc"], r["id"]))
    return {r["id"] for r in ranked[:k]}


def _noise_overlap(records: list[dict[str, Any]], k: int, draws: int = 2000) -> float:
    rng = np.random.default_rng(0)
    acc = np.array([r["pgd_acc"] for r in records])
    n = np.array([r["n_eval"] for r in records])
    a = rng.binomial(n, acc, size=(draws, len(acc))) / n
    b = rng.binomial(n, acc, size=(draws, len(acc))) / n
    ta = np.argsort(-a, axis=1)[:, :k]
    tb = np.argsort(-b, axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) for x, y in zip(ta, tb, strict=True)]))


# --------------------------------------------------------------------------------------- part 3
def part_demo(out: Path) -> None:
    seconds = wall(["demo", "--out", str(out), "--quiet"])
    stats = json.loads((out / "stats.json").read_text())
    print("\n## 3. The demo: `fspkit demo` from scratch (default settings)\n")
    print(f"wall time {seconds / 60:.1f} min ({seconds:.0f} s) for {stats.get('n_records')} candidates, "
          f"{default_procs('cpu')} processes x 1 thread; the promise: under 10 minutes on 2 idle CPU cores.")


# --------------------------------------------------------------------------------------- part 4
def part_load(tmp: Path) -> None:
    settings = [("1 x 2 (the old default)", ["--procs", "1", "--threads", "2"]),
                ("1 x 1", ["--procs", "1", "--threads", "1"]),
                (f"{default_procs('cpu')} x 1 (the default)", [])]
    rates: dict[tuple[str, bool], float] = {}
    for loaded in (False, True):
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
        try:
            for i, (name, flags) in enumerate(settings):
                run = tmp / f"load{int(loaded)}_{i}"
                wall(["search", "supernet", "--preset", "cpu-demo", "--supernet-epochs", "3", "--out", str(run),
                      "--quiet", *flags])
                rows = list(csv.DictReader((run / "supernet" / "log.csv").open()))
                rates[name, loaded] = statistics.median(float(r["images_per_s"]) for r in rows)
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
    print("\n## 4. Under load: the cpu-demo supernet (3 epochs), idle vs one busy-looping process beside it\n")
    print("| processes x threads | idle (images/s) | loaded (images/s) | slowdown |")
    print("|---|---:|---:|---:|")
    for name, _ in settings:
        idle, busy_rate = rates[name, False], rates[name, True]
        print(f"| {name} | {idle:.0f} | {busy_rate:.0f} | {idle / busy_rate:.2f}x |")
    print("\nimages/s is the median epoch's, over every process (log.csv). A load that takes one of the cores "
          "should cost about what it takes: 2x at most on 2 cores.")


# --------------------------------------------------------------------------------------- part 5
# benchmarks/results/bench_supernet.md, NVIDIA H200: supernet PGD-7 training steps at batch 128 (s/step) of seven
# random architectures; fp32 costs what bf16 does there (the step is launch-bound).
H200_STEP_128 = (1.266, 0.988, 1.019, 1.373, 0.753, 1.068, 0.929)
TRAIN_UNITS, EVAL_UNITS = 24, 23  # fwd = 1, bwd = 2: PGD-7 + update = 24 per image; fwd + PGD-7 + fwd = 23


def part_paper() -> None:
    p = search.preset_config("paper")
    step = statistics.median(H200_STEP_128)
    steps = 45_000 // p.supernet.batch_size  # CIFAR-10 minus the 10% validation split, last batch dropped
    epoch = steps * step
    eval_pass = math.ceil(5_000 / 128) * step * EVAL_UNITS / TRAIN_UNITS  # 5,000 validation images
    n, k = p.candidates, p.finetune.epochs
    h = 1 / 3600
    sn = p.supernet.epochs * epoch
    rungs = [n]
    while len(rungs) < k:
        rungs.append(math.ceil(rungs[-1] / 2))
    schedules = {"full": n * k, "halving": sum(rungs)}
    print("\n## 5. Estimated `--preset paper` cost on one H200 (derived from recorded step times, NOT measured)\n")
    print(f"a supernet or candidate epoch: {steps} steps x {step:.3f} s (median H200 step, batch 128) = "
          f"{epoch / 60:.1f} min; an evaluation pass over 5,000 validation images: {eval_pass:.0f} s; every "
          "candidate is evaluated before and after finetuning, the retest adds half a pass for 10 of them, FSP "
          "(fspkit) replays the evaluation's adversarial batches (one extra forward)")
    print("\n| search | supernet (h) | candidates (h) | whole (GPU-hours) |")
    print("|---|---:|---:|---:|")
    for name, epochs in schedules.items():
        halving_evals = sum(rungs) if name == "halving" else 0  # one evaluation per rung, beside the final ones
        cand = epochs * epoch + 2 * n * eval_pass + halving_evals * eval_pass
        print(f"| `--finetune-schedule {name}` ({epochs:,} candidate-epochs) | {sn * h:.0f} | {cand * h:.0f} | "
              f"{(sn + cand) * h:.0f} |")
        kept = math.ceil(0.3 * n)
        filt_epochs = kept * k if name == "full" else sum(_rungs(kept, k))
        filt = filt_epochs * epoch + (n + kept) * eval_pass
        print(f"| ... with `--fsp-keep 0.3` ({filt_epochs:,} candidate-epochs) | {sn * h:.0f} | {filt * h:.0f} | "
              f"{(sn + filt) * h:.0f} |")
    print("\nthe paper: ~560 GPU-hours for its supernet alone (32 GTX 1080Ti x 17.5 h). Goal: 48 GPU-hours for the "
          "whole search.")


def _rungs(n: int, k: int) -> list[int]:
    out = [n]
    while len(out) < k:
        out.append(math.ceil(out[-1] / 2))
    return out


PARTS = ("procs", "halving", "demo", "load", "paper")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", type=int, default=12, help="candidates of part 1")
    p.add_argument("--halving-candidates", type=int, default=60, help="candidates of part 2")
    p.add_argument("--epochs", type=int, default=4,
                   help="finetuning epochs K of part 2 (4: the smallest K at which keeping the better half can "
                        "spend at most half of full's candidate-epochs, (2 - 2**(1-K)) / K)")
    p.add_argument("--skip-demo", action="store_true")
    p.add_argument("--demo-out", type=Path, default=None,
                   help="keep part 3's demo in this new folder (default: a temporary one, removed)")
    p.add_argument("--only", choices=PARTS, nargs="+", default=PARTS, help="run only these parts (default: all)")
    args = p.parse_args(argv)
    print("# bench_search\n")
    print(describe(resolve_device("cpu")))
    parts = set(args.only)
    with tempfile.TemporaryDirectory() as tmp:
        if "procs" in parts:
            part_processes(Path(tmp) / "procs", args.candidates)
        if "halving" in parts:
            part_halving(Path(tmp) / "halving", args.halving_candidates, args.epochs)
        if "demo" in parts and not args.skip_demo:
            part_demo(args.demo_out or Path(tmp) / "demo")
        if "load" in parts:
            part_load(Path(tmp))
    if "paper" in parts:
        part_paper()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

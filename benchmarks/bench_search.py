"""The one-shot search's cost: candidate throughput, the paper-scale estimate, the FSP filter's value.

Three parts in one run (Performance):

1. **Candidate throughput on the cpu-demo search.** The search runs first, exactly as
   ``fspkit search all --preset cpu-demo --fsp-keep 1 --out RUN`` does (``robnet.cli.search.run_search``
   with fspkit's FSP scorer and filter, keep 1: every candidate is finetuned, so the truth is known
   for part 3). Then ``--timing-candidates`` of its candidates (ids 0.., so every budget is hit) are
   replayed step by step with the search's own functions and seeds, each step timed alone (wall
   clock and this process's CPU time): inherit (``supernet.extract``), BN recalibration, PGD
   evaluation before finetuning, FSP score, proxies, the second pass's extract, the K-epoch
   finetune, the final evaluation and the FSP score after finetuning. The replay must reproduce
   the search's recorded accuracies and FSP distances (checked and printed). Beside it, the naive
   alternative the paper implies, the cost the one-shot search avoids: ``--scratch-candidates``
   candidates trained from a fresh initialisation for as many epochs as the supernet saw (the
   supernet's recipe), then evaluated the same way. Ratios naive / one-shot per candidate and for
   the whole search (supernet included).
2. **The ``--preset paper`` cost on one GPU**, derived from per-step times: the H200 steps recorded
   in ``benchmarks/results/bench_supernet.md`` (C=36, 20 cells; batch 128 and 512), or with
   ``--paper-steps N`` on a GPU, steps measured now on that GPU. Every assumption is printed; it is
   an estimate, no paper-scale search is run.
3. **The FSP filter's value**: from the before-finetune scores of the keep-1 run, the share of the
   true top-10% candidates (by final PGD accuracy) that ``--fsp-keep 0.3`` would have kept
   (``fspkit.stats.findings.filter_quality``; cross-checked against ``fspkit.search.fsp_filter``), the same
   for each proxy and for a random filter (expected 0.3, also simulated), and the compute saved.

On CUDA every timed section ends with ``torch.cuda.synchronize`` and the GPU's name is printed.
Timings are never test assertions; results go to ``benchmarks/results/bench_search.md``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_search.py            # ~8 min on 2 CPU cores
    OMP_NUM_THREADS=1 python benchmarks/bench_search.py --quick    # 12 candidates, ~2.5 min
    python benchmarks/bench_search.py --device cuda --paper-steps 5   # also measures paper-scale steps
        [--run RUN_DIR] [--timing-candidates 6] [--scratch-candidates 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from fspkit import score
from fspkit.proxies import ProxyConfig, compute_proxies
from fspkit.search import FSPSearchConfig, fsp_filter
from fspkit.stats.findings import filter_quality, proxy_table
from robnet.attacks.spec import make_attack, parse_attack
from robnet.data.loader import DeviceLoader
from robnet.io.results import derive_seed
from robnet.models.genotype import Genotype
from robnet.models.network import build_robnet
from robnet.search.candidate import accuracy, recalibrate_bn
from robnet.search.rundir import SearchDir
from robnet.train.finetune import finetune

T = TypeVar("T")
Batches = list[tuple[torch.Tensor, torch.Tensor]]

# The one-shot candidate's own steps (what `robnet search` pays per candidate) and fspkit's extras.
ONE_SHOT = ("extract", "bn_recalibration", "pgd_before", "extract_again", "finetune", "final_eval")
FSPKIT = ("fsp_before", "proxies", "fsp_after")
LABELS = {"extract": "inherit: supernet.extract", "bn_recalibration": "BN recalibration",
          "pgd_before": "PGD evaluation before finetune", "fsp_before": "FSP score before finetune (fspkit)",
          "proxies": "proxies: grad-norm, SynFlow, NASWOT (fspkit)",
          "extract_again": "inherit again (second pass)", "finetune": "K-epoch PGD finetune",
          "final_eval": "final evaluation (clean + PGD)", "fsp_after": "FSP score after finetune (fspkit)",
          "scratch_train": "from scratch: supernet's epochs", "scratch_eval": "from scratch: evaluation"}


def timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float, float]:
    """``fn()``, its wall seconds (synchronised on CUDA) and this process's CPU seconds (which do not
    count the time other processes held the cores)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0, time.process_time() - c0


# --------------------------------------------------------------------------------------- the search run
def run_cpu_demo_search(run: Path, *, device: torch.device, candidates: int | None) -> dict[str, tuple[float, float]]:
    """``fspkit search STAGE --preset cpu-demo --fsp-keep 1 --out RUN`` for the three stages (a finished
    folder is only reopened: each stage then returns at once); returns each stage's (wall, CPU) seconds."""
    from fspkit.cli import main as fspkit_main

    fresh = not (run / "search.json").exists()
    seconds: dict[str, tuple[float, float]] = {}
    for stage in ("supernet", "sample", "finetune"):
        argv = ["search", stage, "--out", str(run), "--device", str(device), "--quiet"]
        if fresh and stage == "supernet":
            argv += ["--preset", "cpu-demo", "--fsp-keep", "1"]
            argv += ["--candidates", str(candidates)] if candidates else []
        status, wall, cpu = timed(partial(fspkit_main, argv), device)
        seconds[stage] = (wall, cpu)
        if status:
            raise SystemExit(f"`fspkit {' '.join(argv)}` failed (exit {status})")
    return seconds


def supernet_epoch_seconds(sd: SearchDir) -> list[float]:
    """Training seconds of each supernet epoch, as the training loop logged them."""
    import csv

    with (sd.supernet_dir / "log.csv").open(newline="") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def eval_batches(sd: SearchDir, device: torch.device) -> Batches:
    """The candidates' validation batches, as the search builds them."""
    _, val = sd.split()
    if sd.config.eval_samples is not None:
        val = val.subset(range(sd.config.eval_samples))
    return list(DeviceLoader(val, batch_size=sd.config.eval_batch_size, device=device))


def evaluate(model: torch.nn.Module, batches: Batches, sd: SearchDir, seed: int,
             device: torch.device) -> tuple[float, float]:
    """Clean and PGD accuracy with the search's attack and the candidate's attack seed."""
    gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "eval-attack"))
    acc = accuracy(model, batches, make_attack(parse_attack(sd.config.eval_attack), generator=gen))
    return acc.clean_acc, acc.adv_acc


def fsp_distances(model: torch.nn.Module, batches: Batches, sd: SearchDir, seed: int,
                  device: torch.device) -> list[float]:
    """Per-cell FSP distances as ``fspkit.search.FSPScorer`` computes them (its attack seed)."""
    gen = torch.Generator(device=device).manual_seed(derive_seed(seed, "fsp-attack"))
    attack = make_attack(parse_attack(sd.config.eval_attack), generator=gen)
    return list(score(model, batches, attack, seed=seed).fsp())


# --------------------------------------------------------------------------------------- replay
def replay_candidate(sd: SearchDir, supernet: Any, rec: dict[str, Any], batches: Batches,
                     train_loader: DeviceLoader, device: torch.device) -> dict[str, Any]:
    """Every step of one candidate, timed alone: ``{step: (wall, cpu)}`` plus the values to check
    against the search's record."""
    cfg = sd.config
    genotype, seed = Genotype.parse(rec["genotype"]), int(rec["seed"])
    t: dict[str, tuple[float, float]] = {}

    def step(name: str, fn: Callable[[], T]) -> T:
        out, wall, cpu = timed(fn, device)
        t[name] = (wall, cpu)
        return out

    model = step("extract", lambda: supernet.extract(genotype).to(device))
    train_loader.seed = derive_seed(seed, "bn") % 2**31
    step("bn_recalibration", lambda: recalibrate_bn(model, train_loader, max_batches=cfg.bn_batches))
    before = step("pgd_before", lambda: evaluate(model, batches, sd, seed, device))
    fsp_before = step("fsp_before", lambda: fsp_distances(model, batches, sd, seed, device))
    x, y = batches[0]
    k = min(len(x), FSPSearchConfig().proxy_batch)
    step("proxies", lambda: compute_proxies(model, x[:k], y[:k], config=ProxyConfig()))
    model = step("extract_again", lambda: supernet.extract(genotype).to(device))
    ft_config = dataclasses.replace(cfg.finetune, seed=seed % 2**31)
    step("finetune", lambda: finetune(model, sd.split()[0], epochs=cfg.finetune.epochs, config=ft_config,
                                      device=device, progress=False))
    after = step("final_eval", lambda: evaluate(model, batches, sd, seed, device))
    step("fsp_after", lambda: fsp_distances(model, batches, sd, seed, device))
    same = (before == (rec["clean_acc_before_finetune"], rec["pgd_acc_before_finetune"])
            and after == (rec["clean_acc"], rec["pgd_acc"])
            and np.allclose(fsp_before, rec["fsp_before_finetune"], rtol=1e-6, atol=0))
    return {"id": rec["id"], "times": t, "same_as_record": bool(same), "replayed": (before, after)}


def scratch_candidate(sd: SearchDir, rec: dict[str, Any], batches: Batches, device: torch.device) -> dict[str, Any]:
    """The naive alternative: the candidate trained from a fresh initialisation with the supernet's
    recipe for the supernet's epochs, then evaluated like a search candidate."""
    cfg, seed = sd.config, int(rec["seed"])
    train_part, _ = sd.split()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "scratch-init") % 2**63)
        model = build_robnet(rec["genotype"], C=cfg.C, layers=cfg.layers, num_classes=train_part.num_classes,
                             in_channels=train_part.image_shape[0], imagenet_stem=cfg.imagenet_stem).to(device)
    recipe = dataclasses.replace(cfg.supernet, seed=derive_seed(seed, "scratch") % 2**31)
    _, tw, tc = timed(lambda: finetune(model, train_part, epochs=cfg.supernet.epochs, config=recipe, device=device,
                                       progress=False), device)
    (clean, pgd), ew, ec = timed(lambda: evaluate(model, batches, sd, seed, device), device)
    return {"id": rec["id"], "times": {"scratch_train": (tw, tc), "scratch_eval": (ew, ec)}, "clean": clean,
            "pgd": pgd}


# --------------------------------------------------------------------------------------- part 1
def med(rows: Sequence[dict[str, Any]], name: str, i: int) -> float:
    return statistics.median(r["times"][name][i] for r in rows)


def report_throughput(sd: SearchDir, records: list[dict[str, Any]], replays: list[dict[str, Any]],
                      scratch: list[dict[str, Any]], stages: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Print part 1; returns the per-candidate and supernet costs the later parts use."""
    cfg = sd.config
    n, epochs = len(records), cfg.supernet.epochs
    print(f"\n## 1. Candidate throughput (cpu-demo: {n} candidates, supernet {epochs} epochs, finetune K="
          f"{cfg.finetune.epochs}; medians over {len(replays)} replayed / {len(scratch)} from-scratch candidates)\n")
    one = {i: sum(med(replays, s, i) for s in ONE_SHOT) for i in (0, 1)}
    fsp = {i: one[i] + sum(med(replays, s, i) for s in FSPKIT) for i in (0, 1)}
    naive = {i: med(scratch, "scratch_train", i) + med(scratch, "scratch_eval", i) for i in (0, 1)}
    print("| step | wall s/candidate | CPU s/candidate | share of one-shot (CPU) |")
    print("|---|---:|---:|---:|")
    for s in ONE_SHOT + FSPKIT:
        share = f"{med(replays, s, 1) / one[1]:.1%}" if s in ONE_SHOT else "(extra)"
        print(f"| {LABELS[s]} | {med(replays, s, 0):.3f} | {med(replays, s, 1):.3f} | {share} |")
    print(f"| **one-shot candidate (`robnet search`)** | **{one[0]:.3f}** | **{one[1]:.3f}** | 100% |")
    print(f"| one-shot candidate + FSP + proxies (`fspkit search`) | {fsp[0]:.3f} | {fsp[1]:.3f} | |")
    for s in ("scratch_train", "scratch_eval"):
        print(f"| {LABELS[s]} ({epochs} epochs) | {med(scratch, s, 0):.3f} | {med(scratch, s, 1):.3f} | |")
    print(f"| **naive candidate (from scratch)** | **{naive[0]:.3f}** | **{naive[1]:.3f}** | |")
    print(f"\ncandidates per hour: one-shot {3600 / one[0]:,.0f} wall / {3600 / one[1]:,.0f} CPU; with FSP + proxies "
          f"{3600 / fsp[0]:,.0f} / {3600 / fsp[1]:,.0f}; naive {3600 / naive[0]:,.0f} / {3600 / naive[1]:,.0f}")
    print(f"per-candidate ratio naive / one-shot: {naive[0] / one[0]:.2f}x wall, {naive[1] / one[1]:.2f}x CPU "
          f"(vs `fspkit search`'s candidate: {naive[0] / fsp[0]:.2f}x wall, {naive[1] / fsp[1]:.2f}x CPU)")
    sn = {0: sum(supernet_epoch_seconds(sd)), 1: stages["supernet"][1] if stages["supernet"][0] > 1 else math.nan}
    scratch_epoch = [med(scratch, "scratch_train", i) / epochs for i in (0, 1)]
    print(f"supernet: {epochs} epochs, {sn[0]:.1f} s of training wall (log.csv), {sn[1]:.1f} s CPU (the stage, "
          f"set-up and checkpoints included): {sn[0] / epochs:.2f} / {sn[1] / epochs:.2f} s per epoch; a from-scratch "
          f"candidate epoch: {scratch_epoch[0]:.2f} / {scratch_epoch[1]:.2f} s (wall / CPU)")
    for n_c, what in ((n, "measured sizes"), (1000, "derived: cpu-demo sizes, 1,000 candidates")):
        ratios = [n_c * naive[i] / (sn[i] + n_c * fsp[i]) for i in (0, 1)]
        print(f"whole search, {n_c} candidates ({what}): one-shot (supernet + `fspkit search` candidates) "
              f"{(sn[0] + n_c * fsp[0]) / 60:.1f} min wall / {(sn[1] + n_c * fsp[1]) / 60:.1f} min CPU vs naive "
              f"{n_c * naive[0] / 60:.1f} / {n_c * naive[1] / 60:.1f} min: {ratios[0]:.2f}x wall, {ratios[1]:.2f}x CPU")
    _report_checks(records, replays, scratch, stages)
    return {"one_shot": one[0], "fspkit": fsp[0], "final_eval": med(replays, "final_eval", 0),
            "fsp_after": med(replays, "fsp_after", 0), "supernet": sn[0], "supernet_cpu_epoch": sn[1] / epochs,
            "finetune_cpu_epoch": med(replays, "finetune", 1) / cfg.finetune.epochs}


def _report_checks(records: list[dict[str, Any]], replays: list[dict[str, Any]], scratch: list[dict[str, Any]],
                   stages: dict[str, tuple[float, float]]) -> None:
    """The search's own timings beside the replay's, the replay's fidelity, and the from-scratch accuracies."""
    n = len(records)
    wall, cpu = stages["finetune"]
    if wall > 1:
        print(f"end to end in this run: candidate stage {wall:.1f} s wall / {cpu:.1f} s CPU = {wall / n:.2f} / "
              f"{cpu / n:.2f} s per candidate ({3600 * n / wall:,.0f} / {3600 * n / cpu:,.0f} candidates/hour, FSP "
              "+ proxies + record writing included)")

    def m(key: str) -> float:
        return statistics.median(r[key] for r in records)

    print(f"the search's own wall timings (median over all {n} records): inherit + BN {m('seconds_inherit'):.3f} s, "
          f"PGD evaluation before {m('seconds_pgd_before'):.3f} s, FSP before {m('seconds_fsp'):.3f} s, finetune "
          f"{m('seconds_finetune'):.3f} s")
    same = sum(r["same_as_record"] for r in replays)
    print(f"replay reproduces the search's records (accuracies before/after, FSP before): {same}/{len(replays)}")
    by_id = {r["id"]: r for r in records}
    for row in scratch:
        r = by_id[row["id"]]
        print(f"  candidate {row['id']} ({r['convs']:g} convs): from scratch clean {row['clean']:.3f} pgd "
              f"{row['pgd']:.3f}; one-shot: before finetune clean {r['clean_acc_before_finetune']:.3f} pgd "
              f"{r['pgd_acc_before_finetune']:.3f}, after clean {r['clean_acc']:.3f} pgd {r['pgd_acc']:.3f}")


# --------------------------------------------------------------------------------------- part 2
@dataclasses.dataclass(frozen=True, kw_only=True)
class StepTimes:
    """Per-step seconds on one GPU at the paper's macro (C=36, 20 cells, 32x32 inputs).

    Attributes:
        source: where the numbers come from.
        train_128: one PGD-7 training step (attack + update) at batch 128, one per architecture.
        train_512: the same at batch 512 (the same architectures as the first ``len`` of train_128
            when recorded).
        eval_256: one evaluation batch of 256 (clean forward + PGD-7 + adversarial forward), or None
            to derive it from the training step (see :func:`eval_batch_seconds`).
    """

    source: str
    train_128: tuple[float, ...]
    train_512: tuple[float, ...]
    eval_256: tuple[float, ...] | None


# benchmarks/results/bench_supernet.md, NVIDIA H200, supernet s/step, cell-based, batch 128: runs (a) bf16,
# (e) bf16 and (c) fp32 (at batch 128 fp32 costs what bf16 does: the step is launch-bound); batch 512: run (d),
# the architectures of (a)'s rows 0 and 1 (1.266 and 0.988 s at batch 128).
RECORDED_H200 = StepTimes(source="recorded: benchmarks/results/bench_supernet.md, NVIDIA H200 (2026-11-26)",
                          train_128=(1.266, 0.988, 1.019, 1.373, 0.753, 1.068, 0.929), train_512=(1.480, 1.233),
                          eval_256=None)

# A forward is 1 unit, a backward 2: a training step is PGD-7 (7 x (fwd + bwd)) + the update's fwd + bwd = 24
# units per image; an evaluation batch is a clean fwd + PGD-7 + an adversarial fwd = 23; the FSP score is PGD-7 +
# one fused forward of cat([x, x_adv]) = 23 as well.
TRAIN_UNITS, EVAL_UNITS = 24, 23


def eval_batch_seconds(t: StepTimes) -> float:
    """One evaluation batch of 256: measured, or (recorded) 23/24 of a training step at batch 256, which is
    interpolated linearly in the batch between the batch-128 and batch-512 steps of the same architectures."""
    if t.eval_256:
        return statistics.median(t.eval_256)
    growth = statistics.median(b / a for a, b in zip(t.train_128, t.train_512, strict=False))  # 4x the images
    return EVAL_UNITS / TRAIN_UNITS * statistics.median(t.train_128) * (1 + (growth - 1) * (256 - 128) / (512 - 128))


def measure_paper_steps(device: torch.device, n: int) -> StepTimes:
    """``n`` timed PGD-7 training steps at batch 128 and 512 (fp32 as ``--preset paper``; channels_last) on
    the paper's supernet, each on a new random architecture, and ``n`` evaluation batches of 256 images."""
    import random

    from bench_supernet import adversarial_step, sgd

    from robnet.models.genotype import sample
    from robnet.models.supernet import build_supernet

    torch.manual_seed(0)
    net = build_supernet(C=36, layers=20).to(device).to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    opt, rng = sgd(list(net.named_parameters())), random.Random(0)
    gen = torch.Generator(device=device).manual_seed(0)
    out: dict[int, list[float]] = {128: [], 512: [], 256: []}
    for batch in (128, 512):
        for i in range(n + 1):
            g = sample(rng)
            x = torch.rand(batch, 3, 32, 32, device=device, generator=gen).contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 10, (batch,), device=device, generator=gen)
            noise = torch.rand(x.shape, device=device, generator=gen).mul_(2).sub_(1)
            _, wall, _ = timed(partial(adversarial_step, partial(net.bind, g), partial(net, genotype=g), opt, x, y,
                                       noise, False), device)
            if i:
                out[batch].append(wall)
    attack = make_attack(parse_attack("pgd7"), generator=gen)
    for i in range(n + 1):
        model = net.extract(sample(rng)).eval()
        x = torch.rand(256, 3, 32, 32, device=device, generator=gen).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (256,), device=device, generator=gen)
        _, wall, _ = timed(partial(accuracy, model, [(x, y)], attack), device)
        if i:
            out[256].append(wall)
    return StepTimes(source=f"measured now on {torch.cuda.get_device_name(device)} ({n} steps each, fp32)",
                     train_128=tuple(out[128]), train_512=tuple(out[512]), eval_256=tuple(out[256]))


def report_paper_estimate(t: StepTimes, cpu_check: dict[str, float], sd: SearchDir) -> None:
    """Print part 2: the --preset paper cost on one GPU from per-step times (an estimate)."""
    from robnet.search.config import preset_config

    p = preset_config("paper")
    train_n, val_n = 45_000, 5_000  # CIFAR-10's 50,000 training images, val_size 0.1 (the test set is unused)
    steps_128, steps_512 = train_n // p.supernet.batch_size, train_n // 512  # the training loader drops the last
    s128, s512 = statistics.median(t.train_128), statistics.median(t.train_512)
    lo, hi = min(t.train_128), max(t.train_128)
    ev = eval_batch_seconds(t)
    eval_pass = math.ceil(val_n / p.eval_batch_size) * ev
    hours = 1 / 3600
    sn = p.supernet.epochs * steps_128 * s128
    ft = p.finetune.epochs * steps_128 * s128
    bn = p.bn_batches * ev / EVAL_UNITS  # a forward of 256 images per BN batch
    cand = bn + 2 * eval_pass + ft  # evaluation before and after finetuning
    fsp = 2 * eval_pass  # FSP score before and after (fspkit search)
    n = p.candidates
    print("\n## 2. Estimated `--preset paper` cost on one GPU (derived, NOT measured: no paper-scale search "
          "was run)\n")
    print(f"step times: {t.source}")
    print(f"  training step, batch 128: median {s128:.3f} s (range {lo:.3f}-{hi:.3f}, {len(t.train_128)} steps); "
          f"batch 512: median {s512:.3f} s; evaluation batch of 256: {ev:.3f} s"
          + (" (measured)" if t.eval_256 else " (derived: 23/24 of a training step at batch 256, interpolated)"))
    print(f"assumptions: {train_n:,} training / {val_n:,} validation images; batch {p.supernet.batch_size}, "
          f"{steps_128} steps per epoch (last partial batch dropped); every step costs the median step whatever the "
          "architecture (uniform bits: 7 sep-convs per cell on average, the measured ones had 5-9); data loading, "
          "checkpoints and extract() free (GPU-resident data; extract is milliseconds at cpu-demo size); a candidate "
          f"epoch costs a supernet epoch (weight-sharing ratio 1.00x, bench_supernet.md); {p.bn_batches} BN batches "
          f"= {p.bn_batches} forwards of 256; one PGD-7 evaluation pass = {math.ceil(val_n / p.eval_batch_size)} "
          f"batches of {p.eval_batch_size}; an FSP pass costs an evaluation pass; the proxies are not counted (a few % "
          "of an evaluation pass on the cpu-demo)")
    print("\n| part | formula | one GPU, hours | range (fastest-slowest step), hours |")
    print("|---|---|---:|---:|")
    print(f"| supernet ({p.supernet.epochs} epochs) | {p.supernet.epochs} x {steps_128} x {s128:.3f} s | "
          f"{sn * hours:.1f} | {sn * lo / s128 * hours:.1f}-{sn * hi / s128 * hours:.1f} |")
    print(f"| one candidate | {p.finetune.epochs} x {steps_128} steps + 2 evaluation passes + BN | {cand * hours:.3f} |"
          f" {(cand - ft + ft * lo / s128) * hours:.3f}-{(cand - ft + ft * hi / s128) * hours:.3f} |")
    print(f"| {n:,} candidates (`robnet search`) | {n:,} x one candidate | {n * cand * hours:.1f} | "
          f"{n * (cand - ft + ft * lo / s128) * hours:.0f}-{n * (cand - ft + ft * hi / s128) * hours:.0f} |")
    print(f"| **whole search (`robnet search all --preset paper`)** | supernet + candidates | "
          f"**{(sn + n * cand) * hours:.0f}** | |")
    keep = 0.3
    filt = n * (bn + eval_pass + fsp / 2) + math.ceil(keep * n) * (ft + eval_pass + fsp / 2)
    print(f"| `fspkit search --fsp-keep 1` (FSP before and after) | + {n:,} x 2 FSP passes | "
          f"{(sn + n * (cand + fsp)) * hours:.0f} | |")
    print(f"| `fspkit search --fsp-keep {keep}` | all scored, {math.ceil(keep * n)} finetuned | "
          f"{(sn + filt) * hours:.0f} | |")
    print(f"| what-if: supernet at batch 512 (not the preset; lr to rescale) | {p.supernet.epochs} x {steps_512} x "
          f"{s512:.3f} s | {p.supernet.epochs * steps_512 * s512 * hours:.1f} | |")
    print(f"| what-if: candidates finetuned at batch 512 | {n:,} x ({p.finetune.epochs} x {steps_512} x {s512:.3f} s "
          f"+ evaluation) | {n * (cand - ft + p.finetune.epochs * steps_512 * s512) * hours:.0f} | |")
    print(f"\npaper: ~560 GPU-hours for the supernet alone (32 GTX 1080Ti x 17.5 h; the candidates' cost is not "
          f"reported). Estimated supernet on one GPU: {sn * hours:.0f} GPU-hours = {560 / (sn * hours):.0f}x fewer "
          f"GPU-hours, {sn * hours / 17.5:.1f}x the paper's wall clock; the 1,000 candidates "
          f"({n * cand * hours:.0f} h) "
          f"cost {n * cand / sn:.1f}x the supernet, so the whole search is ~{(sn + n * cand) * hours / 24:.0f} days on "
          "one GPU (candidates shard over GPUs by id: 8 GPUs ~1/8).")
    cfg = sd.config
    ratio = cpu_check["finetune_cpu_epoch"] / cpu_check["supernet_cpu_epoch"]
    print(f"cost-model check on the cpu-demo (measured, CPU time): a candidate's finetune epoch costs {ratio:.2f}x a "
          f"supernet epoch (batch {cfg.finetune.batch_size} vs {cfg.supernet.batch_size}; the supernet's includes its "
          "set-up and checkpoints); the model above assumes 1.00x.")


# --------------------------------------------------------------------------------------- part 3
def report_filter(records: list[dict[str, Any]], costs: dict[str, float], *, keep: float = 0.3,
                  top: float = 0.1) -> None:
    """Print part 3: how many of the true top candidates each filter keeps, and what it saves."""
    n = len(records)
    table = proxy_table(records, keep=keep, top=top, n_boot=1000, rng=0)
    print(f"\n## 3. The FSP filter's value (cpu-demo, {n} candidates all finetuned; keep {keep}, true top {top:.0%} "
          "by final PGD accuracy)\n")
    print("| filter (score before finetune) | kept | top kept / top | recall | P(recall >= this), random | "
          "Spearman with final PGD [95% CI] | s/candidate |")
    print("|---|---:|---:|---:|---:|---|---:|")
    for row in table.rows:
        q = row.quality
        p = sps.hypergeom.sf(q.n_top_kept - 1, q.n, q.n_top, q.n_keep)
        sec = "" if row.seconds_per_candidate is None else f"{row.seconds_per_candidate:.3f}"
        direction = "lowest" if row.lower_is_better else "highest"
        print(f"| {row.proxy} ({direction} `{row.column}`) | {q.n_keep}/{q.n} | {q.n_top_kept}/{q.n_top} | "
              f"{q.recall:.2f} | {p:.3f} | {q.spearman.coef:+.2f} [{q.spearman.ci[0]:+.2f}, {q.spearman.ci[1]:+.2f}] "
              f"| {sec} |")
    q0 = table.rows[0].quality
    rng = np.random.default_rng(0)
    is_top = np.array([r["pgd_acc"] for r in records]) >= np.sort([r["pgd_acc"] for r in records])[::-1][q0.n_top - 1]
    draws = np.argsort(rng.random((20_000, n)), axis=1)[:, :q0.n_keep]
    sim = float(is_top[draws].sum(axis=1).mean() / is_top.sum())
    print(f"| random | {q0.n_keep}/{n} | | {q0.random_recall:.2f} expected, {sim:.3f} simulated (20,000 draws) | "
          "| | 0 |")
    for note in table.notes:
        print(f"note: {note}")
    kept = fsp_filter(FSPSearchConfig(keep=keep), records)
    top_ids = {r["id"] for r, t in zip(records, is_top, strict=True) if t}
    fsp, pgd = [r["fsp_deep_before_finetune"] for r in records], [r["pgd_acc"] for r in records]
    fsp_q = filter_quality(fsp, pgd, keep=keep, top=top, n_boot=0)
    print(f"cross-check: fspkit.search.fsp_filter keeps {len(kept)} ids, {len(kept & top_ids)} of the {len(top_ids)} "
          f"top: recall {len(kept & top_ids) / len(top_ids):.2f} (filter_quality on fsp_deep_before_finetune: "
          f"{fsp_q.recall:.2f})")
    rev = filter_quality(fsp, pgd, keep=keep, top=top, lower_is_better=False, n_boot=0)
    budgets = sorted({r["budget"] for r in records if r.get("budget") is not None})
    within = []
    for b in budgets:
        idx = [i for i, r in enumerate(records) if r["budget"] == b]
        rho = sps.spearmanr([fsp[i] for i in idx], [pgd[i] for i in idx])[0]
        within.append(f"{b} convs {rho:+.2f} (n={len(idx)})")
    print(f"diagnostic: keeping the HIGHEST FSP instead: recall {rev.recall:.2f}; Spearman(FSP deep, final PGD) within "
          f"each budget: {', '.join(within) or 'no budgets'}")
    _report_saving(records, costs, kept)


def _report_saving(records: list[dict[str, Any]], costs: dict[str, float], kept: set[int]) -> None:
    """Compute the FSP filter saves: seconds of the keep-1 search, of the filtered one, and of a plain
    ``robnet search`` (no FSP scores, no proxies), from the records and the replay's medians."""
    n, k = len(records), len(kept)
    ft = sum(r["seconds_finetune"] for r in records)
    ft_kept = sum(r["seconds_finetune"] for r in records if r["id"] in kept)
    first = sum(r.get("seconds_first_pass", r["seconds_inherit"]) for r in records)
    after = costs["final_eval"] + costs["fsp_after"]
    keep1 = costs["supernet"] + first + ft + n * after
    filtered = costs["supernet"] + first + ft_kept + k * after
    plain = (costs["supernet"] + sum(r["seconds_inherit"] + r["seconds_pgd_before"] for r in records) + ft
             + n * costs["final_eval"])
    print(f"compute saved by the filter ({k} of {n} finetuned): finetune {ft - ft_kept:.1f} of {ft:.1f} s "
          f"({1 - ft_kept / ft:.1%} of finetuning); whole search (supernet included) {filtered:.1f} s vs {keep1:.1f} s "
          f"for `fspkit search --fsp-keep 1` ({1 - filtered / keep1:.1%} saved) and {plain:.1f} s for `robnet search` "
          f"without FSP ({1 - filtered / plain:.1%} saved: the FSP scores, {sum(r['seconds_fsp'] for r in records):.1f}"
          " s, are paid for every candidate)")


# --------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", default=None, help="run folder: reused when it holds the search (default: a temporary one)")
    p.add_argument("--quick", action="store_true", help="12 candidates, 2 replayed, 1 from scratch (~2.5 min)")
    p.add_argument("--timing-candidates", type=int, default=None, help="candidates replayed step by step (6)")
    p.add_argument("--scratch-candidates", type=int, default=None, help="candidates trained from scratch (3)")
    p.add_argument("--paper-steps", type=int, default=0,
                   help="GPU only: measure this many paper-scale steps (else the recorded H200 steps are used)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.paper_steps and device.type != "cuda":
        p.error("--paper-steps measures paper-scale steps on a GPU; give --device cuda (on a CPU the recorded H200 "
                "steps are used)")
    n_time = args.timing_candidates or (2 if args.quick else 6)
    n_scratch = args.scratch_candidates or (1 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = Path(args.run) if args.run else Path(tempfile.mkdtemp(prefix="bench_search_"))
    print(describe(device))
    try:
        return _bench(run, device, args.quick, n_time, n_scratch, args.paper_steps)
    finally:
        if args.run is None:
            shutil.rmtree(run, ignore_errors=True)


def _bench(run: Path, device: torch.device, quick: bool, n_time: int, n_scratch: int, paper_steps: int) -> int:
    stage_seconds = run_cpu_demo_search(run, device=device, candidates=12 if quick else None)
    sd = SearchDir.open(run, None, create=False)
    records = sorted(sd.read_shards("records").values(), key=lambda r: r["id"])
    if any(r.get("pgd_acc") is None or "fsp_deep_before_finetune" not in r for r in records):
        raise SystemExit(f"{run}: needs a finished `fspkit search` with --fsp-keep 1 (every candidate finetuned)")
    print(f"search {run}: {sd.config.data}, C={sd.config.C}, {sd.config.layers} cells, {len(records)} candidates, "
          f"budgets {sd.config.budget}, attack {sd.config.eval_attack}; stages run now (wall s): "
          + ", ".join(f"{k} {v[0]:.1f}" for k, v in stage_seconds.items()))
    supernet = sd.load_supernet(device)
    batches = eval_batches(sd, device)
    train_loader = DeviceLoader(sd.split()[0], batch_size=sd.config.eval_batch_size, device=device, shuffle=True)
    replays = [replay_candidate(sd, supernet, r, batches, train_loader, device) for r in records[:n_time]]
    scratch = [scratch_candidate(sd, r, batches, device) for r in records[:n_scratch]]
    costs = report_throughput(sd, records, replays, scratch, stage_seconds)
    steps = measure_paper_steps(device, paper_steps) if paper_steps else RECORDED_H200
    report_paper_estimate(steps, costs, sd)
    report_filter(records, costs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Weight-sharing cost: one PGD-7 adversarial training step of the supernet vs the standalone network.

For each of ``--archs`` sampled architectures g, two models start from the same weights: the
supernet (``robnet.models.supernet.build_supernet``), trained on g, and ``supernet.extract(g)``, the zoo
network of g. One step on each is the same code: PGD-7 (eps 8/255, step 2/255, random start, model
in train mode as in the official code) on the model, then cross-entropy on the adversarial batch,
``zero_grad(set_to_none=True)``, backward and an SGD update (momentum 0.9, weight decay 1e-4 off BN
and biases). The supernet attacks ``supernet.bind(g)`` (bound inside the timed step, as a training
loop that draws an architecture per batch does) and updates through ``supernet(x_adv, g)``; its
optimizer holds every supernet parameter (unused ones have no gradient and are skipped).

Steps are interleaved (supernet, standalone, supernet, ...) so that load from other processes hits
both alike; the median per architecture is reported with the ratio supernet / standalone (target:
at most 1.15x). On CUDA the clock reads after ``torch.cuda.synchronize`` and peak memory
is reported per side.

Usage::

    python benchmarks/bench_supernet.py                       # CPU: C=16, 8 cells, batch 32, 32x32
    python benchmarks/bench_supernet.py --device cuda         # C=36, 20 cells, batch 128, bf16, NHWC
        [--C 36] [--layers 20] [--batch-size 128] [--archs 3] [--repeats 5] [--cell-free] [--no-amp]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from robnet.attacks.gradient import pgd
from robnet.models.genotype import Genotype, sample
from robnet.models.supernet import SuperNet, build_supernet

EPS, STEP, STEPS = 8 / 255, 2 / 255, 7
DEFAULTS = {"cpu": {"C": 16, "layers": 8, "batch_size": 32, "archs": 3, "repeats": 3},
            "cuda": {"C": 36, "layers": 20, "batch_size": 128, "archs": 3, "repeats": 5}}


def sgd(params: list[tuple[str, nn.Parameter]]) -> torch.optim.SGD:
    """SGD with weight decay on conv/linear weights only (the training recipe's groups)."""
    decay = [p for _, p in params if p.ndim > 1]
    no_decay = [p for _, p in params if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                           lr=0.01, momentum=0.9)


def adversarial_step(attack_model: Callable[[], nn.Module], forward: Callable[[torch.Tensor], torch.Tensor],
                     optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
                     amp: bool) -> None:
    """PGD-7 on ``attack_model()`` then one SGD update through ``forward``; no host sync."""
    autocast = torch.autocast(x.device.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with autocast:
        x_adv = pgd(attack_model(), x, y, eps=EPS, step_size=STEP, steps=STEPS, noise=noise)
        loss = F.cross_entropy(forward(x_adv).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def timed(fn: Callable[[], None], device: torch.device) -> tuple[float, float, float]:
    """Wall seconds for ``fn()`` (synchronised on CUDA), this process's CPU seconds, and peak GiB
    (CUDA; NaN on CPU). On a shared CPU the process time is the load-robust one: it does not count
    the time other processes held the cores."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = float("nan")
    return time.perf_counter() - t0, time.process_time() - c0, peak


def bench_arch(supernet: SuperNet, g: Genotype, batches: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
               args: Any, device: torch.device) -> dict[str, Any]:
    """Interleaved timings of the supernet and the standalone network on architecture ``g``."""
    net = supernet.extract(g).train()
    sn_opt, net_opt = sgd(list(supernet.named_parameters())), sgd(list(net.named_parameters()))
    times: dict[str, list[float]] = {"supernet": [], "standalone": []}
    cpu: dict[str, list[float]] = {"supernet": [], "standalone": []}
    peaks: dict[str, list[float]] = {"supernet": [], "standalone": []}
    for i, (x, y, noise) in enumerate(batches):
        steps = {
            "supernet": partial(adversarial_step, partial(supernet.bind, g), partial(supernet, genotype=g),
                                sn_opt, x, y, noise, args.amp),
            "standalone": partial(adversarial_step, lambda: net, net, net_opt, x, y, noise, args.amp),
        }
        for side, fn in steps.items():
            seconds, cpu_seconds, peak = timed(fn, device)
            if i >= args.warmup:
                times[side].append(seconds)
                cpu[side].append(cpu_seconds)
                peaks[side].append(peak)
    med = {side: statistics.median(t) for side, t in times.items()}
    med_cpu = {side: statistics.median(t) for side, t in cpu.items()}
    return {"genotype": g, "params": sum(p.numel() for p in net.parameters()), "median": med,
            "ratio": med["supernet"] / med["standalone"], "times": times, "median_cpu": med_cpu,
            "ratio_cpu": med_cpu["supernet"] / med_cpu["standalone"], "cpu_times": cpu,
            "peak": {side: max(p) for side, p in peaks.items()}}


def report(rows: list[dict[str, Any]], *, cuda: bool) -> None:
    """Print the markdown table (wall clock; on CPU also process time), the ratios and every step."""
    extra = " peak GiB (standalone / supernet) |" if cuda else " CPU s/step (standalone / supernet) | CPU ratio |"
    print()
    print("| arch | sep-convs per cell | standalone params | standalone s/step | supernet s/step | ratio |" + extra)
    print("|---|---:|---:|---:|---:|---:|" + ("---:|" if cuda else "---:|---:|"))
    for i, r in enumerate(rows):
        convs = r["genotype"].num_convs()
        conv_text = str(convs[0]) if len(convs) == 1 else f"{min(convs)}-{max(convs)}"
        if cuda:
            tail = f" {r['peak']['standalone']:.2f} / {r['peak']['supernet']:.2f} |"
        else:
            tail = (f" {r['median_cpu']['standalone']:.3f} / {r['median_cpu']['supernet']:.3f} | "
                    f"{r['ratio_cpu']:.3f}x |")
        print(f"| {i} | {conv_text} | {r['params']:,} | {r['median']['standalone']:.3f} | "
              f"{r['median']['supernet']:.3f} | {r['ratio']:.3f}x |{tail}")
    keys = ["ratio"] if cuda else ["ratio", "ratio_cpu"]
    print()
    for key in keys:
        ratios = [r[key] for r in rows]
        what = "wall-clock" if key == "ratio" else "process-time"
        print(f"{what} ratio supernet / standalone: median {statistics.median(ratios):.3f}x, geometric mean "
              f"{statistics.geometric_mean(ratios):.3f}x, max {max(ratios):.3f}x (target <= 1.15x: "
              f"{'met' if max(ratios) <= 1.15 else 'NOT met'})")
    for i, r in enumerate(rows):
        print(f"arch {i}: {r['genotype']}")
        for key in ("times",) if cuda else ("times", "cpu_times"):
            label = "wall" if key == "times" else "CPU"
            print(f"  {label} per step (s): standalone " + ", ".join(f"{t:.3f}" for t in r[key]["standalone"])
                  + "; supernet " + ", ".join(f"{t:.3f}" for t in r[key]["supernet"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--C", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--archs", type=int, default=None, help="sampled architectures")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per architecture and side")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--cell-free", action="store_true", help="sample cell-free architectures")
    p.add_argument("--no-amp", action="store_true", help="fp32 on CUDA (bf16 autocast is the default there)")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    for key, value in DEFAULTS["cuda" if device.type == "cuda" else "cpu"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.amp = device.type == "cuda" and not args.no_amp
    channels_last = not args.no_channels_last
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(args.seed)
    supernet = build_supernet(C=args.C, layers=args.layers, cell_free=args.cell_free).to(device).train()
    if channels_last:
        supernet = supernet.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    n_steps = args.warmup + args.repeats

    def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = torch.rand(args.batch_size, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (args.batch_size,), generator=gen)
        noise = torch.rand(x.shape, generator=gen).mul_(2).sub_(1)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        return (x.to(device).contiguous(memory_format=fmt), y.to(device),
                noise.to(device).contiguous(memory_format=fmt))

    rng = random.Random(args.seed)
    genotypes = [sample(rng, cell_free=args.cell_free, layers=args.layers) for _ in range(args.archs)]
    print(describe(device))
    print(f"supernet C={args.C}, {args.layers} cells, {'cell-free' if args.cell_free else 'cell-based'} "
          f"({sum(q.numel() for q in supernet.parameters()):,} params); batch {args.batch_size}x3x32x32; "
          f"PGD-{STEPS} eps 8/255 step 2/255 + SGD update, train mode; amp={args.amp}, "
          f"channels_last={channels_last}; {args.warmup} warm-up + {args.repeats} timed steps per side and "
          f"architecture, interleaved")
    rows = []
    for g in genotypes:
        # The same images for both sides; each architecture gets its own batches.
        rows.append(bench_arch(supernet, g, [batch() for _ in range(n_steps)], args, device))
    report(rows, cuda=device.type == "cuda")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

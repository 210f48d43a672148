"""Cost per candidate of the cheap robustness proxies vs the FSP score vs PGD accuracy.

The search scores every candidate (weights inherited from the supernet, before finetuning) with
up to five numbers; this measures what each costs per candidate, on the same candidates and the
same images:

* ``grad_norm``, ``synflow``, ``naswot`` (:mod:`fspkit.proxies`): one batch of ``--proxy-batch``
  images each (SynFlow uses only the input shape);
* FSP score (:func:`fspkit.score`): PGD-k on the ``--n`` evaluation images plus one fused forward
  of ``cat([x, x_adv])`` with the per-cell FSP hooks;
* PGD accuracy before finetuning (what the search records as ``pgd_acc_before_finetune``): a
  clean forward, PGD-k and an adversarial forward on the same ``--n`` images, in eval mode.

Candidates: ``--candidates`` genotypes sampled with ``robnet.models.genotype.sample(seed)``, each
extracted from one (untrained) supernet, so every candidate inherits its weights as in the search.
Timing does not depend on the weights' values or the images' content: the images are uniform
noise in [0, 1] with random labels (fixed seeds). One warm-up candidate is run first and not
counted. On CUDA every timed section ends with ``torch.cuda.synchronize``.

Usage::

    python benchmarks/bench_proxies.py [--C 8] [--layers 5] [--hw 32] [--in-channels 3] [--candidates 6]
        [--n 256] [--batch-size 128] [--proxy-batch 64] [--steps 7] [--device cpu] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from fspkit import score
from fspkit.proxies import PROXIES, compute_proxies
from robnet.attacks.gradient import pgd
from robnet.models.genotype import sample
from robnet.models.supernet import SuperNet, SuperNetConfig
from robnet.utils import eval_mode

EPS, STEP = 8 / 255, 2 / 255


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def pgd_accuracy(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int,
                 gen: torch.Generator) -> float:
    """Clean forward + PGD-k + adversarial forward in eval mode (the search's evaluation)."""
    hits = n = 0
    with eval_mode(model):
        for x, y in batches:
            with torch.no_grad():
                model(x)
            x_adv = pgd(model, x, y, eps=EPS, step_size=STEP, steps=steps, generator=gen)
            with torch.no_grad():
                hits += int((model(x_adv).argmax(1) == y).sum())
            n += len(y)
    return hits / n


def fsp_score(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], steps: int,
              gen: torch.Generator) -> float:
    def attack(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return pgd(m, x, y, eps=EPS, step_size=STEP, steps=steps, generator=gen)

    return score(model, batches, attack).deep_mean()


def measure(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], proxy_x: torch.Tensor,
            proxy_y: torch.Tensor, steps: int, device: torch.device, seed: int) -> dict[str, float]:
    """Seconds of every method on one candidate (and the proxy values)."""
    out = compute_proxies(model, proxy_x, proxy_y)  # seconds_* include a CUDA sync on both ends
    gen = torch.Generator(device=device).manual_seed(seed)
    out["seconds_fsp"] = _timed(lambda: fsp_score(model, batches, steps, gen), device)
    gen = torch.Generator(device=device).manual_seed(seed)
    out["seconds_pgd_acc"] = _timed(lambda: pgd_accuracy(model, batches, steps, gen), device)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--hw", type=int, default=32, help="image height and width")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--candidates", type=int, default=6)
    p.add_argument("--n", type=int, default=256, help="evaluation images for the FSP score and PGD accuracy")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--proxy-batch", type=int, default=64, help="images in the proxies' one batch")
    p.add_argument("--steps", type=int, default=7, help="PGD steps (the search's default evaluation is PGD-7)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(args.seed)
    images = torch.rand(args.n, args.in_channels, args.hw, args.hw, generator=g)
    labels = torch.randint(0, 10, (args.n,), generator=g)
    batches = [(images[i:i + args.batch_size].to(device), labels[i:i + args.batch_size].to(device))
               for i in range(0, args.n, args.batch_size)]
    proxy_x, proxy_y = images[:args.proxy_batch].to(device), labels[:args.proxy_batch].to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        supernet = SuperNet(SuperNetConfig(C=args.C, layers=args.layers, in_channels=args.in_channels)).to(device)
    genotypes = [sample(args.seed + i) for i in range(args.candidates + 1)]

    print(describe(device))
    print(f"candidates: {args.candidates} random cell-based genotypes extracted from one supernet, C={args.C}, "
          f"{args.layers} cells, input {args.in_channels}x{args.hw}x{args.hw}; proxies on {args.proxy_batch} "
          f"images; FSP score and PGD accuracy on {args.n} images in batches of {args.batch_size}, PGD-{args.steps} "
          f"eps 8/255 step 2/255; one warm-up candidate not counted")
    rows = []
    for i, genotype in enumerate(genotypes):
        model = supernet.extract(genotype).to(device)
        params = sum(q.numel() for q in model.parameters())
        result = measure(model, batches, proxy_x, proxy_y, args.steps, device, args.seed + i)
        if i == 0:
            continue
        rows.append(result)
        print(f"  candidate {i}: {params:,} params, density {genotype.density():.2f}; "
              + ", ".join(f"{p} {result[f'proxy_{p}']:.4g} ({result[f'seconds_{p}']:.3f} s)" for p in PROXIES)
              + f"; FSP {result['seconds_fsp']:.3f} s; PGD acc {result['seconds_pgd_acc']:.3f} s")

    methods = [(f"{p}", f"seconds_{p}") for p in PROXIES] + [
        (f"FSP score (PGD-{args.steps} + fused forward, {args.n} images)", "seconds_fsp"),
        (f"PGD accuracy before finetuning (PGD-{args.steps}, {args.n} images)", "seconds_pgd_acc")]
    base = statistics.median(r["seconds_pgd_acc"] for r in rows)
    print("\n| method | median s/candidate | min | max | x PGD accuracy |\n|---|---:|---:|---:|---:|")
    for label, key in methods:
        values = [r[key] for r in rows]
        med = statistics.median(values)
        print(f"| {label} | {med:.4f} | {min(values):.4f} | {max(values):.4f} | {med / base:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

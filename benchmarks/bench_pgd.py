"""PGD-20 throughput: robnet.attacks.gradient.pgd vs IBM ART and torchattacks on the same model and batch.

PGD is the inner loop of adversarial training (PGD-7) and of evaluation (PGD-20/100), so its cost
per image bounds everything else. All three implementations attack the same small RobNet
(``robnet_large`` cell, C=8, 5 layers, 32x32 inputs) in eval mode with the paper's settings (L-inf
eps 8/255, step 2/255, random start) on the same batch. Repeats are interleaved (ours, ART,
torchattacks, ours, ...), so that load from other processes hits all three alike; the median of
the repeats is reported.

Usage::

    python benchmarks/bench_pgd.py [--batch-size 64] [--steps 20] [--device cpu] [--repeats 5]

torchattacks is optional: when it cannot be imported the benchmark says why and goes on. (Its
PyPI release pins requests==2.25.* and pulls torchvision, whose wheels pin one torch version;
``pip install --no-deps torchattacks`` is enough, its PGD imports only torch.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from robnet import build_model
from robnet.attacks.gradient import pgd

try:
    from _machine import cpu_model
except ImportError:  # run as a module from the repo root
    from benchmarks._machine import cpu_model

EPS, STEP = 8 / 255, 2 / 255


def make_ours(model: nn.Module, steps: int, seed: int) -> Callable[[Tensor, Tensor], Tensor]:
    gen = torch.Generator().manual_seed(seed)

    def run(x: Tensor, y: Tensor) -> Tensor:
        return pgd(model, x, y, eps=EPS, step_size=STEP, steps=steps, random_start=True, generator=gen)
    return run


def make_art(model: nn.Module, steps: int, batch_size: int, device: torch.device,
             ) -> Callable[[Tensor, Tensor], Tensor]:
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(3, 32, 32), nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
    attack = ProjectedGradientDescentPyTorch(clf, norm=np.inf, eps=EPS, eps_step=STEP, max_iter=steps,
                                             num_random_init=1, batch_size=batch_size, verbose=False)

    def run(x: Tensor, y: Tensor) -> Tensor:
        # ART's API is numpy in, numpy out: the conversions are part of what a user pays.
        return torch.from_numpy(attack.generate(x.cpu().numpy(), y=y.cpu().numpy())).to(x.device)
    return run


def make_torchattacks(model: nn.Module, steps: int) -> Callable[[Tensor, Tensor], Tensor]:
    import torchattacks

    attack = torchattacks.PGD(model, eps=EPS, alpha=STEP, steps=steps, random_start=True)

    def run(x: Tensor, y: Tensor) -> Tensor:
        return attack(x, y)
    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (median reported)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--C", type=int, default=8, help="RobNet initial channels")
    p.add_argument("--layers", type=int, default=5, help="RobNet cells")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = build_model("robnet_large", C=args.C, layers=args.layers).to(device).eval()
    g = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch_size, 3, 32, 32, generator=g).to(device)
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # labels = clean predictions, so the accuracy column shows the attack
    params = sum(p.numel() for p in model.parameters())

    print(f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else f" ({cpu_model()})")
          + f", torch threads {torch.get_num_threads()}")
    print(f"model: robnet_large cell, C={args.C}, layers={args.layers}, {params:,} params, eval mode; "
          f"batch {args.batch_size}x3x32x32; PGD-{args.steps}, eps 8/255, step 2/255, random start; "
          f"{args.warmup} warm-up + {args.repeats} timed runs each, interleaved, median")

    impls: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"robnet": make_ours(model, args.steps, args.seed)}
    versions = {"robnet": "this tree"}
    unavailable: dict[str, str] = {}
    try:
        import art

        impls["ART"] = make_art(model, args.steps, args.batch_size, device)
        versions["ART"] = f"adversarial-robustness-toolbox {art.__version__}, ProjectedGradientDescentPyTorch"
    except Exception as err:  # optional competitor: report and go on
        unavailable["ART"] = f"{type(err).__name__}: {err}"
    try:
        import torchattacks

        impls["torchattacks"] = make_torchattacks(model, args.steps)
        versions["torchattacks"] = f"torchattacks {torchattacks.__version__}, PGD"
    except Exception as err:
        unavailable["torchattacks"] = f"{type(err).__name__}: {err}"
    for name, why in unavailable.items():
        print(f"{name}: unavailable ({why})")

    def timed(fn: Callable[[Tensor, Tensor], Tensor]) -> tuple[float, Tensor]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        out = fn(x, y)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0, out

    # ART's numpy work would otherwise start OpenBLAS threads that fight torch's for the cores.
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        limits = None
    times: dict[str, list[float]] = {name: [] for name in impls}
    outputs: dict[str, Tensor] = {}
    for _ in range(args.warmup):
        for fn in impls.values():
            timed(fn)
    for _ in range(args.repeats):
        for name, fn in impls.items():
            seconds, outputs[name] = timed(fn)
            times[name].append(seconds)
    if limits is not None:
        limits.restore_original_limits()

    ours_rate = args.batch_size / statistics.median(times["robnet"])
    print()
    print("| implementation | median s/batch | images/s | ours / it | max abs(x_adv - x) | "
          "accuracy after (clean 1.000) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in impls:
        med = statistics.median(times[name])
        rate = args.batch_size / med
        out = outputs[name].to(device)
        with torch.no_grad():
            acc = float((model(out).argmax(1) == y).float().mean())
        linf = float((out - x).abs().max())
        print(f"| {name} ({versions[name]}) | {med:.3f} | {rate:.1f} | {ours_rate / rate:.2f}x | "
              f"{linf:.5f} | {acc:.3f} |")
    for name, why in unavailable.items():
        print(f"| {name} | unavailable: {why} | | | | |")
    print()
    runs = "; ".join(f"{n}: " + ", ".join(f"{t:.3f}" for t in ts) for n, ts in times.items())
    print(f"all runs (s): {runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""AutoAttack throughput: robnet.attacks.autoattack vs torchattacks' on the same model and batch.

Both run the standard version's four attacks in sequence, each only on the images the previous
ones left standing: APGD-CE, APGD-T (targeted DLR, 9 target classes), FAB-T (9 target classes)
and Square, L-inf eps 8/255, on ``robnet_large`` (C=36, 20 cells, 32x32 inputs) in eval mode.
torchattacks' side is the ``MultiAttack`` of its ``APGD``, ``APGDT``, ``FAB(multi_targeted=True)``
and ``Square``, which is what its ``AutoAttack`` class builds; it is assembled here so that both
run the same budget (``torchattacks.AutoAttack`` fixes Square at 5000 queries and its APGD/FAB at
10 steps). Labels are the model's clean predictions, so every image enters the pipeline; weights
are untrained unless ``--checkpoint`` is given (the numbers are speeds, not robustness). Runs are
interleaved (ours, torchattacks, ours, ...), so that load from other processes hits both alike; the
median is reported, with each attack's time and the images it received.

Usage::

    python benchmarks/bench_autoattack.py [--batch-size 8] [--steps 10] [--queries 100] [--repeats 2]

The full standard budget is ``--steps 100 --queries 5000`` (hours per batch on a CPU). torchattacks
is optional: when it cannot be imported the benchmark says why and measures ours alone
(``pip install --no-deps torchattacks``: its attacks import only torch).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robnet import build_model
from robnet.attacks.autoattack import AUTOATTACK_ATTACKS, autoattack_result

try:
    from _machine import describe
except ImportError:  # run as a module from the repo root
    from benchmarks._machine import describe

CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# (x, y) -> (x_adv, images each attack received, seconds each attack took)
_Run = Callable[[Tensor, Tensor], tuple[Tensor, list[int], list[float]]]


def make_ours(model: nn.Module, args: argparse.Namespace) -> _Run:
    def run(x: Tensor, y: Tensor) -> tuple[Tensor, list[int], list[float]]:
        res = autoattack_result(model, x, y, eps=args.eps, seed=args.seed, steps=args.steps, queries=args.queries,
                                n_target_classes=args.n_target_classes)
        counts = res.counts()
        entered = [counts[k] for k in ["clean", *AUTOATTACK_ATTACKS][:-1]]
        return res.x_adv, entered, list(res.seconds.values())
    return run


def make_torchattacks(model: nn.Module, args: argparse.Namespace) -> _Run:
    import torchattacks

    eps, steps, classes = args.eps, args.steps, args.n_target_classes + 1
    attacks = [torchattacks.APGD(model, eps=eps, steps=steps, seed=args.seed, loss="ce"),
               torchattacks.APGDT(model, eps=eps, steps=steps, seed=args.seed, n_classes=classes),
               torchattacks.FAB(model, eps=eps, steps=steps, seed=args.seed, multi_targeted=True, n_classes=classes),
               torchattacks.Square(model, eps=eps, n_queries=args.queries, seed=args.seed)]
    log: list[tuple[int, float]] = []
    for attack in attacks:  # time each attack inside the MultiAttack, and count the images it gets
        forward = attack.forward

        def timed(images: Tensor, labels: Tensor, forward: Any = forward) -> Tensor:
            t0 = time.perf_counter()
            out = forward(images, labels)
            _sync(images)
            log.append((images.shape[0], time.perf_counter() - t0))
            return out
        attack.forward = timed  # type: ignore[method-assign]
    multi = torchattacks.MultiAttack(attacks)

    def run(x: Tensor, y: Tensor) -> tuple[Tensor, list[int], list[float]]:
        log.clear()
        out = multi(x, y)
        entered = [n for n, _ in log] + [0] * (4 - len(log))  # MultiAttack stops once nothing stands
        return out, entered, [s for _, s in log] + [0.0] * (4 - len(log))
    return run


def _sync(x: Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def load_batch(args: argparse.Namespace, device: torch.device) -> tuple[Tensor, str]:
    """The first ``batch_size`` CIFAR-10 test images (or uniform noise), in [0, 1]."""
    if args.data == "cifar10" and (CIFAR / "cifar-10-batches-py").is_dir():
        from robnet.data.datasets import load_dataset

        test = load_dataset("cifar10", root=CIFAR, split="test")
        return test.images[:args.batch_size].float().div(255).to(device), "the first CIFAR-10 test images"
    g = torch.Generator().manual_seed(args.seed)
    return torch.rand(args.batch_size, 3, 32, 32, generator=g).to(device), "uniform noise images"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=10, help="APGD-CE, APGD-T and FAB-T iterations (standard: 100)")
    p.add_argument("--queries", type=int, default=100, help="Square's queries per image (standard: 5000)")
    p.add_argument("--n-target-classes", type=int, default=9)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--data", choices=["cifar10", "random"], default="cifar10")
    p.add_argument("--checkpoint", default=None,
                   help="load these weights (robnet.io.load_model) instead of random ones")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per implementation (median reported)")
    p.add_argument("--C", type=int, default=36, help="RobNet initial channels (robnet_large: 36)")
    p.add_argument("--layers", type=int, default=20, help="RobNet cells (robnet_large: 20)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def build(args: argparse.Namespace, device: torch.device) -> nn.Module:
    if args.checkpoint:
        from robnet.io import load_model

        model, _ = load_model(args.checkpoint)
        return model.to(device).eval()
    torch.manual_seed(args.seed)
    return build_model("robnet_large", C=args.C, layers=args.layers).to(device).eval()


def report(model: nn.Module, x: Tensor, y: Tensor, runs: dict[str, list[tuple[float, Any]]]) -> None:
    """One row per implementation: median time, rate, ratio, what each attack got and took, and checks."""
    medians = {name: statistics.median(t for t, _ in rs) for name, rs in runs.items()}
    print("\n| implementation | median s/batch | images/s | ours / it | images entering apgd-ce/apgd-t/fab-t/square "
          "| seconds per attack (last run) | robust after | max abs(x_adv - x) |")
    print("|---|---:|---:|---:|---|---|---:|---:|")
    for name, rs in runs.items():
        out, entered, seconds = rs[-1][1]
        out = out.detach()
        with torch.no_grad():
            robust = int((model(out).argmax(1) == y).sum())
        rate = x.shape[0] / medians[name]
        print(f"| {name} | {medians[name]:.1f} | {rate:.3f} | {medians[name] / medians['robnet']:.2f}x | "
              f"{'/'.join(map(str, entered))} | {'/'.join(f'{s:.1f}' for s in seconds)} | {robust}/{x.shape[0]} | "
              f"{float((out - x).abs().max()):.5f} |")
    print("\nall runs (s): " + "; ".join(f"{n}: " + ", ".join(f"{t:.1f}" for t, _ in rs) for n, rs in runs.items()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build(args, device)
    x, what = load_batch(args, device)
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # labels = clean predictions: every image enters the pipeline
    params = sum(p.numel() for p in model.parameters())
    print(describe(device))
    print(f"model: robnet_large, C={args.C}, layers={args.layers}, {params:,} params, "
          f"{'weights ' + args.checkpoint if args.checkpoint else 'untrained weights'}, eval mode; batch "
          f"{args.batch_size}x3x32x32 ({what}), labels = clean predictions; AutoAttack L-inf eps {args.eps:.5g}: "
          f"APGD-CE and APGD-T {args.steps} steps, FAB-T {args.steps} steps, {args.n_target_classes} target classes, "
          f"Square {args.queries} queries, 1 restart; {args.repeats} timed runs each, interleaved, median")
    impls: dict[str, _Run] = {"robnet": make_ours(model, args)}
    try:
        import torchattacks

        impls[f"torchattacks {torchattacks.__version__}"] = make_torchattacks(model, args)
    except Exception as err:  # optional competitor: report and go on
        print(f"torchattacks: unavailable ({type(err).__name__}: {err})")
    runs: dict[str, list[tuple[float, Any]]] = {name: [] for name in impls}
    for _ in range(args.repeats):
        for name, fn in impls.items():
            _sync(x)
            t0 = time.perf_counter()
            result = fn(x, y)
            _sync(x)
            runs[name].append((time.perf_counter() - t0, result))
    report(model, x, y, runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

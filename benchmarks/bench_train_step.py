"""One PGD-7 adversarial training step: robnet.train.loop vs a loop written the way the official code does it.

The official loop (RobNets ``main.py`` + ``attack.py``): a ``torch.utils.data.DataLoader`` over a
dataset that crops (pad 4) and flips each image on the host, the batch copied to the device, fp32,
NCHW, the model in train mode, PGD with ``x.requires_grad_()`` / ``autograd.grad`` /
``min(max(...))`` projection, then the update. Ours: :class:`robnet.data.loader.DeviceLoader` (data
resident on the device, augmentation vectorised there), :func:`robnet.train.loop.adversarial_step`
(attack on frozen parameters, no host syncs), channels_last, and bf16 autocast on CUDA.

Both loops train copies of the same model from the same weights on the same images; steps are
interleaved (ours, official, ours, ...) and the median time per step is reported, with images/s
and (CUDA) peak memory.

Usage::

    python benchmarks/bench_train_step.py [--model robnet_large] [--C 36] [--layers 20]
        [--batch-size 128] [--device cuda] [--repeats 5] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from robnet import build_model
from robnet.data.datasets import ArrayDataset
from robnet.data.loader import Augment, DeviceLoader
from robnet.train.config import TrainConfig
from robnet.train.loop import adversarial_step, param_groups

EPS, STEP, STEPS = 8 / 255, 2 / 255, 7


class HostAugmented(torch.utils.data.Dataset):
    """Per-sample crop (zero pad 4) + flip on the host, as torchvision transforms would do it."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.images, self.labels = images, labels
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = np.pad(self.images[i], ((0, 0), (4, 4), (4, 4)))
        dy, dx = self.rng.integers(0, 9, size=2)
        img = img[:, dy:dy + 32, dx:dx + 32]
        if self.rng.random() < 0.5:
            img = img[:, :, ::-1]
        return torch.from_numpy(np.ascontiguousarray(img)).float().div(255), int(self.labels[i])


def official_step(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
                  targets: torch.Tensor) -> None:
    """The official AttackPGD forward + update, fp32, model in train mode throughout."""
    x = inputs.detach()
    x = x + torch.zeros_like(x).uniform_(-EPS, EPS)
    for _ in range(STEPS):
        x.requires_grad_()
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), targets, reduction="sum")
        grad = torch.autograd.grad(loss, [x])[0]
        x = x.detach() + STEP * torch.sign(grad.detach())
        x = torch.min(torch.max(x, inputs - EPS), inputs + EPS)
        x = torch.clamp(x, 0, 1)
    loss = F.cross_entropy(model(x), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="robnet_large")
    p.add_argument("--C", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the official loop")
    p.add_argument("--compile", action="store_true", help="torch.compile our model")
    p.add_argument("--no-amp", action="store_true", help="ours without bf16 autocast (CUDA)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    overrides = {k: v for k, v in (("C", args.C), ("layers", args.layers)) if v is not None}
    torch.manual_seed(0)
    base = build_model(args.model, **overrides)
    n_img = args.batch_size * (args.warmup + args.repeats)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_img, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_img).astype(np.int64)

    # ours
    cfg = TrainConfig(batch_size=args.batch_size, compile=args.compile,
                      amp=device.type == "cuda" and not args.no_amp)  # TrainConfig.amp is a plain bool now
    amp = cfg.amp
    ours = copy.deepcopy(base).to(device).to(memory_format=torch.channels_last).train()
    opt_ours = torch.optim.SGD(param_groups(ours, cfg.weight_decay), lr=0.1, momentum=0.9)
    net: nn.Module = torch.compile(ours) if args.compile else ours  # type: ignore[assignment]
    ds = ArrayDataset(name="synthetic", split="train", images=torch.from_numpy(images),
                      labels=torch.from_numpy(labels), classes=tuple(str(i) for i in range(10)))
    loader = DeviceLoader(ds, batch_size=args.batch_size, device=device, shuffle=True, augment=Augment(),
                          drop_last=True, channels_last=True)
    ours_iter = iter(loader)
    gen = torch.Generator(device=device).manual_seed(0)

    def step_ours() -> None:
        x, y = next(ours_iter)
        noise = torch.empty_like(x).uniform_(-1, 1, generator=gen)
        adversarial_step(net, ours, opt_ours, x, y, config=cfg, noise=noise, amp=amp)

    # official
    official = copy.deepcopy(base).to(device).train()
    opt_off = torch.optim.SGD(param_groups(official, 1e-4), lr=0.1, momentum=0.9)
    dl = torch.utils.data.DataLoader(HostAugmented(images, labels, 0), batch_size=args.batch_size, shuffle=True,
                                     num_workers=args.workers, pin_memory=device.type == "cuda", drop_last=True)
    off_iter = iter(dl)

    def step_official() -> None:
        inputs, targets = next(off_iter)
        official_step(official, opt_off, inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True))

    def timed(fn: Callable[[], None]) -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")  # CPU: n/a
        return time.perf_counter() - t0, peak

    params = sum(q.numel() for q in base.parameters())
    print(describe(device))
    print(f"model {args.model} {overrides or ''} ({params:,} params), batch {args.batch_size}, PGD-{STEPS} "
          f"eps 8/255 step 2/255 + SGD update; {args.warmup} warm-up + {args.repeats} timed steps each, "
          f"interleaved; ours: amp={amp}, channels_last=True, compile={args.compile}")
    for _ in range(args.warmup):
        timed(step_ours)
        timed(step_official)
    t_ours, t_off, m_ours, m_off = [], [], [], []
    for _ in range(args.repeats):
        s, m = timed(step_ours)
        t_ours.append(s)
        m_ours.append(m)
        s, m = timed(step_official)
        t_off.append(s)
        m_off.append(m)
    med_ours, med_off = statistics.median(t_ours), statistics.median(t_off)
    print()
    print("| loop | median s/step | images/s | peak GiB | speed-up |")
    print("|---|---:|---:|---:|---:|")
    print(f"| official-style (DataLoader, fp32, NCHW) | {med_off:.3f} | {args.batch_size / med_off:.1f} | "
          f"{max(m_off):.2f} | 1.00x |")
    print(f"| robnet.train.loop | {med_ours:.3f} | {args.batch_size / med_ours:.1f} | {max(m_ours):.2f} | "
          f"{med_off / med_ours:.2f}x |")
    print(f"\nall steps (s): ours {', '.join(f'{t:.3f}' for t in t_ours)}; "
          f"official {', '.join(f'{t:.3f}' for t in t_off)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the search does to one candidate network: BatchNorm recalibration, accuracy under an
attack on a fixed set of batches, and its cost (parameters, multiply-adds).

These run in one process on one candidate (the search shards candidates over ranks, it never
splits one candidate over ranks), so nothing here talks to a process group.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robnet.utils import eval_mode, train_mode

__all__ = ["AccuracyResult", "accuracy", "count_flops", "count_params", "recalibrate_bn"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
AttackFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Batches, *, max_batches: int) -> int:
    """Re-estimate every BatchNorm's running mean and variance on ``batches``.

    A sub-network that inherits supernet weights also inherits running statistics averaged over
    many *other* sampled architectures; its own activations have other statistics. This resets
    each BN's running buffers and recomputes them as the exact (cumulative, ``momentum=None``)
    average over up to ``max_batches`` batches of clean training images, in train mode with no
    gradient. Weights are not touched; every module's mode and every BN's momentum are restored.

    Returns:
        the number of batches used.
    """
    if max_batches < 1:
        raise ValueError(f"recalibrate_bn: max_batches must be >= 1, got {max_batches}")
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [(m, m.momentum) for m in bns]
    used = 0
    try:
        for m in bns:
            if m.track_running_stats:
                m.reset_running_stats()
                m.momentum = None  # cumulative moving average: the plain mean over the batches seen
        with train_mode(model):
            for x, _ in batches:
                model(x)
                used += 1
                if used >= max_batches:
                    break
    finally:
        for m, momentum in saved:
            m.momentum = momentum
    if used == 0:
        raise ValueError("recalibrate_bn: no batches to recalibrate on")
    return used


@dataclass(frozen=True)
class AccuracyResult:
    """Correct counts on one set of batches (and, when asked for, the adversarial batches)."""

    clean_correct: int
    adv_correct: int
    n: int
    adversarial: tuple[torch.Tensor, ...] = ()

    @property
    def clean_acc(self) -> float:
        return self.clean_correct / self.n

    @property
    def adv_acc(self) -> float:
        return self.adv_correct / self.n


def accuracy(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
             attack: AttackFn, *, keep_adversarial: bool = False) -> AccuracyResult:
    """Clean and attacked accuracy of ``model`` in eval mode on ``batches`` (each sample once).

    The attack runs in float32 (reported numbers: SPEC §3); the model's mode is restored. With
    ``keep_adversarial`` the adversarial batches are returned too (the search hands them to its
    scorer, so the FSP distance needs no second attack).
    """
    kept: list[torch.Tensor] = []
    clean = adv = n = 0
    with eval_mode(model):
        for x, y in batches:
            with torch.no_grad():
                clean += int((model(x).argmax(1) == y).sum())
            x_adv = attack(model, x, y)
            if keep_adversarial:
                kept.append(x_adv.detach())
            with torch.no_grad():
                logits = model(x_adv)
            if not torch.isfinite(logits).all():
                raise ValueError("the candidate's logits are not finite (NaN/inf weights or activations); its "
                                 "accuracy would be meaningless")
            adv += int((logits.argmax(1) == y).sum())
            n += y.numel()
    if n == 0:
        raise ValueError("accuracy: no samples to evaluate on")
    return AccuracyResult(clean, adv, n, tuple(kept))


def count_params(model: nn.Module) -> int:
    """Number of parameters (the paper's "#Params")."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one image of shape ``(C, H, W)``: convolutions and
    linear layers (the usual "FLOPs" of NAS papers, which count a multiply-add once)."""
    total = 0

    def conv_hook(m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Conv2d)
        k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
        total += out[0].numel() * k

    def linear_hook(m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(m, nn.Linear)
        total += out[0].numel() * m.in_features

    handles = []
    try:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                handles.append(m.register_forward_hook(conv_hook))
            elif isinstance(m, nn.Linear):
                handles.append(m.register_forward_hook(linear_hook))
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad(), eval_mode(model), contextlib.ExitStack():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
    return total

"""What the search does to one candidate network: BatchNorm recalibration, accuracy under an
attack on a fixed set of batches, and its cost (parameters, multiply-adds).

These run in one process on one candidate (the search shards candidates over ranks, it never
splits one candidate over ranks), so nothing here talks to a process group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from robnet.attacks.contract import AttackFn
from robnet.utils import eval_mode, train_mode

__all__ = ["AccuracyResult", "accuracy", "count_flops", "count_params", "recalibrate_bn"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


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
    """Which samples were classified correctly, clean and under the attack (one bool per sample,
    in batch order, on the CPU), and, when asked for, the adversarial batches."""

    clean_hits: torch.Tensor
    adv_hits: torch.Tensor
    adversarial: tuple[torch.Tensor, ...] = ()

    @property
    def n(self) -> int:
        return len(self.adv_hits)

    @property
    def clean_acc(self) -> float:
        return float(self.clean_hits.double().mean())

    @property
    def adv_acc(self) -> float:
        return float(self.adv_hits.double().mean())


def accuracy(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
             attack: AttackFn, *, keep_adversarial: bool = False) -> AccuracyResult:
    """Clean and attacked accuracy of ``model`` in eval mode on ``batches`` (each sample once).

    The attack runs in float32 (reported numbers: docs/design.md §3); the model's mode is restored.
    With ``keep_adversarial`` the adversarial batches are returned too (the search hands them to
    its scorer, so the FSP distance needs no second attack). The per-sample hits are read on the
    host once, at the end.

    Raises:
        ValueError: no samples, or non-finite logits (NaN/inf weights or activations).
    """
    kept: list[torch.Tensor] = []
    clean, adv = [], []
    with eval_mode(model):
        for x, y in batches:
            with torch.no_grad():
                clean.append(model(x).argmax(1) == y)
            x_adv = attack(model, x, y)
            if keep_adversarial:
                kept.append(x_adv.detach())
            with torch.no_grad():
                logits = model(x_adv)
            if not torch.isfinite(logits).all():
                raise ValueError("the candidate's logits are not finite (NaN/inf weights or activations); its "
                                 "accuracy would be meaningless")
            adv.append(logits.argmax(1) == y)
    if not adv:
        raise ValueError("accuracy: no samples to evaluate on")
    return AccuracyResult(torch.cat(clean).cpu(), torch.cat(adv).cpu(), tuple(kept))


def count_params(model: nn.Module) -> int:
    """Number of parameters (the paper's "#Params")."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one image of shape ``(C, H, W)`` (the usual "FLOPs" of NAS
    papers, which count a multiply-add once): ``torch.utils.flop_counter``'s count, which counts two
    FLOPs per multiply-add of the convolutions and matrix products, halved."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), eval_mode(model), counter:
        model(torch.zeros((1, *input_shape), device=device))
    return counter.get_total_flops() // 2

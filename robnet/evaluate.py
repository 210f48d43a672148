"""Robust evaluation: the paper's Table 1 row (clean, FGSM, PGD-20/100, DeepFool, MI-FGSM) for any model.

Accuracy is counted exactly: every sample of the split is evaluated once, also under DDP (the
loader shards without padding and the counts are summed over ranks). Each accuracy comes with a
95% Wilson score interval. Cheap gradient-masking checks (in the spirit of AutoAttack's flags,
Croce & Hein 2020; Athalye et al. 2018) run on the first batch before the expensive attacks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .attack_spec import AttackConfig, make_attack
from .attacks import fgsm, pgd
from .data import ArrayDataset
from .distributed import all_reduce_, dist_info
from .loader import DeviceLoader, make_loader
from .modes import eval_mode

log = logging.getLogger(__name__)


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion ``correct / n``."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class AttackResult:
    name: str
    config: dict[str, Any]
    correct: int
    n: int
    seconds: float

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        lo, hi = self.ci95
        return {"name": self.name, "accuracy": self.accuracy, "ci95": [lo, hi], "correct": self.correct,
                "n": self.n, "seconds": self.seconds, "attack": self.config}


@dataclass
class EvalReport:
    results: list[AttackResult]
    warnings: list[str] = field(default_factory=list)
    n: int = 0
    seed: int = 0
    device: str = "cpu"
    transfer_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, name: str) -> float:
        for r in self.results:
            if r.name == name:
                return r.accuracy
        raise KeyError(f"no result named {name!r}; have {[r.name for r in self.results]}")

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "seed": self.seed, "device": self.device, "transfer_from": self.transfer_from,
                "results": [r.to_dict() for r in self.results], "warnings": self.warnings,
                "versions": versions(), **self.extra}

    def table(self) -> str:
        """A Table-1 style row: one column per attack, accuracy in percent with its 95% interval."""
        names = [r.name for r in self.results]
        widths = [max(len(n), 19) for n in names]
        head = "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))
        cells = []
        for r, w in zip(self.results, widths, strict=True):
            lo, hi = r.ci95
            cells.append(f"{100 * r.accuracy:6.2f} [{100 * lo:5.1f},{100 * hi:5.1f}]".rjust(w))
        return head + "\n" + "  ".join(cells)


def versions() -> dict[str, str]:
    import robnet

    return {"robnet": robnet.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def gradient_masking_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 8 / 255,
                            step_size: float = 2 / 255, generator: torch.Generator | None = None) -> list[str]:
    """Cheap signs of gradient masking on one batch; returns human-readable warnings (empty: none seen).

    Checks: (1) outputs that look like probabilities (softmax inside the model flattens the
    cross-entropy gradient); (2) input gradients that are exactly zero; (3) PGD weaker than FGSM;
    (4) accuracy that does not decrease as PGD runs more steps.
    """
    warnings: list[str] = []
    with torch.no_grad():
        out = model(x).float()
    if bool((out >= 0).all()) and torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-3):
        warnings.append("model outputs look like probabilities (non-negative, rows sum to 1): attacks on a softmax "
                        "output get vanishing gradients and overestimate robustness; return logits instead")
    x_req = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x_req).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_req)
    zero = int((grad.flatten(1).abs().amax(1) == 0).sum())
    if zero:
        warnings.append(f"{zero} of {len(x)} samples have an exactly zero input gradient: the loss surface is flat "
                        "there (saturated outputs, non-differentiable layers?); gradient attacks cannot move them")

    def acc(xa: torch.Tensor) -> float:
        with torch.no_grad():
            return float((model(xa).argmax(1) == y).float().mean())

    a_fgsm = acc(fgsm(model, x, y, eps=eps))
    steps_acc = [acc(pgd(model, x, y, eps=eps, step_size=step_size, steps=s, random_start=True,
                         generator=generator)) for s in (1, 5, 20)]
    slack = 1.5 / len(x)  # one or two samples of noise
    if steps_acc[-1] > a_fgsm + slack:
        warnings.append(f"PGD-20 is weaker than FGSM on the first batch ({steps_acc[-1]:.3f} vs {a_fgsm:.3f}): "
                        "a sign of gradient masking; try more restarts or a black-box attack")
    if steps_acc[1] > steps_acc[0] + slack or steps_acc[2] > steps_acc[1] + slack:
        warnings.append(f"accuracy does not decrease with PGD steps (1/5/20 steps: "
                        f"{steps_acc[0]:.3f}/{steps_acc[1]:.3f}/{steps_acc[2]:.3f}): a sign of gradient masking")
    return warnings


# A stronger attack may lose to a weaker one by a few samples by chance (random starts, weak models);
# only a gap above this many accuracy points is reported.
CONSISTENCY_MARGIN = 0.01


def _consistency_warnings(results: Sequence[AttackResult]) -> list[str]:
    acc = {r.name: r.accuracy for r in results}
    out = []
    for strong, weak in (("pgd20", "fgsm"), ("pgd100", "fgsm"), ("pgd100", "pgd20")):
        if strong in acc and weak in acc and acc[strong] > acc[weak] + CONSISTENCY_MARGIN:
            out.append(f"{strong} accuracy ({acc[strong]:.4f}) is more than {CONSISTENCY_MARGIN:.0%} above {weak} "
                       f"({acc[weak]:.4f}): the stronger attack did worse, a sign of gradient masking")
    return out


def eval_batches(data: ArrayDataset | torch.utils.data.Dataset[Any], *, batch_size: int, device: torch.device,
                 num_workers: int = 4) -> tuple[Iterable[tuple[torch.Tensor, torch.Tensor]], int]:
    """Batches of ``data`` on ``device`` in dataset order, each sample exactly once, and their count.

    In-memory sets go through :class:`DeviceLoader` (sharded over DDP ranks without padding);
    streamed folder sets (Tiny-ImageNet, ImageNet-val) through a DataLoader, in one process.
    """
    rank, world = dist_info()
    if isinstance(data, ArrayDataset):
        loader = DeviceLoader(data, batch_size=batch_size, device=device, shuffle=False, rank=rank,
                              world_size=world)
        return loader, len(loader)
    if world > 1:
        raise ValueError("streamed folder datasets are evaluated in one process; run without torchrun")
    dl = make_loader(data, batch_size=batch_size, shuffle=False, num_workers=num_workers, seed=0,
                     pin_memory=device.type == "cuda")
    moved = ((x.to(device, non_blocking=True), y.to(device, non_blocking=True)) for x, y in dl)
    return moved, len(dl)


def evaluate(model: nn.Module, data: ArrayDataset | torch.utils.data.Dataset[Any],
             attacks: Sequence[tuple[str, AttackConfig]], *, batch_size: int = 256,
             device: torch.device | str | None = None, seed: int = 0, source: nn.Module | None = None,
             transfer_from: str | None = None, amp: bool | None = None, masking_checks: bool = True,
             progress: bool = True, num_workers: int = 4) -> EvalReport:
    """Accuracy of ``model`` under each attack, on every sample of ``data`` exactly once.

    Args:
        model: the classifier (scored in eval mode; its mode is restored afterwards).
        data: the evaluation split: an in-memory :class:`ArrayDataset` (any number of DDP
            processes) or a streamed folder dataset (one process; ``num_workers`` decode it).
        attacks: (name, config) pairs, e.g. from :func:`robnet.attacks.parse_attack`; a config named
            "none" measures clean accuracy.
        batch_size: per-process batch.
        device: where to run (default: the model's device).
        seed: seeds the attacks' random starts (per rank and batch, recorded).
        source: transfer (black-box) setting: craft the examples on ``source``, score ``model``.
        transfer_from: a label for ``source`` recorded in the report.
        amp: bf16 autocast (default on CUDA).
        masking_checks: run the gradient-masking checks on the first batch.
        progress: tqdm bar (rank 0, TTY only).
    """
    from tqdm.auto import tqdm

    dev = torch.device(device) if device is not None else next(model.parameters()).device
    use_amp = amp if amp is not None else dev.type == "cuda"
    rank, _ = dist_info()
    loader, n_batches = eval_batches(data, batch_size=batch_size, device=dev, num_workers=num_workers)
    attacker = source if source is not None else model
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed * 1_000_003 + rank)
    fns: list[Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None] = [
        None if cfg.name == "none" else make_attack(cfg, generator=gen) for _, cfg in attacks]
    correct = torch.zeros(len(attacks), dtype=torch.long, device=dev)
    seconds = [0.0] * len(attacks)
    n = torch.zeros((), dtype=torch.long, device=dev)
    warnings: list[str] = []
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    with contextlib.ExitStack() as stack:
        stack.enter_context(eval_mode(model))
        if source is not None:
            stack.enter_context(eval_mode(source))
        # disable=None: tqdm turns itself off when stderr is not a terminal
        bar = tqdm(loader, desc="eval", unit="batch", leave=False, total=n_batches,
                   disable=True if not progress or rank else None)
        for i, (x, y) in enumerate(bar):
            if i == 0 and masking_checks and source is None and rank == 0:
                k = min(len(x), 128)
                warnings += gradient_masking_checks(model, x[:k], y[:k], generator=gen)
                for w in warnings:
                    log.warning("gradient masking check: %s", w)
            for j, fn in enumerate(fns):
                t0 = time.perf_counter()
                with autocast():
                    x_eval = x if fn is None else fn(attacker, x, y)
                    with torch.no_grad():
                        correct[j] += (model(x_eval).argmax(1) == y).sum()
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                seconds[j] += time.perf_counter() - t0
            n += y.numel()
    all_reduce_(correct)
    all_reduce_(n)
    total = int(n)
    results = [AttackResult(name=name, config=asdict(cfg), correct=int(c), n=total, seconds=s)
               for (name, cfg), c, s in zip(attacks, correct.tolist(), seconds, strict=True)]
    warnings += _consistency_warnings(results)
    return EvalReport(results=results, warnings=warnings, n=total, seed=seed, device=str(dev),
                      transfer_from=transfer_from)

"""Robust evaluation: the paper's Table 1 row (clean, FGSM, PGD-20/100, DeepFool, MI-FGSM) for any model.

Accuracy is counted exactly: every sample of the split is evaluated once, also under DDP (the
loader shards without padding and the counts are summed over ranks). Each accuracy comes with a
95% Wilson score interval. AutoAttack (``autoattack`` in the attack list) also records its
breakdown: the accuracy before any attack and after each of its four attacks. The
gradient-masking checks of :mod:`robnet.attacks.masking` (Athalye et al. 2018; the AutoAttack
protocol, Croce & Hein 2020) run on the first batch before the expensive attacks, at the radius
of the attacks being run; their numbers and verdicts go into the report.

Refused before any attack (one-line ``ValueError``): a model with NaN/inf weights, a model whose
input channels or number of outputs do not fit the data (:func:`check_model_data`), a model
whose logits on the first samples are not finite (:func:`check_finite_outputs`), an empty
dataset or attack list. Attacks run in float32 unless ``amp=True`` (bf16 autocast), which is
recorded and warned about: bf16 during the attack raised PGD-20 accuracy by 4-5 points on a
small digits model and made PGD-20 weaker than FGSM (docs/design.md §3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robnet.attacks._loop import _run
from robnet.attacks.masking import MASKING_SQUARE_QUERIES, masking_settings
from robnet.attacks.spec import AttackConfig, attack_record
from robnet.data.datasets import ArrayDataset
from robnet.data.loader import DeviceLoader, make_loader
from robnet.io.results import provenance
from robnet.utils import dist_info, eval_mode

__all__ = [
    "AttackResult",
    "EvalReport",
    "check_finite_outputs",
    "check_finite_weights",
    "check_model_data",
    "eval_batches",
    "evaluate",
    "wilson_interval",
]

log = logging.getLogger(__name__)

AMP_WARNING = ("attacks ran under bf16 autocast (amp): bf16 can mask gradients and overstate robust accuracy "
               "(docs/design.md §3); report numbers from a float32 run (without --amp)")


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
    """One column of the table: an attack's correct count over ``n`` samples.

    ``config`` is the attack as recorded (:func:`robnet.attacks.spec.attack_record`). For
    AutoAttack, ``breakdown`` holds the correct counts before any attack ("clean") and after each
    of its attacks (cumulative, in order), and ``breakdown_seconds`` their times; ``None`` for the
    other attacks and for transfer evaluations (where AutoAttack's own flags describe the source).
    """

    name: str
    config: dict[str, Any]
    correct: int
    n: int
    seconds: float
    breakdown: dict[str, int] | None = None
    breakdown_seconds: dict[str, float] | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n)

    def to_dict(self) -> dict[str, Any]:
        """Strict JSON data: with no samples, accuracy and interval are null with the reason."""
        out: dict[str, Any] = {"name": self.name, "accuracy": None, "ci95": None, "correct": self.correct,
                               "n": self.n, "seconds": self.seconds, "attack": self.config}
        if self.n:
            out["accuracy"], out["ci95"] = self.accuracy, list(self.ci95)
        else:
            out["accuracy_missing"] = "no samples were evaluated"
        if self.breakdown is not None:
            out["autoattack"] = self._breakdown_dict()
        return out

    def _breakdown_dict(self) -> dict[str, Any]:
        """AutoAttack's stages: correct count, accuracy and interval after each, and what each fooled."""
        stages, before = [], None
        times = self.breakdown_seconds or {}
        for stage, correct in (self.breakdown or {}).items():
            row: dict[str, Any] = {"after": stage, "correct": correct, "accuracy": None, "ci95": None}
            if self.n:
                row["accuracy"], row["ci95"] = correct / self.n, list(wilson_interval(correct, self.n))
            if before is not None:
                row["fooled"], row["seconds"] = before - correct, times.get(stage, 0.0)
            stages.append(row)
            before = correct
        return {"n": self.n, "stages": stages, "robust": before}


@dataclass
class EvalReport:
    """The result of :func:`evaluate`; ``to_dict`` is the JSON record (provenance block first)."""

    results: list[AttackResult]
    warnings: list[str] = field(default_factory=list)
    n: int = 0
    seed: int = 0
    device: str = "cpu"
    transfer_from: str | None = None
    amp: bool = False
    masking: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, name: str) -> float:
        for r in self.results:
            if r.name == name:
                return r.accuracy
        raise KeyError(f"no result named {name!r}; have {[r.name for r in self.results]}")

    def to_dict(self) -> dict[str, Any]:
        """Provenance (versions, device, seed, settings), precision, results, warnings, extras."""
        return {**provenance(seed=self.seed, device=self.device, settings=self.settings), "n": self.n,
                "amp": self.amp, "precision": "bfloat16" if self.amp else "float32",
                "transfer_from": self.transfer_from, "results": [r.to_dict() for r in self.results],
                "masking_checks": self.masking, "warnings": self.warnings, **self.extra}

    def table(self) -> str:
        """A Table-1 style row: one column per attack, accuracy in percent with its 95% interval.

        Each AutoAttack result adds a line with its breakdown: accuracy (%) before any attack
        and after each of its attacks.
        """
        names = [r.name for r in self.results]
        widths = [max(len(n), 19) for n in names]
        head = "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))
        cells = []
        for r, w in zip(self.results, widths, strict=True):
            lo, hi = r.ci95
            cells.append(f"{100 * r.accuracy:6.2f} [{100 * lo:5.1f},{100 * hi:5.1f}]".rjust(w))
        lines = [head, "  ".join(cells)]
        for r in self.results:
            if r.breakdown is not None and r.n:
                steps = " -> ".join(f"{stage} {100 * c / r.n:.2f}" for stage, c in r.breakdown.items())
                lines.append(f"{r.name} breakdown (accuracy %): {steps}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- checks before compute


def check_finite_weights(model: nn.Module, *, what: str = "model") -> None:
    """Refuse a model with NaN or infinite parameters or floating-point buffers (one host sync).

    A diverged checkpoint evaluates to chance-level accuracy that looks like a number; its
    attacks get NaN gradients, which the sign step turns into no step at all.

    Raises:
        ValueError: naming how many tensors are non-finite and the first one.
    """
    named = [(n, t) for n, t in [*model.named_parameters(), *model.named_buffers()]
             if t.is_floating_point() and t.numel()]
    if not named:
        return
    finite = torch.stack([torch.isfinite(t.detach()).all().to(named[0][1].device) for _, t in named]).tolist()
    bad = [n for (n, _), ok in zip(named, finite, strict=True) if not ok]
    if bad:
        raise ValueError(f"{what} has non-finite weights: {len(bad)} of {len(named)} tensors hold NaN or inf "
                         f"(first: {bad[0]}). Hint: the checkpoint comes from a diverged run; use an earlier one")


def _first_images(data: Any, k: int, device: torch.device) -> torch.Tensor:
    """The first ``k`` images of ``data`` as a float batch in [0, 1] on ``device``."""
    images = [data[i][0] for i in range(k)]
    x = torch.stack([im if isinstance(im, torch.Tensor) else torch.as_tensor(im) for im in images]).to(device)
    return x.float().div(255.0) if not x.is_floating_point() else x


def check_finite_outputs(model: nn.Module, data: Any, *, n: int = 128, what: str = "model") -> None:
    """Refuse a model whose logits on the first ``n`` samples hold NaN or inf (one forward, eval mode).

    Finite weights can still overflow (an inf scale, a huge activation): accuracies computed on
    such logits, and the attacks' gradients, mean nothing. Every rank checks the same samples,
    so under DDP all ranks refuse together.

    Raises:
        ValueError: one line naming how many of the samples have non-finite logits.
    """
    k = min(n, len(data))
    if k == 0:
        return
    device = next(iter(model.parameters()), torch.empty(0)).device
    with torch.no_grad(), eval_mode(model):
        out = model(_first_images(data, k, device))
    bad = int((~torch.isfinite(out.float()).all(1)).sum())
    if bad:
        raise ValueError(f"{what} produces non-finite outputs: {bad} of the first {k} samples have NaN or inf logits, "
                         "so its accuracies and attack gradients would mean nothing. Hint: the model overflows "
                         "(a diverged checkpoint, an inf scale); check it on clean data first")


def _dataset_attr(data: Any, name: str) -> Any:
    """``data.name``, looking through ``torch.utils.data.Subset`` wrappers."""
    while not hasattr(data, name) and isinstance(data, torch.utils.data.Subset):
        data = data.dataset
    return getattr(data, name, None)


def check_model_data(model: nn.Module, data: Any, *, allow_more_classes: bool = False,
                     what: str = "model") -> int:
    """Check that ``model`` fits ``data``: input channels, then number of outputs vs classes.

    The channel count comes from the model's first ``Conv2d``; the number of outputs from one
    forward of the first sample (eval mode, no gradient, the model's device).

    Args:
        model: the classifier.
        data: an :class:`ArrayDataset`, a folder dataset or a ``Subset`` of one (non-empty).
        allow_more_classes: accept a model with more outputs than the data has classes (e.g. an
            ImageNet-1k model on a subset of the classes); never fewer.
        what: how errors name the model ("model", "transfer source", a checkpoint path).

    Returns:
        The model's number of outputs.

    Raises:
        ValueError: empty data, wrong channel count, outputs that are not (N, classes), fewer
            outputs than classes, or more without ``allow_more_classes``.
    """
    if len(data) == 0:
        raise ValueError("the dataset is empty: nothing to evaluate. Hint: check --subset / --n and --split")
    label = f"{_dataset_attr(data, 'name') or 'the data'}"
    image, _ = data[0]
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and image.dim() == 3 and first.in_channels != image.shape[0]:
        raise ValueError(f"{what} expects {first.in_channels}-channel images but {label} has {image.shape[0]}: "
                         "wrong --data for this checkpoint?")
    device = next(iter(model.parameters()), torch.empty(0)).device
    x = image.to(device).float().div(255.0) if not image.is_floating_point() else image.to(device)
    with torch.no_grad(), eval_mode(model):
        out = model(x[None])
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{what} must return logits of shape (N, classes), got {got}")
    outputs, classes = int(out.shape[1]), _dataset_attr(data, "num_classes")
    if classes is None:
        return outputs
    if outputs < classes:
        raise ValueError(f"{what} has {outputs} outputs but {label} has {classes} classes: labels "
                         f"{outputs}..{classes - 1} can never be predicted. Hint: wrong --data for this checkpoint?")
    if outputs > classes and not allow_more_classes:
        raise ValueError(f"{what} has {outputs} outputs but {label} has {classes} classes: wrong --data for this "
                         "checkpoint? Hint: --allow-more-classes (allow_more_classes=True) accepts a model with "
                         "more outputs than the data's classes")
    return outputs


# A stronger attack may lose to a weaker one by a few samples by chance (random starts, weak models);
# only a gap above this many accuracy points is reported.
CONSISTENCY_MARGIN = 0.01


def _consistency_warnings(results: Sequence[AttackResult]) -> list[str]:
    acc = {r.name: r.accuracy for r in results}
    out = []
    pairs = (("pgd20", "fgsm"), ("pgd100", "fgsm"), ("pgd100", "pgd20"), ("autoattack", "fgsm"),
             ("autoattack", "pgd20"), ("autoattack", "pgd100"))
    for strong, weak in pairs:
        if strong in acc and weak in acc and acc[strong] > acc[weak] + CONSISTENCY_MARGIN:
            out.append(f"{strong} accuracy ({acc[strong]:.4f}) is more than {CONSISTENCY_MARGIN:.0%} above {weak} "
                       f"({acc[weak]:.4f}): the stronger attack did worse, a sign of gradient masking")
    return out


# ----------------------------------------------------------------------------- evaluation


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


def _check_attacks(attacks: Sequence[tuple[str, AttackConfig]], batch_size: int) -> None:
    if not attacks:
        raise ValueError("evaluate: no attacks given. Hint: e.g. [('clean', parse_attack('clean'))]")
    for item in attacks:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], AttackConfig)):
            raise TypeError(f"evaluate: attacks must be (name, AttackConfig) pairs, got {item!r}. "
                            "Hint: robnet.attacks.spec.parse_attack_list('clean,pgd20')")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate: batch_size must be an int >= 1, got {batch_size!r}")


def evaluate(model: nn.Module, data: ArrayDataset | torch.utils.data.Dataset[Any],
             attacks: Sequence[tuple[str, AttackConfig]], *, batch_size: int = 256,
             device: torch.device | str | None = None, seed: int = 0, source: nn.Module | None = None,
             transfer_from: str | None = None, amp: bool = False, masking_checks: bool = True,
             progress: bool = True, num_workers: int = 4, allow_more_classes: bool = False) -> EvalReport:
    """Accuracy of ``model`` under each attack, on every sample of ``data`` exactly once.

    Args:
        model: the classifier (scored in eval mode; its mode is restored afterwards).
        data: the evaluation split: an in-memory :class:`ArrayDataset` (any number of DDP
            processes) or a streamed folder dataset (one process; ``num_workers`` decode it).
        attacks: (name, config) pairs, e.g. from :func:`robnet.attacks.spec.parse_attack_list`; a
            config named "none" measures clean accuracy, one named "autoattack" also records
            AutoAttack's per-attack breakdown (:class:`AttackResult`).
        batch_size: per-process batch.
        device: where to run (default: the model's device).
        seed: seeds the attacks' random starts (per rank and batch, recorded).
        source: transfer (black-box) setting: craft the examples on ``source``, score ``model``.
        transfer_from: a label for ``source`` recorded in the report.
        amp: bf16 autocast during attacks and scoring (default off; recorded and warned about).
        masking_checks: run the gradient-masking checks (:func:`gradient_masking_report`) on the
            first batch (at most 128 images), at the radius of the L-inf attacks in ``attacks``
            (:func:`masking_settings`); their numbers and verdicts go into ``masking``.
        progress: tqdm bar (rank 0, TTY only).
        num_workers: image-decoding workers for streamed folder sets.
        allow_more_classes: accept a model with more outputs than the data's classes.

    Raises:
        ValueError: no attacks, an empty dataset, non-finite weights, non-finite logits on the
            first samples, a model (or source) that does not fit the data (:func:`check_model_data`).
    """
    _check_attacks(attacks, batch_size)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    for net, what in ((model, "model"), (source, "transfer source")):
        if net is not None:
            check_finite_weights(net, what=what)
            check_model_data(net, data, allow_more_classes=allow_more_classes, what=what)
            check_finite_outputs(net, data, what=what)
    mask = masking_settings([cfg for _, cfg in attacks])
    warnings = [AMP_WARNING] if amp else []
    if amp:
        log.warning("%s", AMP_WARNING)
    checks = masking_checks and source is None
    batches = eval_batches(data, batch_size=batch_size, device=dev, num_workers=num_workers)
    run = _run(model, batches, attacks, dev=dev, seed=seed, source=source, amp=amp, checks=checks, mask=mask,
               progress=progress)
    warnings += run.warnings
    results = [AttackResult(name=name, config=attack_record(cfg), correct=c, n=run.n, seconds=s, breakdown=b,
                            breakdown_seconds=bs)
               for (name, cfg), c, s, b, bs in zip(attacks, run.correct, run.seconds, run.breakdown,
                                                   run.breakdown_seconds, strict=True)]
    warnings += _consistency_warnings(results)
    settings = {"attacks": [name for name, _ in attacks], "batch_size": batch_size, "amp": amp,
                "masking_checks": masking_checks, "allow_more_classes": allow_more_classes,
                "transfer_from": transfer_from}
    masking: dict[str, Any] = {"ran": checks, "eps": mask[0] if mask else None, "step_size": mask[1] if mask else None}
    if run.masking is not None:
        masking.update(first_batch=run.masking_n, square_queries=MASKING_SQUARE_QUERIES, checks=run.masking.checks)
    return EvalReport(results=results, warnings=warnings, n=run.n, seed=seed, device=str(dev),
                      transfer_from=transfer_from, amp=amp, masking=masking, settings=settings)

"""Robust evaluation: the paper's Table 1 row (clean, FGSM, PGD-20/100, DeepFool, MI-FGSM) for any model.

Accuracy is counted exactly: every sample of the split is evaluated once, also under DDP (the
loader shards without padding and the counts are summed over ranks). Each accuracy comes with a
95% Wilson score interval (:mod:`robnet.attacks.report`: the results, their JSON record and the
table). AutoAttack (``autoattack`` in the attack list) also records its breakdown: the accuracy
before any attack and after each of its four attacks. The gradient-masking checks of
:mod:`robnet.attacks.masking` (Athalye et al. 2018; the AutoAttack protocol, Croce & Hein 2020)
run on the first batch before the expensive attacks, at the radius of the attacks being run;
their numbers and verdicts go into the report.

Refused before any attack (one-line ``ValueError``): a model with NaN/inf weights, a model whose
input channels or number of outputs do not fit the data, a model whose logits on the first
samples are not finite (these three: :mod:`robnet.attacks.preflight`), an empty dataset or
attack list. Attacks run in float32 unless ``amp=True`` (bf16 autocast), which is recorded and
warned about: bf16 during the attack raised PGD-20 accuracy by 4-5 points on a small digits model
and made PGD-20 weaker than FGSM (docs/design.md §3).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robnet.attacks.autoattack import AUTOATTACK_ATTACKS
from robnet.attacks.config import AttackConfig, make_attack, make_autoattack
from robnet.attacks.masking import MASKING_SQUARE_QUERIES, MaskingReport, gradient_masking_report, masking_settings
from robnet.attacks.preflight import check_finite_outputs, check_finite_weights, check_model_data
from robnet.attacks.report import AttackResult, EvalReport
from robnet.attacks.spec import attack_record
from robnet.data.datasets import ArrayDataset
from robnet.data.loader import DeviceLoader, make_loader
from robnet.utils import all_reduce_, dist_info, eval_mode

__all__ = ["eval_batches", "evaluate"]

log = logging.getLogger(__name__)

AMP_WARNING = ("attacks ran under bf16 autocast (amp): bf16 can mask gradients and overstate robust accuracy "
               "(docs/design.md §3); report numbers from a float32 run (without --amp)")


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
            first samples, a model (or source) that does not fit the data (:mod:`~robnet.attacks.preflight`).
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


# ----------------------------------------------------------------------------- the loop


@dataclass
class _RunResult:
    """What the evaluation loop found: counts summed over ranks, times, breakdowns, masking checks."""

    correct: list[int]
    n: int
    seconds: list[float]
    breakdown: list[dict[str, int] | None]
    breakdown_seconds: list[dict[str, float] | None]
    warnings: list[str]
    masking: MaskingReport | None = None
    masking_n: int = 0


_Scorer = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None, list[float]]]


def _scorer(cfg: AttackConfig, gen: torch.Generator, white_box: bool) -> _Scorer:
    """``(attacker, x, y) -> (x_eval, breakdown counts or None, breakdown seconds)`` for one attack.

    White-box AutoAttack reports its stages: correct counts (clean, then after each attack) on
    the device, without a host sync.
    """
    if cfg.name == "autoattack" and white_box:
        runner = make_autoattack(cfg, generator=gen)

        def auto(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
            res = runner(m, x, y)
            counts = torch.stack([res.clean, *res.robust.values()]).sum(dim=1)
            return res.x_adv, counts, list(res.seconds.values())
        return auto
    fn = None if cfg.name == "none" else make_attack(cfg, generator=gen)

    def plain(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, None, list[float]]:
        return (x if fn is None else fn(m, x, y)), None, []
    return plain


def _run(model: nn.Module, batches: tuple[Iterable[tuple[torch.Tensor, torch.Tensor]], int],
         attacks: Sequence[tuple[str, AttackConfig]], *, dev: torch.device, seed: int, source: nn.Module | None,
         amp: bool, checks: bool, mask: tuple[float, float] | None, progress: bool) -> _RunResult:
    """The evaluation loop: correct counts per attack (summed over ranks), n, seconds, warnings.

    ``batches``: the loader and its number of batches (:func:`eval_batches`).
    ``checks``: run the masking checks on the first batch, at ``mask`` = (eps, step) (``None``:
    without the attack comparisons).
    """
    from tqdm.auto import tqdm

    rank, _ = dist_info()
    loader, n_batches = batches
    attacker = source if source is not None else model
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed * 1_000_003 + rank)
    scorers = [_scorer(cfg, gen, white_box=source is None) for _, cfg in attacks]
    tally = _Tally(attacks, dev, white_box=source is None)
    out = _RunResult(correct=[], n=0, seconds=[0.0] * len(attacks), breakdown=[], breakdown_seconds=[], warnings=[])
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    with contextlib.ExitStack() as stack:
        stack.enter_context(eval_mode(model))
        if source is not None:
            stack.enter_context(eval_mode(source))
        # disable=None: tqdm turns itself off when stderr is not a terminal
        bar = tqdm(loader, desc="eval", unit="batch", leave=False, total=n_batches,
                   disable=True if not progress or rank else None)
        for i, (x, y) in enumerate(bar):
            if i == 0 and checks and rank == 0:
                _first_batch_checks(model, x, y, mask, gen, out)
            for j, score in enumerate(scorers):
                t0 = time.perf_counter()
                with autocast():
                    x_eval, stages, stage_seconds = score(attacker, x, y)
                    with torch.no_grad():
                        logits = model(x_eval)
                tally.add(j, logits, y, stages, stage_seconds)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                out.seconds[j] += time.perf_counter() - t0
            tally.n += y.numel()
    tally.finish(out, n_scored=len(attacks))
    return out


def _first_batch_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mask: tuple[float, float] | None,
                        gen: torch.Generator, out: _RunResult) -> None:
    """The masking checks on the first batch (at most 128 images); warnings are logged and kept."""
    k = min(len(x), 128)
    eps, step = mask if mask is not None else (None, 0.0)
    out.masking = gradient_masking_report(model, x[:k], y[:k], eps=eps, step_size=step, generator=gen)
    out.masking_n = k
    out.warnings += out.masking.warnings
    for w in out.masking.warnings:
        log.warning("gradient masking check: %s", w)


class _Tally:
    """Device-side counters of the evaluation loop, summed over ranks at the end."""

    def __init__(self, attacks: Sequence[tuple[str, AttackConfig]], dev: torch.device, white_box: bool) -> None:
        self.correct = torch.zeros(len(attacks), dtype=torch.long, device=dev)
        self.nonfinite = torch.zeros((), dtype=torch.long, device=dev)  # rows with NaN/inf logits, any attack
        self.n = torch.zeros((), dtype=torch.long, device=dev)
        # AutoAttack's stage counts (clean, then after each attack), allocated from the configs, so that
        # every rank all-reduces the same tensors even if it saw no batch.
        self.stages = [torch.zeros(len(AUTOATTACK_ATTACKS) + 1, dtype=torch.long, device=dev)
                       if cfg.name == "autoattack" and white_box else None for _, cfg in attacks]
        self.stage_seconds = [[0.0] * len(AUTOATTACK_ATTACKS) for _ in attacks]

    def add(self, j: int, logits: torch.Tensor, y: torch.Tensor, stages: torch.Tensor | None,
            stage_seconds: list[float]) -> None:
        self.correct[j] += (logits.argmax(1) == y).sum()
        self.nonfinite += (~torch.isfinite(logits).all(1)).sum()
        kept = self.stages[j]
        if stages is not None and kept is not None:
            kept += stages
            self.stage_seconds[j] = [a + b for a, b in zip(self.stage_seconds[j], stage_seconds, strict=True)]

    def finish(self, out: _RunResult, *, n_scored: int) -> None:
        """Sum over ranks and fill ``out``; refuse an empty evaluation, warn about non-finite logits."""
        stages = self.stages
        for t in (self.correct, self.n, self.nonfinite, *[s for s in stages if s is not None]):
            all_reduce_(t)
        n = int(self.n)
        if n == 0:
            raise ValueError("no samples were evaluated: the dataset is empty. Hint: check --subset and --split")
        if int(self.nonfinite):
            out.warnings.append(f"{int(self.nonfinite)} of {n * n_scored} scored rows had non-finite logits (NaN or "
                                "inf): the model overflows; these accuracies are not valid")
        names = ["clean", *AUTOATTACK_ATTACKS]
        out.correct, out.n = self.correct.tolist(), n
        out.breakdown = [None if s is None else dict(zip(names, s.tolist(), strict=True)) for s in stages]
        out.breakdown_seconds = [None if s is None else dict(zip(AUTOATTACK_ATTACKS, secs, strict=True))
                                 for s, secs in zip(stages, self.stage_seconds, strict=True)]

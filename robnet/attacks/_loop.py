"""The loop behind :func:`robnet.attacks.evaluation.evaluate`: every batch through every attack,
correct counts kept on the device and summed over ranks at the end, AutoAttack's per-stage
counts, times, and the gradient-masking checks on the first batch."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from robnet.attacks.autoattack import AUTOATTACK_ATTACKS
from robnet.attacks.masking import MaskingReport, gradient_masking_report
from robnet.attacks.spec import AttackConfig, make_attack, make_autoattack
from robnet.utils import all_reduce_, dist_info, eval_mode

# The loop's warnings are evaluate's: they keep its logger's name.
log = logging.getLogger("robnet.attacks.evaluation")


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

    ``batches``: the loader and its number of batches (:func:`robnet.attacks.evaluation.eval_batches`).
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

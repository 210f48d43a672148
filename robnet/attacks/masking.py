"""Gradient-masking checks: cheap signs, on one batch, that the gradient attacks are being fooled.

A model that masks its gradients (a softmax inside it, non-differentiable layers, saturated
logits) looks robust to gradient attacks without being robust. :func:`gradient_masking_report`
runs the checks of Athalye et al. (2018) and of the AutoAttack protocol (Croce & Hein 2020) on
the first batch of an evaluation (:func:`robnet.attacks.evaluation.evaluate`), each with its
numbers and a verdict, at the radius of the attacks being evaluated (:func:`masking_settings`);
thresholds and budgets are fixed here, stated before any result (docs/design.md §3).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robnet.attacks.config import AttackConfig
from robnet.attacks.gradient import fgsm, pgd
from robnet.attacks.square import square

__all__ = [
    "MASKING_LARGE_EPS",
    "MASKING_LARGE_EPS_STEPS",
    "MASKING_PGD_STEPS",
    "MASKING_SQUARE_QUERIES",
    "MaskingReport",
    "gradient_masking_checks",
    "gradient_masking_report",
    "masking_settings",
]


# The attacks whose radius can set the checks' radius (DeepFool's eps is only a projection).
_LINF_ATTACKS = ("pgd", "fgsm", "mifgsm", "apgd", "fab_t", "square", "autoattack")


def masking_settings(attacks: Sequence[AttackConfig]) -> tuple[float, float] | None:
    """The L-inf radius and PGD step the masking checks use: those of the attacks being run.

    The PGD with the most steps sets both; without PGD, the first other L-inf attack (FGSM,
    MI-FGSM, APGD, FAB-T, Square, AutoAttack) sets eps (step eps/4). ``None`` when no L-inf attack
    with a finite, positive radius runs (the checks then skip their attack comparisons).
    """
    linf = [c for c in attacks if c.name in _LINF_ATTACKS and c.norm == "inf" and 0 < c.eps < math.inf]
    pgds = [c for c in linf if c.name == "pgd"]
    if pgds:
        best = max(pgds, key=lambda c: c.steps)
        return best.eps, best.step_size
    if linf:
        return linf[0].eps, linf[0].eps / 4
    return None


# The masking checks' own budgets: cheap enough for the first batch of every evaluation.
MASKING_PGD_STEPS = (1, 5, 20)
# Square's budget there: weak on purpose, so that it beating PGD-20 is a strong signal (with 500 queries it already
# came within 2 of 128 samples of PGD-20 on a healthy adversarially trained digits CNN at eps 0.1; with 100, 14
# samples above), and cheap: a query is one forward of the batch.
MASKING_SQUARE_QUERIES = 100
# PGD at the large radius: its steps (of 2.5 r / steps, Madry et al.'s rule).
MASKING_LARGE_EPS_STEPS = 10
# The radius at which every image can reach the uniform grey image: an attack that works leaves nothing standing.
MASKING_LARGE_EPS = 0.5


@dataclass
class MaskingReport:
    """The gradient-masking checks on one batch: each check's numbers and verdict, and the warnings.

    ``checks`` maps a check's name to a JSON-ready dict with a ``"verdict"`` ("pass", "flag" or
    "skipped", then with a ``"reason"``) and the numbers behind it; ``warnings`` holds one
    human-readable line per flag.
    """

    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, name: str, flagged: bool, message: str, **numbers: Any) -> None:
        self.checks[name] = {"verdict": "flag" if flagged else "pass", **numbers}
        if flagged:
            self.warnings.append(message)

    def skip(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            self.checks[name] = {"verdict": "skipped", "reason": reason}


_ATTACK_CHECKS = ("pgd_beats_fgsm", "pgd_steps_monotone", "square_vs_white_box", "large_eps")


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _output_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, report: MaskingReport) -> bool:
    """Checks that need no attack: finite logits, logits rather than probabilities, non-zero
    input gradients. Returns False when the logits are not finite (nothing else is meaningful)."""
    with torch.no_grad():
        out = model(x).float()
    bad = int((~torch.isfinite(out).all(1)).sum())
    report.add("finite_logits", bad > 0, f"{bad} of {len(x)} samples have non-finite logits (NaN or inf): gradients "
               "are meaningless there, a gradient-masking signature; accuracies on this model are not valid",
               nonfinite=bad, n=len(x))
    if bad:
        report.skip(["logits_not_probabilities", "nonzero_gradients", *_ATTACK_CHECKS], "non-finite logits")
        return False
    probs = bool((out >= 0).all()) and torch.allclose(out.sum(1), torch.ones_like(out[:, 0]), atol=1e-3)
    report.add("logits_not_probabilities", probs, "model outputs look like probabilities (non-negative, rows sum "
               "to 1): attacks on a softmax output get vanishing gradients and overestimate robustness; return "
               "logits instead", rows_look_like_probabilities=probs)
    x_req = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x_req).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_req)
    zero = int((grad.flatten(1).abs().amax(1) == 0).sum())
    report.add("nonzero_gradients", zero > 0, f"{zero} of {len(x)} samples have an exactly zero input gradient: the "
               "loss surface is flat there (saturated outputs, non-differentiable layers?); gradient attacks cannot "
               "move them", zero=zero, n=len(x))
    return True


def _pgd_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float,
                generator: torch.Generator | None, report: MaskingReport, slack: float) -> float:
    """PGD stronger than FGSM, and not weaker with more steps; returns PGD-20's accuracy."""
    a_fgsm = _accuracy(model, fgsm(model, x, y, eps=eps), y)
    accs = [_accuracy(model, pgd(model, x, y, eps=eps, step_size=step_size, steps=s, random_start=True,
                                 generator=generator), y) for s in MASKING_PGD_STEPS]
    report.add("pgd_beats_fgsm", accs[-1] > a_fgsm + slack,
               f"PGD-20 is weaker than FGSM on the first batch ({accs[-1]:.3f} vs {a_fgsm:.3f}, eps {eps:.4g}): a "
               "sign of gradient masking; try more restarts or a black-box attack",
               fgsm=a_fgsm, pgd20=accs[-1], slack=slack)
    rises = any(b > a + slack for a, b in itertools.pairwise(accs))
    report.add("pgd_steps_monotone", rises, f"accuracy does not decrease with PGD steps (1/5/20 steps: "
               f"{accs[0]:.3f}/{accs[1]:.3f}/{accs[2]:.3f}, eps {eps:.4g}): a sign of gradient masking",
               steps=list(MASKING_PGD_STEPS), accuracy=accs, slack=slack)
    return accs[-1]


def _black_box_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, white_box: float,
                      generator: torch.Generator | None, report: MaskingReport, slack: float,
                      queries: int) -> None:
    """Square (black-box) not stronger than PGD-20 (white-box); accuracy falls to 0 as eps grows."""
    if queries > 0 and x.dim() == 4:
        a_sq = _accuracy(model, square(model, x, y, eps=eps, queries=queries, generator=generator), y)
        report.add("square_vs_white_box", a_sq < white_box - slack,
                   f"the black-box Square attack ({queries} queries) beats white-box PGD-20 on the first batch "
                   f"({a_sq:.3f} vs {white_box:.3f}, eps {eps:.4g}): the gradients mislead PGD, a sign of gradient "
                   "masking; report AutoAttack (--attacks autoattack)", square=a_sq, white_box=white_box,
                   queries=queries, slack=slack)
    else:
        why = "square_queries=0" if queries <= 0 else "inputs are not images (N, C, H, W)"
        report.skip(["square_vs_white_box"], why)
    big = max(eps, MASKING_LARGE_EPS)
    steps = MASKING_LARGE_EPS_STEPS
    a_big = _accuracy(model, pgd(model, x, y, eps=big, step_size=2.5 * big / steps, steps=steps, generator=generator),
                      y)
    stuck = a_big > slack or a_big > white_box + slack
    report.add("large_eps", stuck, f"PGD accuracy does not fall to 0 as eps grows (PGD-20: {white_box:.3f} at eps "
               f"{eps:.4g}; PGD-{steps}: {a_big:.3f} at eps {big:.4g}); at eps {MASKING_LARGE_EPS} every image can be "
               "turned grey, so a working attack leaves nothing standing: a sign of gradient masking",
               eps=[eps, big], steps=[MASKING_PGD_STEPS[-1], steps], accuracy=[white_box, a_big], slack=slack)


def gradient_masking_report(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float | None = 8 / 255,
                            step_size: float = 2 / 255, generator: torch.Generator | None = None,
                            square_queries: int = MASKING_SQUARE_QUERIES) -> MaskingReport:
    """Cheap signs of gradient masking on one batch (Athalye et al. 2018; Croce & Hein 2020), with their numbers.

    Checks (``slack``: one or two samples, ``1.5 / len(x)``; the thresholds are fixed here, not
    tuned on results):

    - ``finite_logits``: NaN/inf logits flag, and every other check is skipped;
    - ``logits_not_probabilities``: non-negative rows summing to 1 (a softmax inside the model);
    - ``nonzero_gradients``: samples whose CE input gradient is exactly zero;
    - with ``eps`` (the L-inf radius of the attacks evaluated; ``None`` skips these):
      ``pgd_beats_fgsm`` (PGD-20 accuracy above FGSM's + slack flags), ``pgd_steps_monotone``
      (PGD-1/5/20: accuracy rising with the steps by more than slack flags),
      ``square_vs_white_box`` (black-box Square with ``square_queries`` queries below PGD-20's
      accuracy by more than slack flags: a gradient-free attack should not beat the gradient
      one), ``large_eps`` (PGD-10 at eps 0.5, step 2.5 * 0.5 / 10, where every image can reach
      the grey image: accuracy above slack, or above PGD-20's at eps + slack, flags).

    Returns:
        A :class:`MaskingReport` (checks with numbers and verdicts, and the warnings).
    """
    report = MaskingReport()
    if not _output_checks(model, x, y, report):
        return report
    if eps is None:
        report.skip(_ATTACK_CHECKS, "no L-inf attack with a finite positive radius is evaluated")
        return report
    slack = 1.5 / len(x)
    white_box = _pgd_checks(model, x, y, eps, step_size, generator, report, slack)
    _black_box_checks(model, x, y, eps, white_box, generator, report, slack, square_queries)
    return report


def gradient_masking_checks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float | None = 8 / 255,
                            step_size: float = 2 / 255, generator: torch.Generator | None = None,
                            square_queries: int = MASKING_SQUARE_QUERIES) -> list[str]:
    """The warnings of :func:`gradient_masking_report` (empty: no sign of masking seen)."""
    return gradient_masking_report(model, x, y, eps=eps, step_size=step_size, generator=generator,
                                   square_queries=square_queries).warnings

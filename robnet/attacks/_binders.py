"""The name -> binder table behind :func:`robnet.attacks.spec.make_attack`.

A binder turns an :class:`~robnet.attacks.spec.AttackConfig` (and the random-start generator)
into ``attack(model, x, y) -> x_adv`` with the config's settings bound; the table's keys are the
attack names, :data:`robnet.attacks.spec.ATTACK_NAMES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from robnet.attacks.apgd import apgd
from robnet.attacks.autoattack import AutoAttackResult, autoattack_result
from robnet.attacks.deepfool import deepfool
from robnet.attacks.fab import fab_t
from robnet.attacks.gradient import AttackFn, fgsm, mifgsm, no_attack, pgd, pgd_l2
from robnet.attacks.square import square

if TYPE_CHECKING:
    from robnet.attacks.spec import AttackConfig

_Binder = Callable[["AttackConfig", torch.Generator | None], AttackFn]


def _bind_none(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    return no_attack


def _bind_fgsm(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return fgsm(model, x, y, eps=c.eps)
    return run


def _bind_pgd(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return pgd(model, x, y, eps=c.eps, step_size=c.step_size, steps=c.steps, random_start=c.random_start,
                   generator=generator)
    return run


def _bind_pgd_l2(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return pgd_l2(model, x, y, eps=c.eps, step_size=c.step_size, steps=c.steps, random_start=c.random_start,
                      generator=generator)
    return run


def _bind_mifgsm(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return mifgsm(model, x, y, eps=c.eps, step_size=c.step_size, steps=c.steps, decay=c.decay)
    return run


def _bind_deepfool(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return deepfool(model, x, y, steps=c.steps, overshoot=c.overshoot, num_candidates=c.num_candidates,
                        norm=c.norm, eps=None if math.isinf(c.eps) else c.eps)
    return run


def _bind_apgd(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return apgd(model, x, y, eps=c.eps, norm=c.norm, loss=c.loss, steps=c.steps, restarts=c.restarts,
                    n_target_classes=c.n_target_classes, generator=generator)
    return run


def _bind_fab_t(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return fab_t(model, x, y, eps=c.eps, norm=c.norm, steps=c.steps, restarts=c.restarts,
                     n_target_classes=c.n_target_classes, generator=generator)
    return run


def _bind_square(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return square(model, x, y, eps=c.eps, norm=c.norm, queries=c.queries, p_init=c.p_init, generator=generator)
    return run


def _bind_autoattack(c: AttackConfig, generator: torch.Generator | None) -> AttackFn:
    runner = _autoattack_runner(c, generator)

    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return runner(model, x, y).x_adv
    return run


# The one table from an attack name to its binder; spec.ATTACK_NAMES and spec.make_attack follow it.
_BINDERS: dict[str, _Binder] = {
    "none": _bind_none,
    "fgsm": _bind_fgsm,
    "pgd": _bind_pgd,
    "pgd_l2": _bind_pgd_l2,
    "mifgsm": _bind_mifgsm,
    "deepfool": _bind_deepfool,
    "apgd": _bind_apgd,
    "fab_t": _bind_fab_t,
    "square": _bind_square,
    "autoattack": _bind_autoattack,
}


def _autoattack_runner(cfg: AttackConfig, generator: torch.Generator | None,
                       ) -> Callable[[nn.Module, Tensor, Tensor], AutoAttackResult]:
    """AutoAttack with ``cfg``'s settings, each call seeded from ``generator`` (see
    :func:`robnet.attacks.spec.make_autoattack`)."""
    def run(model: nn.Module, x: Tensor, y: Tensor) -> AutoAttackResult:
        device = generator.device if generator is not None else torch.device("cpu")
        seed = int(torch.randint(2**62, (1,), generator=generator, device=device))
        return autoattack_result(model, x, y, eps=cfg.eps, norm=cfg.norm, seed=seed, steps=cfg.steps,
                                 queries=cfg.queries, restarts=cfg.restarts, n_target_classes=cfg.n_target_classes)
    return run

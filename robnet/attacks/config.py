"""An attack's configuration: :class:`AttackConfig`, and :func:`make_attack`, which binds it to its function.

:class:`AttackConfig` is the frozen, validated record of one attack and its settings; it goes
verbatim (``dataclasses.asdict``) into every results record. :func:`make_attack` binds a config to
its attack function through the one name -> binder table (:data:`ATTACK_NAMES` follows it), and
:func:`make_autoattack` keeps AutoAttack's per-attack breakdown. The text form of a config
(``pgd20:eps=4/255``), with the paper's settings (docs/design.md §3) as defaults, is
:mod:`robnet.attacks.spec`.

The attack functions themselves live in :mod:`robnet.attacks.gradient` (FGSM, PGD, MI-FGSM),
:mod:`~robnet.attacks.deepfool`, :mod:`~robnet.attacks.apgd`, :mod:`~robnet.attacks.fab`,
:mod:`~robnet.attacks.square` and :mod:`~robnet.attacks.autoattack`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robnet.attacks.apgd import APGD_LOSSES, apgd
from robnet.attacks.autoattack import AutoAttackResult, autoattack_result
from robnet.attacks.contract import NORMS, AttackFn, _check_int, _check_number
from robnet.attacks.deepfool import deepfool
from robnet.attacks.fab import fab_t
from robnet.attacks.gradient import fgsm, mifgsm, no_attack, pgd, pgd_l2
from robnet.attacks.square import square

__all__ = [
    "ATTACK_NAMES",
    "AttackConfig",
    "make_attack",
    "make_autoattack",
]

# Attacks whose radius is an L-inf distance in [0, 1] pixel units: a finite eps above 1 covers the
# whole pixel range, which is never meant (a user typing 8 for 8/255).
_LINF_NAMES = ("fgsm", "pgd", "mifgsm", "square", "autoattack")
# Attacks that need a finite radius (their steps or squares are sized by it).
_FINITE_EPS_NAMES = ("pgd_l2", "apgd", "fab_t", "square", "autoattack")
# The float fields, stored as float so that equal settings written as 1 or 1.0 record alike.
_FLOAT_FIELDS = ("eps", "step_size", "decay", "overshoot", "p_init")


# ----------------------------------------------------------------------------- binders

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
    runner = make_autoattack(c, generator=generator)

    def run(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return runner(model, x, y).x_adv
    return run


# The one table from an attack name to its binder; ATTACK_NAMES and make_attack follow it.
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
ATTACK_NAMES = tuple(_BINDERS)


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """An attack and its settings, as recorded (``dataclasses.asdict``) in every results record.

    Fields an attack does not use are kept as given and ignored by it: ``decay`` is MI-FGSM's,
    ``overshoot``/``num_candidates`` are DeepFool's, ``random_start`` is PGD's, ``loss`` is APGD's,
    ``restarts``/``n_target_classes`` are those of APGD, FAB-T and AutoAttack, ``queries`` of
    Square and AutoAttack, ``p_init`` of Square; FGSM uses only eps. ``norm`` must be "2" for
    ``pgd_l2`` and "inf" for the L-inf-only attacks (FGSM, PGD, MI-FGSM, Square, AutoAttack).
    For DeepFool, ``eps`` is the radius of the final projection (``math.inf``: none). Numbers are
    stored as floats and ``norm`` in its short spelling, so equal settings compare and record
    alike however they were written.

    Attributes:
        name: one of :data:`ATTACK_NAMES` ("none" is the clean evaluation).
        eps: radius of the threat model (L-inf unless ``norm == "2"``); for the L-inf attacks a
            finite eps must be at most 1 (the whole [0, 1] pixel range).
        step_size: size of each step (L-inf: per pixel; L2: per sample); 0 for the attacks that
            set their own (APGD, FAB-T, Square, AutoAttack).
        steps: number of steps (DeepFool: maximum number of linearisations; APGD, FAB-T and
            AutoAttack: iterations per run).
        random_start: PGD's uniform start in the ball.
        decay: MI-FGSM's momentum decay.
        overshoot: DeepFool's overshoot.
        num_candidates: DeepFool's candidate classes.
        norm: "inf" or "2" ("linf" and "l2" are accepted and stored as "inf" and "2").
        loss: APGD's loss: "ce", "dlr" or "dlr-targeted" (APGD-T).
        restarts: runs of APGD, FAB-T and AutoAttack's white-box attacks (per target class for the
            targeted ones).
        n_target_classes: target classes of APGD-T, FAB-T and AutoAttack.
        queries: Square's queries per image (also inside AutoAttack).
        p_init: Square's initial fraction of the image per square.
    """

    name: str
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 20
    random_start: bool = True
    decay: float = 1.0
    overshoot: float = 0.02
    num_candidates: int = 10
    norm: str = "inf"
    loss: str = "ce"
    restarts: int = 1
    n_target_classes: int = 9
    queries: int = 5000
    p_init: float = 0.8

    def __post_init__(self) -> None:
        if self.name not in ATTACK_NAMES:
            close = difflib.get_close_matches(str(self.name), ATTACK_NAMES, n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"AttackConfig: unknown attack name {self.name!r}; expected one of "
                             f"{', '.join(ATTACK_NAMES)}.{hint}")
        what = f"AttackConfig({self.name})"
        _check_number(what, "eps", self.eps, allow_inf=True)
        for name in ("step_size", "decay", "overshoot", "p_init"):
            _check_number(what, name, getattr(self, name))
        for name in _FLOAT_FIELDS:  # 1 and 1.0 (and -0.0 and 0.0) record alike
            object.__setattr__(self, name, float(getattr(self, name)) + 0.0)
        _check_int(what, "steps", self.steps, 0)
        if not isinstance(self.random_start, bool):
            raise TypeError(f"{what}: random_start must be a bool, got {type(self.random_start).__name__}")
        _check_int(what, "num_candidates", self.num_candidates, 2)
        for name in ("restarts", "n_target_classes", "queries"):
            _check_int(what, name, getattr(self, name), 1)
        if not 0.0 < self.p_init <= 1.0:
            raise ValueError(f"{what}: p_init must lie in (0, 1] (a fraction of the image), got {self.p_init}")
        if self.loss not in APGD_LOSSES:
            raise ValueError(f"{what}: loss must be one of {', '.join(map(repr, APGD_LOSSES))}, got {self.loss!r}")
        if not isinstance(self.norm, str) or self.norm.lower() not in NORMS:
            raise ValueError(f"{what}: norm must be 'inf' or '2', got {self.norm!r}")
        object.__setattr__(self, "norm", NORMS[self.norm.lower()])
        self._check_norm_and_eps(what)

    def _check_norm_and_eps(self, what: str) -> None:
        if self.name == "pgd_l2" and self.norm != "2":
            raise ValueError(f"{what}: pgd_l2 is an L2 attack, so norm must be '2', got {self.norm!r}. "
                             "Hint: AttackConfig(name='pgd_l2', norm='2', eps=0.5, ...) or "
                             "parse_attack('pgd20_l2')")
        if self.name in _LINF_NAMES and self.norm != "inf":
            raise ValueError(f"{what}: {self.name} is an L-inf attack, so norm must be 'inf', got "
                             f"{self.norm!r}. Hint: use name='pgd_l2', 'apgd', 'fab_t' or 'deepfool' for L2")
        if self.name in _FINITE_EPS_NAMES and math.isinf(self.eps):
            raise ValueError(f"{what}: {self.name} needs a finite eps, got {self.eps}")
        if self.norm == "inf" and math.isfinite(self.eps) and self.eps > 1.0:
            raise ValueError(f"{what}: eps {self.eps} is above 1, larger than the whole [0, 1] pixel range. "
                             "Hint: L-inf radii are in pixel units, e.g. eps=8/255 (or eps=inf for no bound)")


def make_attack(cfg: AttackConfig, *, generator: torch.Generator | None = None) -> AttackFn:
    """Bind a config to its attack function: ``make_attack(cfg)(model, x, y) -> x_adv``.

    Args:
        cfg: the attack and its settings.
        generator: random-start source for PGD (ignored by the other attacks).

    Returns:
        A callable ``(model, x, y) -> x_adv``.

    Raises:
        TypeError: ``cfg`` is not an :class:`AttackConfig`.
    """
    if not isinstance(cfg, AttackConfig):
        raise TypeError(f"make_attack: expected an AttackConfig, got {type(cfg).__name__}. "
                        "Hint: parse_attack('pgd20') builds one from a string")
    return _BINDERS[cfg.name](cfg, generator)


def make_autoattack(cfg: AttackConfig, *, generator: torch.Generator | None = None,
                    ) -> Callable[[nn.Module, Tensor, Tensor], AutoAttackResult]:
    """Bind an ``autoattack`` config: ``make_autoattack(cfg)(model, x, y) -> AutoAttackResult``.

    Each call draws AutoAttack's seed from ``generator`` (``None``: torch's default generator),
    so successive batches get fresh randomness and a seeded generator makes the whole sequence
    reproducible; :func:`make_attack` returns the same call's ``x_adv``.

    Raises:
        TypeError: ``cfg`` is not an :class:`AttackConfig`.
        ValueError: ``cfg`` is not an autoattack config.
    """
    if not isinstance(cfg, AttackConfig):
        raise TypeError(f"make_autoattack: expected an AttackConfig, got {type(cfg).__name__}")
    if cfg.name != "autoattack":
        raise ValueError(f"make_autoattack: expected an autoattack config, got {cfg.name!r}. "
                         "Hint: make_attack binds every attack")

    def run(model: nn.Module, x: Tensor, y: Tensor) -> AutoAttackResult:
        device = generator.device if generator is not None else torch.device("cpu")
        seed = int(torch.randint(2**62, (1,), generator=generator, device=device))
        return autoattack_result(model, x, y, eps=cfg.eps, norm=cfg.norm, seed=seed, steps=cfg.steps,
                                 queries=cfg.queries, restarts=cfg.restarts, n_target_classes=cfg.n_target_classes)
    return run

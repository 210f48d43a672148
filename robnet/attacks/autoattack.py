"""AutoAttack (Croce & Hein, ICML 2020): the standard, parameter-free robustness evaluation.

Four complementary attacks run in sequence, each only on the points that are still classified
correctly, and a point counts as robust only if it survives all of them (settings and threat
model: docs/design.md §3):

1. APGD-CE: :func:`robnet.attacks.apgd.apgd`, cross-entropy, 100 steps, 1 run;
2. APGD-T: the targeted DLR loss against the 9 runner-up classes, 100 steps each;
3. FAB-T: :func:`robnet.attacks.fab.fab_t`, 9 target classes, 100 steps each;
4. Square: :func:`robnet.attacks.square.square`, black-box, 5000 queries.

The DLR losses are immune to rescaled logits, FAB-T to a flat loss, and Square needs no gradient
at all, so a model that masks its gradients rarely survives the ensemble. The reported robust
accuracy is the fraction of points that survived; :class:`AutoAttackResult` also keeps which
points each attack left standing (cumulative, in order), the per-attack breakdown of the authors'
reports.

The worst-case batch holds, per point, the example of the first attack that fooled it, and for
a point nothing fooled, APGD-CE's highest-loss point (classified correctly, inside the ball); the
authors' code returns ``x`` there. Each attack's success is re-checked with one forward of the
examples it returned. Randomness comes from one generator seeded with ``seed`` on x's device,
so a call is reproducible; the model should be in eval mode (BN in train mode would couple the
shrinking sub-batches). Only the L-inf version is implemented: AutoAttack-L2 needs Square-L2.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robnet.attacks.apgd import apgd
from robnet.attacks.contract import _check_inputs, _check_int, _check_number, _logits, _row_view, check_norm
from robnet.attacks.fab import fab_t
from robnet.attacks.square import square

__all__ = ["AUTOATTACK_ATTACKS", "AutoAttackResult", "autoattack", "autoattack_result"]

AUTOATTACK_ATTACKS = ("apgd-ce", "apgd-t", "fab-t", "square")
"""The attacks of the standard version, in the order they run (the names of the breakdown)."""

_VERSIONS = ("standard",)

_SubAttack = Callable[[nn.Module, Tensor, Tensor, torch.Generator], Tensor]


@dataclass(frozen=True)
class AutoAttackResult:
    """What :func:`autoattack_result` found on one batch.

    Attributes:
        x_adv: the worst-case batch (detached, x's shape and dtype, inside the ball and [0, 1]).
        clean: (N,) bool, the points classified correctly before any attack.
        robust: attack name -> (N,) bool, the points still classified correctly after that attack
            and every attack before it (cumulative, in :data:`AUTOATTACK_ATTACKS` order).
        seconds: attack name -> wall-clock seconds it took.
    """

    x_adv: Tensor
    clean: Tensor
    robust: dict[str, Tensor]
    seconds: dict[str, float]

    @property
    def final(self) -> Tensor:
        """(N,) bool: the points that survived every attack (the robust accuracy's numerator)."""
        return list(self.robust.values())[-1] if self.robust else self.clean

    def counts(self) -> dict[str, int]:
        """Correct counts: ``{"clean": ..., "apgd-ce": ..., ..., "square": ...}`` (one host sync)."""
        flags = torch.stack([self.clean, *self.robust.values()]).sum(dim=1).tolist()
        return dict(zip(["clean", *self.robust], flags, strict=True))


def _plan(eps: float, norm: str, steps: int, queries: int, restarts: int,
          n_target_classes: int) -> list[tuple[str, _SubAttack]]:
    """The standard version's attacks, bound to their settings."""
    def apgd_ce(m: nn.Module, x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
        return apgd(m, x, y, eps=eps, norm=norm, loss="ce", steps=steps, restarts=restarts, generator=g)

    def apgd_t(m: nn.Module, x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
        return apgd(m, x, y, eps=eps, norm=norm, loss="dlr-targeted", steps=steps, restarts=restarts,
                    n_target_classes=n_target_classes, generator=g)

    def fab(m: nn.Module, x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
        return fab_t(m, x, y, eps=eps, norm=norm, steps=steps, restarts=restarts,
                     n_target_classes=n_target_classes, generator=g)

    def sq(m: nn.Module, x: Tensor, y: Tensor, g: torch.Generator) -> Tensor:
        return square(m, x, y, eps=eps, norm=norm, queries=queries, generator=g)

    return list(zip(AUTOATTACK_ATTACKS, (apgd_ce, apgd_t, fab, sq), strict=True))


def _check_settings(eps: object, norm: object, seed: object, version: object, steps: object, queries: object,
                    restarts: object, n_target_classes: object) -> tuple[float, str]:
    eps_f = _check_number("autoattack", "eps", eps)
    canon = check_norm("autoattack", norm)
    if canon != "inf":
        raise ValueError(f"autoattack: only the L-inf version is implemented, got norm={norm!r}. "
                         "Hint: its L2 version needs Square-L2; apgd(..., norm='l2') and fab_t(..., norm='l2') exist")
    if eps_f > 1.0:
        raise ValueError(f"autoattack: eps {eps} is above 1, larger than the whole [0, 1] pixel range. "
                         "Hint: L-inf radii are in pixel units, e.g. eps=8/255")
    if version not in _VERSIONS:
        raise ValueError(f"autoattack: version must be 'standard', got {version!r}. Hint: 'plus' and 'rand' are "
                         "not implemented (they need untargeted FAB and expectation over transformations)")
    _check_int("autoattack", "seed", seed, 0)
    _check_int("autoattack", "steps", steps, 0)
    _check_int("autoattack", "queries", queries, 1)
    _check_int("autoattack", "restarts", restarts, 1)
    _check_int("autoattack", "n_target_classes", n_target_classes, 1)
    return eps_f, canon


def _sync(x: Tensor) -> None:
    if x.device.type == "cuda":
        torch.cuda.synchronize(x.device)


def autoattack_result(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf", seed: int = 0,
                      version: str = "standard", steps: int = 100, queries: int = 5000, restarts: int = 1,
                      n_target_classes: int = 9) -> AutoAttackResult:
    """Run AutoAttack on a batch and keep the per-attack breakdown (module docstring).

    Args:
        model: classifier returning logits, in eval mode; its mode is used as is.
        x: images in [0, 1], shape (N, C, H, W).
        y: class indices, shape (N,).
        eps: L-inf radius (pixel units; the paper's CIFAR-10 setting is 8/255).
        norm: "linf" (or "inf"); L2 is not implemented.
        seed: seeds the one generator all four attacks draw from.
        version: "standard" (the only one implemented).
        steps: iterations of APGD-CE, APGD-T and FAB-T (standard: 100); fewer for a quick look only.
        queries: Square's queries per image (standard: 5000).
        restarts: runs of APGD-CE, and per target of APGD-T and FAB-T (standard: 1).
        n_target_classes: target classes of APGD-T and FAB-T (standard: 9, capped at classes - 1).

    Returns:
        The worst-case batch with the clean and per-attack robust flags and timings.

    Raises:
        TypeError: non-floating x, non-integer y, settings of the wrong type.
        ValueError: x outside [0, 1] or not 4-D, a label outside [0, classes), a model with fewer
            than 4 classes (APGD-T's targeted DLR loss needs 4), bad settings.
    """
    y, y_hi = _check_inputs("autoattack", model, x, y)
    eps, norm = _check_settings(eps, norm, seed, version, steps, queries, restarts, n_target_classes)
    if x.dim() != 4:
        raise ValueError(f"autoattack: x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    x = x.detach()
    with torch.no_grad():
        logits = _logits("autoattack", model, x, y_hi) if x.shape[0] else torch.zeros(0, 4, device=x.device)
    if logits.shape[1] < 4:
        raise ValueError(f"autoattack: the model has {logits.shape[1]} classes, but APGD-T's targeted DLR loss needs "
                         "at least 4. Hint: use apgd(..., loss='ce') and square(...) for such models")
    clean = logits.argmax(dim=1) == y
    gen = torch.Generator(device=x.device)
    gen.manual_seed(seed)
    x_adv, robust = x.clone(), clean.clone()
    flags: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    for i, (name, attack) in enumerate(_plan(eps, norm, steps, queries, restarts, n_target_classes)):
        t0 = time.perf_counter()
        idx = robust.nonzero().squeeze(1)
        if idx.numel():
            found = attack(model, x[idx], y[idx], gen)
            with torch.no_grad():
                wrong = model(found).argmax(dim=1) != y[idx]
            # APGD-CE's highest-loss points stand in for the points no attack fools.
            x_adv[idx] = found if i == 0 else torch.where(_row_view(wrong, found), found, x_adv[idx])
            robust[idx[wrong]] = False
        _sync(x)
        flags[name], seconds[name] = robust.clone(), time.perf_counter() - t0
    return AutoAttackResult(x_adv=x_adv, clean=clean, robust=flags, seconds=seconds)


def autoattack(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf", seed: int = 0,
               version: str = "standard", steps: int = 100, queries: int = 5000, restarts: int = 1,
               n_target_classes: int = 9) -> Tensor:
    """AutoAttack's worst-case adversarial batch: :func:`autoattack_result` without the breakdown.

    Args, Raises: as :func:`autoattack_result`.

    Returns:
        The worst-case batch (detached, x's shape and dtype, inside the ball and [0, 1]).
    """
    return autoattack_result(model, x, y, eps=eps, norm=norm, seed=seed, version=version, steps=steps,
                             queries=queries, restarts=restarts, n_target_classes=n_target_classes).x_adv

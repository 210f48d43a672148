"""Auto-PGD (Croce & Hein, ICML 2020): PGD with a step size that adapts itself, on the CE or DLR loss.

APGD needs no step size: it starts at ``2 * eps``, halves it at checkpoints where the loss stopped
improving, and restarts each halving from the best point found. It is the first two attacks of
AutoAttack (:mod:`robnet.attacks.autoattack`): APGD-CE (cross-entropy, untargeted) and APGD-T
(the targeted DLR loss against the 9 runner-up classes). Settings and threat model: docs/design.md §3.

The contract of :mod:`robnet.attacks.contract` holds: images in [0, 1] (outside raises), the model's
mode is never changed, ``x`` is never modified, input gradients come from ``torch.autograd.grad``
under :func:`robnet.utils.frozen_params`, and the result is detached, inside the eps-ball and [0, 1].

Algorithm (Croce & Hein 2020, Algorithm 1), per sample, with ``P`` the projection onto the
eps-ball intersected with [0, 1]::

    x1 = P(x0 + eta * s(grad f(x0)))                       s = sign (L-inf) or g / ||g||_2 (L2)
    z  = P(x_k + eta * s(grad f(x_k)))
    x_{k+1} = P(x_k + alpha * (z - x_k) + (1 - alpha) * (x_k - x_{k-1}))      alpha = 0.75

with ``eta = 2 * eps`` at first. Checkpoints ``w_j = ceil(p_j * N)`` with ``p_0 = 0``,
``p_1 = 0.22``, ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)``; at ``w_j`` the step size is
halved and the iterate reset to the best point ``x_max`` if

1. the loss went up in at most ``rho * (w_j - w_{j-1})`` of the steps since ``w_{j-1}``
   (``rho = 0.75``), or
2. the step size was not halved at ``w_{j-1}`` and the best loss has not improved since.

(The paper writes condition 1 with ``<``; the authors' released code uses ``<=``, as here.)

Losses, with logits ``z`` and ``pi`` the classes sorted by decreasing logit:

- CE: ``-log softmax(z)_y``.
- DLR: ``-(z_y - max_{i != y} z_i) / (z_{pi_1} - z_{pi_3})`` (needs >= 3 classes).
- DLR-targeted, target ``t``: ``-(z_y - z_t) / (z_{pi_1} - (z_{pi_3} + z_{pi_4}) / 2)`` (>= 4 classes).

Both DLR forms are invariant to shifting and rescaling the logits, which is why they still give a
useful gradient on a model whose logits were scaled up to saturate the softmax (a masking defence).

Points the model already misclassifies are not attacked (returned as they are). The attack runs
``restarts`` times (and, for the targeted loss, once per target class: the ``n_target_classes``
classes with the highest clean logits after ``y``), each time only on the points not yet fooled.
A fooled point is returned as the misclassified iterate; a point never fooled as its
highest-loss iterate over all runs (still classified correctly).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnet.attacks.contract import (
    _check_inputs,
    _check_int,
    _check_number,
    _check_steps,
    _l2_norms,
    _linf_bounds,
    _logits,
    _project_l2_,
    _rand,
    _row_view,
    check_norm,
)
from robnet.utils import frozen_params

__all__ = ["APGD_LOSSES", "apgd", "apgd_checkpoints", "dlr_loss", "dlr_targeted_loss"]

APGD_LOSSES = ("ce", "dlr", "dlr-targeted")
# The denominators of the DLR losses: as in the authors' code, so flat logits give 0, not NaN.
_DLR_TINY = 1e-12
_MOMENTUM = 0.75
_MIN_CLASSES = {"ce": 2, "dlr": 3, "dlr-targeted": 4}

_Loss = Callable[[Tensor, Tensor, Tensor | None], Tensor]


# ----------------------------------------------------------------------------- settings


def _check_settings(eps: object, norm: object, loss: object, steps: object, restarts: object,
                    n_target_classes: object, rho: object) -> tuple[float, str, int]:
    """Validate APGD's settings; return eps, the canonical norm and steps."""
    eps_f = _check_number("apgd", "eps", eps)
    canon = check_norm("apgd", norm)
    if loss not in APGD_LOSSES:
        raise ValueError(f"apgd: loss must be one of {', '.join(map(repr, APGD_LOSSES))}, got {loss!r}. "
                         "Hint: 'ce' is APGD-CE, 'dlr-targeted' is AutoAttack's APGD-T")
    steps_i = _check_steps("apgd", steps)
    _check_int("apgd", "restarts", restarts, 1)
    _check_int("apgd", "n_target_classes", n_target_classes, 1)
    rho_f = _check_number("apgd", "rho", rho)
    if rho_f > 1.0:
        raise ValueError(f"apgd: rho must lie in [0, 1] (a fraction of the steps between checkpoints), got {rho}")
    if canon == "inf" and eps_f > 1.0:
        raise ValueError(f"apgd: eps {eps} is above 1, larger than the whole [0, 1] pixel range. "
                         "Hint: L-inf radii are in pixel units, e.g. eps=8/255")
    return eps_f, canon, steps_i


def apgd_checkpoints(steps: int) -> list[int]:
    """APGD's checkpoints: the iterations ``w_j`` after which the step size may be halved.

    ``w_1 = max(floor(0.22 N), 1)``, then gaps shrinking by ``max(floor(0.03 N), 1)`` down to
    ``max(floor(0.06 N), 1)`` (the paper's ``p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)`` in
    the integer form of the authors' code). For N = 100: 22, 41, 57, 70, 80, 87, 93, 99.
    """
    gap, shrink, least = max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, at = [], 0
    while at + gap <= steps:
        at += gap
        out.append(at)
        gap = max(gap - shrink, least)
    return out


# ----------------------------------------------------------------------------- losses


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-row DLR loss ``-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)`` (Croce & Hein 2020, Eq. 6)."""
    z = logits.float()
    top = z.sort(dim=1, descending=True).values  # (N, classes)
    z_y = z.gather(1, y[:, None]).squeeze(1)
    other = z.scatter(1, y[:, None], -math.inf).amax(dim=1)
    return -(z_y - other) / (top[:, 0] - top[:, 2] + _DLR_TINY)


def dlr_targeted_loss(logits: Tensor, y: Tensor, target: Tensor) -> Tensor:
    """Per-row targeted DLR loss ``-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)`` (Croce & Hein 2020, Eq. 7)."""
    z = logits.float()
    top = z.sort(dim=1, descending=True).values
    z_y = z.gather(1, y[:, None]).squeeze(1)
    z_t = z.gather(1, target[:, None]).squeeze(1)
    return -(z_y - z_t) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + _DLR_TINY)


def _loss_fn(loss: str) -> _Loss:
    if loss == "ce":
        return lambda z, y, t: F.cross_entropy(z.float(), y, reduction="none")
    if loss == "dlr":
        return lambda z, y, t: dlr_loss(z, y)

    def targeted(z: Tensor, y: Tensor, t: Tensor | None) -> Tensor:
        if t is None:
            raise ValueError("apgd: the targeted DLR loss needs a target class per row")
        return dlr_targeted_loss(z, y, t)
    return targeted


# ----------------------------------------------------------------------------- one run


def _start(x: Tensor, eps: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A random start on the sphere of radius eps (L-inf: max |delta| = eps), clamped to [0, 1]."""
    tiny = torch.finfo(x.dtype).tiny
    if norm == "inf":
        t = _rand(x.shape, x, generator, normal=False).mul_(2).sub_(1)
        size = t.flatten(1).abs().amax(dim=1)
    else:
        t = _rand(x.shape, x, generator, normal=True)
        size = _l2_norms(t)
    return t.mul_(_row_view(eps / size.clamp_min(tiny), x)).add_(x).clamp_(0.0, 1.0)


def _project(z: Tensor, x: Tensor, eps: float, norm: str, bounds: tuple[Tensor, Tensor] | None) -> Tensor:
    """In place: ``z`` into the eps-ball around ``x`` and [0, 1]."""
    if norm == "inf" and bounds is not None:
        return z.clamp_(bounds[0], bounds[1])
    return _project_l2_(z, x, eps)


def _direction(grad: Tensor, norm: str) -> Tensor:
    """The steepest-ascent direction of unit norm: sign (L-inf) or g / ||g||_2 (L2)."""
    if norm == "inf":
        return grad.sign()
    return grad / _row_view(_l2_norms(grad).clamp_min(torch.finfo(grad.dtype).tiny), grad)


class _Run:
    """The state of one APGD run over a batch: iterates, best points, step sizes, flags."""

    def __init__(self, x: Tensor, x0: Tensor, steps: int) -> None:
        n = x.shape[0]
        self.x_adv, self.x_old = x0.clone(), x0.clone()
        self.x_best, self.x_fooled = x0.clone(), x0.clone()
        self.grad = self.grad_best = torch.zeros_like(x)
        self.losses = torch.zeros(steps + 1, n, device=x.device)  # (steps + 1, N), row 0: the start
        self.loss_best = torch.full((n,), -math.inf, device=x.device)
        self.fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
        self.step = torch.zeros(n, device=x.device, dtype=x.dtype)
        self.reduced = torch.ones(n, dtype=torch.bool, device=x.device)  # no condition 2 at w_1
        self.best_at_check = self.loss_best.clone()

    def observe(self, t: int, x_at: Tensor, logits: Tensor, loss: Tensor, grad: Tensor | None, y: Tensor) -> None:
        """Record iterate ``t``: its loss, whether it fools the model, the best point so far."""
        wrong = logits.argmax(dim=1) != y
        self.fooled |= wrong
        self.x_fooled = torch.where(_row_view(wrong, x_at), x_at, self.x_fooled)
        loss = loss.detach()
        self.losses[t] = loss
        better = loss > self.loss_best
        self.x_best = torch.where(_row_view(better, x_at), x_at, self.x_best)
        self.loss_best = torch.where(better, loss, self.loss_best)
        if grad is not None:
            self.grad = grad
            self.grad_best = torch.where(_row_view(better, grad), grad, self.grad_best)

    def checkpoint(self, t: int, gap: int, rho: float) -> None:
        """At checkpoint ``w_j = t``: halve the step and return to ``x_max`` where the loss stalled."""
        window = self.losses[t - gap:t + 1]  # (gap + 1, N)
        rises = (window[1:] > window[:-1]).sum(dim=0)
        halve = (rises <= gap * rho) | (~self.reduced & (self.best_at_check >= self.loss_best))
        self.step = torch.where(halve, self.step / 2, self.step)
        self.x_adv = torch.where(_row_view(halve, self.x_adv), self.x_best, self.x_adv)
        self.grad = torch.where(_row_view(halve, self.grad), self.grad_best, self.grad)
        self.reduced = halve
        self.best_at_check = self.loss_best.clone()


def _forward(model: nn.Module, x_at: Tensor, y: Tensor, target: Tensor | None, loss_fn: _Loss,
             need_grad: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Logits, per-row loss and (if asked) the input gradient of the summed loss at ``x_at``."""
    if not need_grad:
        with torch.no_grad():
            logits = model(x_at)
            return logits, loss_fn(logits, y, target), None
    leaf = x_at.detach().requires_grad_(True)
    logits = model(leaf)
    loss = loss_fn(logits, y, target)
    (grad,) = torch.autograd.grad(loss.sum(), leaf)
    return logits.detach(), loss.detach(), grad


def _run_once(model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None, *, eps: float, norm: str,
              loss_fn: _Loss, steps: int, rho: float, generator: torch.Generator | None) -> _Run:
    """One APGD run from a random start over every row of ``x`` (Algorithm 1)."""
    bounds = _linf_bounds(x, eps) if norm == "inf" else None
    state = _Run(x, _start(x, eps, norm, generator), steps)
    state.step.fill_(2.0 * eps)
    logits, loss, grad = _forward(model, state.x_adv, y, target, loss_fn, need_grad=steps > 0)
    state.observe(0, state.x_adv, logits, loss, grad, y)
    checks, last_check = apgd_checkpoints(steps), 0
    for k in range(steps):
        with torch.no_grad():
            x_k = state.x_adv
            eta = _row_view(state.step, x)
            z = _project(x_k + eta * _direction(state.grad, norm), x, eps, norm, bounds)
            if k > 0:
                z = _project(x_k + _MOMENTUM * (z - x_k) + (1 - _MOMENTUM) * (x_k - state.x_old), x, eps, norm,
                             bounds)
            state.x_old, state.x_adv = x_k, z
        logits, loss, grad = _forward(model, z, y, target, loss_fn, need_grad=k < steps - 1)
        state.observe(k + 1, z, logits, loss, grad, y)
        if k + 1 in checks:
            state.checkpoint(k + 1, k + 1 - last_check, rho)
            last_check = k + 1
    return state


# ----------------------------------------------------------------------------- the attack


def _targets(logits: Tensor, y: Tensor, n_targets: int) -> Tensor:
    """The classes other than y by decreasing clean logit: (N, n_targets), column j = the (j+2)-th class
    of a correctly classified row (y is masked, so a tie with y's logit cannot make y a target)."""
    return logits.float().scatter(1, y[:, None], -math.inf).argsort(dim=1, descending=True)[:, :n_targets]


def apgd(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf", loss: str = "ce",
         steps: int = 100, restarts: int = 1, n_target_classes: int = 9, rho: float = 0.75,
         generator: torch.Generator | None = None) -> Tensor:
    """Auto-PGD (Croce & Hein 2020): PGD with momentum and an adaptive step size, L-inf or L2.

    See the module docstring for the update, the checkpoints and the losses.

    Args:
        model: classifier returning logits; its mode is used as is (evaluate in eval mode: only
            then are rows independent, since later runs see only the rows not yet fooled).
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        eps: radius of the threat model (L-inf: pixel units, at most 1; L2: per sample).
        norm: "linf" (also "inf") or "l2" (also "2").
        loss: "ce" (APGD-CE), "dlr" (APGD-DLR) or "dlr-targeted" (APGD-T).
        steps: iterations per run (the paper: 100).
        restarts: runs from a fresh random start (per target class for "dlr-targeted").
        n_target_classes: APGD-T's target classes (capped at classes - 1); ignored by the others.
        rho: the fraction of loss increases below which a checkpoint halves the step.
        generator: source of the random starts; ``None`` uses torch's default generator.

    Returns:
        The adversarial batch (detached, x's shape and dtype, inside the ball and [0, 1]).

    Raises:
        TypeError: non-floating x, non-integer y, settings of the wrong type.
        ValueError: x outside [0, 1], a label outside [0, classes), bad settings, a model with
            fewer classes than the loss needs (DLR 3, DLR-targeted 4), batch sizes that differ.
    """
    y, y_hi = _check_inputs("apgd", model, x, y)
    eps, norm, steps = _check_settings(eps, norm, loss, steps, restarts, n_target_classes, rho)
    x = x.detach()
    out = x.clone()
    if x.shape[0] == 0:
        return out
    with frozen_params(model), torch.enable_grad():
        with torch.no_grad():
            logits = _logits("apgd", model, x, y_hi)
        if logits.shape[1] < _MIN_CLASSES[loss]:
            raise ValueError(f"apgd: the {loss} loss needs a model with at least {_MIN_CLASSES[loss]} classes, got "
                             f"{logits.shape[1]}. Hint: use loss='ce'")
        alive = (logits.argmax(dim=1) == y).nonzero().squeeze(1)  # rows not yet fooled
        targets = min(n_target_classes, logits.shape[1] - 1) if loss == "dlr-targeted" else 1
        ranked = _targets(logits, y, targets) if loss == "dlr-targeted" else None
        best = torch.full((x.shape[0],), -math.inf, device=x.device)
        for run in range(targets * restarts):
            if alive.numel() == 0:
                break
            target = None if ranked is None else ranked[alive, run // restarts]
            state = _run_once(model, x[alive], y[alive], target, eps=eps, norm=norm, loss_fn=_loss_fn(loss),
                              steps=steps, rho=rho, generator=generator)
            better = (state.loss_best > best[alive]) & ~state.fooled
            out[alive] = torch.where(_row_view(state.fooled, x), state.x_fooled,
                                     torch.where(_row_view(better, x), state.x_best, out[alive]))
            best[alive] = torch.where(better, state.loss_best, best[alive])
            alive = alive[~state.fooled]
    return out

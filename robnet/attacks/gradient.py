"""Gradient attacks in [0, 1] pixel space: FGSM, PGD (L-inf and L2), MI-FGSM, and the clean "attack".

Each is a stateless function ``attack(model, x, y, *, settings) -> x_adv`` that keeps the contract
of :mod:`robnet.attacks.contract` (inputs checked, x and the model's mode untouched, input
gradients only, result detached inside the eps-ball and [0, 1]). The spec language that names
them (``pgd20:eps=4/255``) is :mod:`robnet.attacks.spec`; the configuration they are bound from,
:mod:`robnet.attacks.config`.

Hot path (PGD is the inner loop of adversarial training and of evaluation): the input checks
read their statistics in one host synchronisation per call; the loop issues none (no
``.item()``, no Python branch on tensor values), updates the adversarial tensor in place, and
projects with ``clamp`` against bounds precomputed once: ``lo = max(x - eps, 0)``,
``hi = min(x + eps, 1)``, the intersection of the eps-ball and [0, 1].

Settings of the paper (docs/design.md §3), as :func:`robnet.attacks.spec.parse_attack` gives
them: L-inf eps 8/255, step 2/255, uniform random start, PGD-7 for training, PGD-20/100 for
evaluation, FGSM (one step of eps), MI-FGSM (decay 1.0, 20 steps of 2/255, no random start);
DeepFool's are in :mod:`robnet.attacks.deepfool`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robnet.attacks.contract import (
    _check_inputs,
    _check_number,
    _check_steps,
    _input_grad,
    _l2_norms,
    _linf_bounds,
    _project_l2_,
    _rand,
    _row_view,
)
from robnet.utils import frozen_params

__all__ = [
    "fgsm",
    "mifgsm",
    "no_attack",
    "pgd",
    "pgd_l2",
]


def no_attack(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """The clean evaluation as an attack: a detached copy of ``x``, after the same input checks.

    Raises:
        TypeError, ValueError: as the other attacks, for the model, x and y.
    """
    _check_inputs("none", model, x, y)
    return x.detach().clone()


def fgsm(model: nn.Module, x: Tensor, y: Tensor, *, eps: float) -> Tensor:
    """Fast Gradient Sign Method (Goodfellow et al. 2015), L-inf.

    ``x_adv = clip_[0,1](x + eps * sign(grad_x CE(model(x), y)))``.

    Args:
        model: classifier returning logits; its mode is used as is.
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        eps: L-inf radius (the single step has size eps).

    Returns:
        The adversarial batch (detached, x's shape and dtype).

    Raises:
        TypeError: non-floating x, non-integer y, non-number eps.
        ValueError: x outside [0, 1], a label outside [0, classes), eps < 0, batch sizes that differ.
    """
    y, y_hi = _check_inputs("fgsm", model, x, y)
    eps = _check_number("fgsm", "eps", eps, allow_inf=True)
    x = x.detach()
    if x.shape[0] == 0:
        return x.clone()
    lo, hi = _linf_bounds(x, eps)
    x_adv = x.clone().requires_grad_(True)
    with frozen_params(model), torch.enable_grad():
        grad = _input_grad("fgsm", model, x_adv, y, y_hi)
    out = x_adv.detach_()
    return out.add_(grad.sign_(), alpha=eps).clamp_(lo, hi)


def pgd(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, step_size: float, steps: int,
        random_start: bool = True, generator: torch.Generator | None = None,
        noise: Tensor | None = None) -> Tensor:
    """Projected Gradient Descent, L-inf (Madry et al. 2018).

    ``x_0 = clip(x + U(-eps, eps))`` (or ``x`` without random start), then ``steps`` times
    ``x_{t+1} = clip_{[lo, hi]}(x_t + step_size * sign(grad CE))`` with
    ``[lo, hi] = [x - eps, x + eps] ∩ [0, 1]``.

    Random start and batch consistency: the start noise is drawn in one call of x's shape from
    ``generator``, so row i's noise depends on the batch it sits in. For an exactly reproducible
    per-row start pass ``noise`` (values in [-1, 1], start = ``x + eps * noise``); attacking a
    batch with ``noise`` then equals attacking each row with its row of ``noise`` (in eval mode).

    Args:
        model: classifier returning logits; its mode is used as is.
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        eps: L-inf radius (``math.inf`` allowed: only [0, 1] then).
        step_size: size of each signed step.
        steps: number of gradient steps (0 returns the start point).
        random_start: start from a uniform point of the eps-ball.
        generator: source of the random start (see :func:`robnet.attacks.contract._rand` for devices); ``None`` uses
            torch's default generator.
        noise: explicit random start in units of eps (finite, values in [-1, 1]), x's shape;
            overrides ``generator``.

    Returns:
        The adversarial batch (detached, x's shape and dtype).

    Raises:
        TypeError: non-floating x, non-integer y, non-number settings.
        ValueError: x outside [0, 1], a label outside [0, classes), eps/step_size/steps < 0, batch
            sizes that differ, a ``noise`` of the wrong shape, non-finite or outside the unit ball.
    """
    y, y_hi = _check_inputs("pgd", model, x, y, noise=noise, random_start=random_start, norm="inf")
    eps = _check_number("pgd", "eps", eps, allow_inf=True)
    step_size = _check_number("pgd", "step_size", step_size)
    steps = _check_steps("pgd", steps)
    x = x.detach()
    if x.shape[0] == 0:
        return x.clone()
    lo, hi = _linf_bounds(x, eps)
    if random_start:
        if noise is not None:
            unit = noise.detach().to(x)
        else:
            unit = _rand(x.shape, x, generator, normal=False).mul_(2).sub_(1)  # U(-1, 1)
        # An infinite ball starts uniformly in [0, 1].
        x_adv = torch.add(x, unit, alpha=eps) if math.isfinite(eps) else unit.add_(1).mul_(0.5)
        x_adv.clamp_(lo, hi)
    else:
        x_adv = x.clone()
    x_adv.requires_grad_(True)
    with frozen_params(model), torch.enable_grad():
        for _ in range(steps):
            grad = _input_grad("pgd", model, x_adv, y, y_hi)
            with torch.no_grad():
                x_adv.add_(grad.sign_(), alpha=step_size).clamp_(lo, hi)
    return x_adv.detach()


def pgd_l2(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, step_size: float, steps: int,
           random_start: bool = True, generator: torch.Generator | None = None,
           noise: Tensor | None = None) -> Tensor:
    """Projected Gradient Descent, L2 (Madry et al. 2018).

    Start: ``x + eps * u^(1/d) * z / ||z||_2`` (z ~ N(0, I), u ~ U(0, 1): uniform in the ball) or
    ``x``; then ``steps`` times ``x_{t+1} = clip_[0,1](P_eps(x_t + step_size * g / ||g||_2))``,
    where ``P_eps`` scales ``x_t - x`` to L2 norm at most eps, and norms are per sample.

    Args:
        model: classifier returning logits; its mode is used as is.
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        eps: L2 radius per sample.
        step_size: L2 length of each step.
        steps: number of gradient steps.
        random_start: start from a uniform point of the ball.
        generator: source of the random start; ``None`` uses torch's default generator.
        noise: explicit random start in units of eps (per-row L2 norm at most 1), x's shape.

    Returns:
        The adversarial batch (detached, x's shape and dtype).

    Raises:
        TypeError: non-floating x, non-integer y, non-number settings.
        ValueError: x outside [0, 1], a label outside [0, classes), eps/step_size/steps < 0, batch
            sizes that differ, a ``noise`` of the wrong shape, non-finite or outside the unit ball.
    """
    y, y_hi = _check_inputs("pgd_l2", model, x, y, noise=noise, random_start=random_start, norm="2")
    eps = _check_number("pgd_l2", "eps", eps)
    step_size = _check_number("pgd_l2", "step_size", step_size)
    steps = _check_steps("pgd_l2", steps)
    x = x.detach()
    if x.shape[0] == 0:
        return x.clone()
    tiny = torch.finfo(x.dtype).tiny
    if random_start:
        if noise is not None:
            unit = noise.detach().to(x)
        else:
            z = _rand(x.shape, x, generator, normal=True)
            d = math.prod(x.shape[1:])
            u = _rand((x.shape[0],), x, generator, normal=False).pow_(1.0 / max(d, 1))
            unit = z.mul_(_row_view(u / _l2_norms(z).clamp_min(tiny), x))
        x_adv = _project_l2_(torch.add(x, unit, alpha=eps), x, eps)
    else:
        x_adv = x.clone()
    x_adv.requires_grad_(True)
    with frozen_params(model), torch.enable_grad():
        for _ in range(steps):
            grad = _input_grad("pgd_l2", model, x_adv, y, y_hi)
            with torch.no_grad():
                grad.div_(_row_view(_l2_norms(grad).clamp_min_(tiny), x))
                _project_l2_(x_adv.add_(grad, alpha=step_size), x, eps)
    return x_adv.detach()


def mifgsm(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, step_size: float, steps: int,
           decay: float = 1.0) -> Tensor:
    """Momentum Iterative FGSM (Dong et al. 2018), L-inf, no random start (docs/design.md §3 decision).

    ``g_{t+1} = decay * g_t + grad_t / ||grad_t||_1`` (L1 norm per sample, Dong et al. Eq. 6),
    ``x_{t+1} = clip_{[lo, hi]}(x_t + step_size * sign(g_{t+1}))``.

    Normalising by the L1 sum or by the L1 mean gives the same iterates (they differ by the
    constant factor d = pixels per sample in every term of g, which the sign removes); ART's
    ``MomentumIterativeMethod`` uses the sum, as here.

    Args:
        model: classifier returning logits; its mode is used as is.
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        eps: L-inf radius.
        step_size: size of each signed step.
        steps: number of steps.
        decay: momentum decay factor mu.

    Returns:
        The adversarial batch (detached, x's shape and dtype).

    Raises:
        TypeError: non-floating x, non-integer y, non-number settings.
        ValueError: x outside [0, 1], a label outside [0, classes), eps/step_size/steps/decay < 0,
            batch sizes that differ.
    """
    y, y_hi = _check_inputs("mifgsm", model, x, y)
    eps = _check_number("mifgsm", "eps", eps, allow_inf=True)
    step_size = _check_number("mifgsm", "step_size", step_size)
    steps = _check_steps("mifgsm", steps)
    decay = _check_number("mifgsm", "decay", decay)
    x = x.detach()
    if x.shape[0] == 0:
        return x.clone()
    lo, hi = _linf_bounds(x, eps)
    x_adv = x.clone().requires_grad_(True)
    momentum = torch.zeros_like(x)
    tiny = torch.finfo(x.dtype).tiny
    with frozen_params(model), torch.enable_grad():
        for _ in range(steps):
            grad = _input_grad("mifgsm", model, x_adv, y, y_hi)
            with torch.no_grad():
                l1 = grad.abs().flatten(1).sum(dim=1).clamp_min_(tiny)  # (N,)
                momentum.mul_(decay).add_(grad.div_(_row_view(l1, x)))
                x_adv.add_(momentum.sign(), alpha=step_size).clamp_(lo, hi)
    return x_adv.detach()

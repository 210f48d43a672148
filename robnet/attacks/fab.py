"""FAB-T, the targeted Fast Adaptive Boundary attack (Croce & Hein, ICML 2020), L-inf or L2.

FAB looks for the *smallest* perturbation that changes the decision: it linearises the boundary
between the true class ``y`` and a target class ``t`` at the current iterate and steps to its
projection, biased back toward the original point. AutoAttack runs its targeted version against
the 9 runner-up classes, third after APGD-CE and APGD-T (:mod:`robnet.attacks.autoattack`);
settings: docs/design.md §3. A point counts as fooled when an adversarial point was found within
``eps``.

One iteration (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive
boundary attack", Eq. 9), with ``f = z_t - z_y`` and ``w = grad f`` at the iterate ``x^(i)``, and
``proj_p(q)`` the minimal-``p``-norm step from ``q`` onto the hyperplane
``{z : f(x^(i)) + w . (z - x^(i)) = 0}`` that stays inside the box [0, 1]::

    d  = proj_p(x^(i)),   d0 = proj_p(x_orig)
    alpha = min(||d|| / (||d|| + ||d0||), alpha_max)
    x^(i+1) = clip_[0,1]((1 - alpha) * (x^(i) + eta * d) + alpha * (x_orig + eta * d0))

with ``eta = 1.05`` (overshoot) and ``alpha_max = 0.1``; once ``x^(i+1)`` is misclassified it is
recorded (if closer than the best so far) and pulled back, ``x^(i+1) = x_orig + beta * (x^(i+1) -
x_orig)`` with ``beta = 0.9``. The first run starts at ``x_orig``, later restarts at a random point
at distance ``eps / 2``.

The box-constrained projection is solved exactly: each coordinate moves by ``min(lambda * q_i,
room_i)`` toward the hyperplane (``q_i = 1`` for L-inf, ``|w_i|`` for L2; ``room_i`` the distance
to the box in that direction), and ``lambda`` follows from sorting the breakpoints
``room_i / q_i`` and a cumulative sum. A hyperplane the box cannot reach gives the box vertex
closest to it.

The contract of :mod:`robnet.attacks.contract` holds (inputs checked, x and the model's mode
untouched, gradients under :func:`robnet.utils.frozen_params`, result detached inside the ball
and [0, 1]). Points already misclassified are returned as they are, points not fooled within
eps as ``x``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robnet.attacks.contract import (
    _check_inputs,
    _check_int,
    _check_number,
    _check_steps,
    _logits,
    _rand,
    _row_view,
    check_norm,
)
from robnet.utils import frozen_params

__all__ = ["fab_t", "project_onto_hyperplane"]


def _dist(d: Tensor, norm: str) -> Tensor:
    """Per-row norm of (N, D) rows."""
    return d.abs().amax(dim=1) if norm == "inf" else torch.linalg.vector_norm(d, dim=1)


def project_onto_hyperplane(p: Tensor, w: Tensor, c: Tensor, norm: str) -> Tensor:
    """The minimal-norm step ``d`` with ``w . d = c`` and ``0 <= p + d <= 1``, per row.

    Args:
        p: points in [0, 1], (N, D).
        w: hyperplane normals, (N, D).
        c: the required change of ``w . z``, (N,).
        norm: "inf" or "2".

    Returns:
        ``d`` (N, D); where the box cannot reach the hyperplane, the step to the box vertex that
        comes closest.
    """
    s = torch.where(c < 0, -1.0, 1.0).to(w.dtype)[:, None]
    w = w * s  # now w . d must reach |c| >= 0
    a = w.abs()
    room = torch.where(w > 0, 1.0 - p, p)
    q = torch.ones_like(a) if norm == "inf" else a
    brk = torch.where(q > 0, room / q.clamp_min(torch.finfo(q.dtype).tiny), math.inf)  # (N, D)
    brk, order = brk.sort(dim=1)
    a_s, room_s, q_s = a.gather(1, order), room.gather(1, order), q.gather(1, order)
    done = torch.cumsum(a_s * room_s, dim=1)  # coordinates saturated up to breakpoint k
    tail = (a_s * q_s).flip(1).cumsum(1).flip(1)  # sum over j >= k
    rest = torch.cat([tail[:, 1:], torch.zeros_like(tail[:, :1])], dim=1)  # j > k: the slope after breakpoint k
    reach = torch.where(rest > 0, done + brk * rest, done)  # g(breakpoint_k), non-decreasing in k
    need = c.abs()[:, None]
    k = (reach < need).sum(dim=1, keepdim=True)  # first breakpoint where the hyperplane is reached
    km1 = (k - 1).clamp_min(0)
    done_before = torch.where(k > 0, done.gather(1, km1), 0.0)
    slope = torch.where(k > 0, rest.gather(1, km1), tail[:, :1])
    lam = (need - done_before) / slope.clamp_min(torch.finfo(a.dtype).tiny)
    lam = torch.where(k >= a.shape[1], math.inf, lam)
    move = torch.where(q > 0, torch.minimum(lam * q, room), torch.zeros_like(q))
    return torch.sign(w) * move


def _check_settings(eps: object, norm: object, steps: object, restarts: object, n_target_classes: object,
                    alpha_max: object, eta: object, beta: object) -> tuple[float, str, int]:
    eps_f = _check_number("fab_t", "eps", eps)
    canon = check_norm("fab_t", norm)
    steps_i = _check_steps("fab_t", steps)
    _check_int("fab_t", "restarts", restarts, 1)
    _check_int("fab_t", "n_target_classes", n_target_classes, 1)
    for what, value, top in (("alpha_max", alpha_max, 1.0), ("beta", beta, 1.0), ("eta", eta, math.inf)):
        v = _check_number("fab_t", what, value)
        if v > top:
            raise ValueError(f"fab_t: {what} must lie in [0, {top:g}], got {value}")
    if canon == "inf" and eps_f > 1.0:
        raise ValueError(f"fab_t: eps {eps} is above 1, larger than the whole [0, 1] pixel range. "
                         "Hint: L-inf radii are in pixel units, e.g. eps=8/255")
    return eps_f, canon, steps_i


def _boundary(model: nn.Module, x1: Tensor, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """``f = z_t - z_y`` at x1 and its input gradient, flattened: (N,), (N, D)."""
    leaf = x1.detach().requires_grad_(True)
    z = model(leaf)
    f = (z.gather(1, t[:, None]) - z.gather(1, y[:, None])).squeeze(1)
    (g,) = torch.autograd.grad(f.sum(), leaf)
    return f.detach().float(), g.flatten(1).float()


def _fab_run(model: nn.Module, x0: Tensor, y: Tensor, t: Tensor, start: Tensor, *, norm: str, steps: int,
             alpha_max: float, eta: float, beta: float) -> tuple[Tensor, Tensor]:
    """One FAB-T run; returns the closest adversarial point found per row and its distance (inf: none)."""
    n = x0.shape[0]
    flat0 = x0.flatten(1).float()
    x1 = start.flatten(1).float()
    best = x0.clone()
    best_dist = torch.full((n,), math.inf, device=x0.device)
    for _ in range(steps):
        f, w = _boundary(model, x1.view_as(x0).to(x0.dtype), y, t)
        with torch.no_grad():
            # w . z = w . x1 - f on the linearised boundary; the changes needed from x1 and from x0:
            d1 = project_onto_hyperplane(x1, w, -f, norm)
            d0 = project_onto_hyperplane(flat0, w, -f + (w * (x1 - flat0)).sum(1), norm)
            n1, n0 = _dist(d1, norm).clamp_min(1e-8), _dist(d0, norm).clamp_min(1e-8)
            alpha = (n1 / (n1 + n0)).clamp(0.0, alpha_max)[:, None]
            x1 = ((1 - alpha) * (x1 + eta * d1) + alpha * (flat0 + eta * d0)).clamp_(0.0, 1.0)
            cand = x1.view_as(x0).to(x0.dtype)
            wrong = model(cand).argmax(dim=1) != y
            dist = _dist(cand.flatten(1).float() - flat0, norm)
            better = wrong & (dist < best_dist)
            best = torch.where(_row_view(better, best), cand, best)
            best_dist = torch.where(better, dist, best_dist)
            x1 = torch.where(wrong[:, None], flat0 + beta * (x1 - flat0), x1)
    return best, best_dist


def _random_start(x: Tensor, radius: float, norm: str, generator: torch.Generator | None) -> Tensor:
    """A point at distance ``radius`` from x in a random direction, clamped to [0, 1]."""
    t = _rand(x.shape, x, generator, normal=norm == "2")
    if norm == "inf":
        t.mul_(2).sub_(1)
    size = _dist(t.flatten(1), norm).clamp_min(torch.finfo(x.dtype).tiny)
    return t.mul_(_row_view(radius / size, x)).add_(x).clamp_(0.0, 1.0)


def fab_t(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf", steps: int = 100,
          restarts: int = 1, n_target_classes: int = 9, alpha_max: float = 0.1, eta: float = 1.05,
          beta: float = 0.9, generator: torch.Generator | None = None) -> Tensor:
    """FAB-T (Croce & Hein 2020), the targeted minimal-perturbation attack of AutoAttack.

    For each of the ``n_target_classes`` runner-up classes (by clean logits) and each restart,
    FAB runs ``steps`` iterations (module docstring) on the points not yet fooled within eps.

    Args:
        model: classifier returning logits; its mode is used as is (eval mode: rows independent).
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        eps: the radius within which a found adversarial point counts (and of later restarts' starts).
        norm: "linf" (also "inf") or "l2" (also "2").
        steps: iterations per run (AutoAttack: 100); each costs two forwards and one backward.
        restarts: runs per target class; the first starts at x, the others at random.
        n_target_classes: target classes (capped at classes - 1).
        alpha_max: the largest weight of the step from the original point.
        eta: overshoot of each projection step.
        beta: the pull back toward x after an adversarial point is found.
        generator: source of the random restarts; ``None`` uses torch's default generator.

    Returns:
        The batch (detached, x's shape and dtype, inside the ball and [0, 1]): the closest
        adversarial point found within eps, else x.

    Raises:
        TypeError: non-floating x, non-integer y, settings of the wrong type.
        ValueError: x outside [0, 1], a label outside [0, classes), a model with fewer than 2
            classes, bad settings, batch sizes that differ.
    """
    y, y_hi = _check_inputs("fab_t", model, x, y)
    eps, norm, steps = _check_settings(eps, norm, steps, restarts, n_target_classes, alpha_max, eta, beta)
    x = x.detach()
    out = x.clone()
    if x.shape[0] == 0:
        return out
    with frozen_params(model), torch.enable_grad():
        with torch.no_grad():
            logits = _logits("fab_t", model, x, y_hi).float()
        if logits.shape[1] < 2:
            raise ValueError(f"fab_t: the model must return logits of shape (N, classes >= 2), "
                             f"got {tuple(logits.shape)}")
        alive = (logits.argmax(dim=1) == y).nonzero().squeeze(1)
        targets = min(n_target_classes, logits.shape[1] - 1)
        ranked = logits.scatter(1, y[:, None], -math.inf).argsort(dim=1, descending=True)[:, :targets]
        for run in range(targets * restarts):
            if alive.numel() == 0:
                break
            xa = x[alive]
            start = xa if run % restarts == 0 else _random_start(xa, eps / 2, norm, generator)
            adv, dist = _fab_run(model, xa, y[alive], ranked[alive, run // restarts], start, norm=norm, steps=steps,
                                 alpha_max=alpha_max, eta=eta, beta=beta)
            fooled = dist <= eps
            out[alive] = torch.where(_row_view(fooled, xa), adv, xa)
            alive = alive[~fooled]
    return out

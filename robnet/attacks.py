"""Adversarial attacks in [0, 1] pixel space: FGSM, PGD (L-inf and L2), MI-FGSM, DeepFool, transfer.

Every attack is a stateless function ``attack(model, x, y, *, settings) -> x_adv`` (foolbox's
shape). Shared contract:

- ``x`` holds images in [0, 1]; a model that wants mean/std normalization has it as its first
  layer (SPEC §1). ``x`` outside [0, 1] raises, naming the range found.
- The result is a new, detached tensor of ``x``'s shape and dtype, inside the eps-ball around
  ``x`` and inside [0, 1]. ``x`` itself is never modified.
- The model's train/eval mode is never changed: the caller decides (see :mod:`robnet.modes`).
  The official RobNets training code crafts its PGD-7 examples with the model in **train** mode
  (BN uses batch statistics and updates its running averages during the attack); evaluation
  attacks the model in eval mode (``with eval_mode(model): ...``). In train mode BN couples the
  rows of a batch, so only eval-mode attacks are batch-consistent.
- Parameters are frozen for the duration of the attack (:func:`robnet.modes.frozen_params`) and
  the input gradient comes from ``torch.autograd.grad(loss, x_adv)``: no parameter gradient is
  computed and no ``param.grad`` is touched, so an attack can run between a training step's
  ``zero_grad`` and ``backward`` without interfering with it.
- The loss is cross-entropy with ``reduction="sum"``: row i's input gradient is exactly
  d loss_i / d x_i, independent of the batch size. Every update here normalises the gradient per
  sample (sign, L1 or L2), so with "mean" the iterates would be the same in exact arithmetic, but
  the gradients would shrink by 1/N, toward underflow under low-precision autocast for large N.
- Autocast is left as the caller set it (bf16 autocast speeds the forward/backward on GPUs); the
  update itself is computed in ``x``'s dtype, since the gradient w.r.t. ``x_adv`` comes back in it.
- Gradient computation is enabled inside the attack, so attacks may be called under
  ``torch.no_grad()`` (not under ``torch.inference_mode()``).

Hot path (PGD is the inner loop of adversarial training and of evaluation): the loop issues no
host synchronisation (no ``.item()``, no Python branch on tensor values), updates the adversarial
tensor in place, and projects with ``clamp`` against bounds precomputed once:
``lo = max(x - eps, 0)``, ``hi = min(x + eps, 1)``, the intersection of the eps-ball and [0, 1].

Settings of the paper (SPEC §3) are in :func:`parse_attack`: L-inf eps 8/255, step 2/255,
uniform random start, PGD-7 for training, PGD-20/100 for evaluation, FGSM (one step of eps),
MI-FGSM (decay 1.0, 20 steps of 2/255, no random start), DeepFool (overshoot 0.02, 50 iterations,
10 candidate classes, scored after projection into the eps-ball).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .modes import frozen_params

__all__ = [
    "ATTACK_NAMES",
    "AttackConfig",
    "AttackFn",
    "deepfool",
    "fgsm",
    "format_attack",
    "make_attack",
    "mifgsm",
    "parse_attack",
    "parse_fraction",
    "pgd",
    "pgd_l2",
    "transfer",
]

AttackFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""An attack with its settings bound: ``attack(model, x, y) -> x_adv``."""

ATTACK_NAMES = ("none", "fgsm", "pgd", "pgd_l2", "mifgsm", "deepfool")
_NORMS = ("inf", "2")
# Step added to DeepFool's minimal linearised step, as in Moosavi-Dezfooli et al.'s reference code.
_DEEPFOOL_STEP_TOL = 1e-4


# ----------------------------------------------------------------------------- validation


def _check_inputs(name: str, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Validate the common arguments; return ``y`` as int64 on ``x``'s device."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: x must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{name}: x must be a floating-point tensor of images in [0, 1], got dtype {x.dtype}. "
            "Hint: convert uint8 images with x.float() / 255."
        )
    if x.dim() < 2:
        raise ValueError(f"{name}: x must have a batch dimension, got shape {tuple(x.shape)}")
    if not isinstance(y, Tensor):
        raise TypeError(f"{name}: y must be a torch.Tensor of class indices, got {type(y).__name__}")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise TypeError(
            f"{name}: y must hold integer class indices, got dtype {y.dtype}. "
            "Hint: pass labels, not one-hot vectors or logits."
        )
    if y.dim() != 1:
        raise ValueError(f"{name}: y must be 1-D (one class index per row), got shape {tuple(y.shape)}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name}: batch size mismatch: x has {x.shape[0]} rows, y has {y.shape[0]} labels"
        )
    if torch.is_inference_mode_enabled():
        raise ValueError(
            f"{name}: cannot compute input gradients inside torch.inference_mode(). "
            "Hint: use torch.no_grad() around the evaluation loop instead; attacks re-enable gradients."
        )
    if x.numel() > 0:
        # One host sync per call, outside the attack loop.
        lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()
        if not (lo >= 0.0 and hi <= 1.0):  # also false for NaN
            raise ValueError(
                f"{name}: x must lie in [0, 1] (pixel space), got values in [{lo:.6g}, {hi:.6g}]. "
                "Hint: mean/std normalization belongs inside the model (as its first layer), "
                "never in the data or the attack."
            )
    return y.to(device=x.device, dtype=torch.long)


def _check_number(name: str, what: str, value: object, *, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name}: {what} must be a number, got {type(value).__name__}")
    v = float(value)
    if not v >= 0.0 or (math.isinf(v) and not allow_inf):
        bound = "a non-negative number" if allow_inf else "a finite non-negative number"
        raise ValueError(f"{name}: {what} must be {bound}, got {value}")
    return v


def _check_steps(name: str, steps: object) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int):
        raise TypeError(f"{name}: steps must be an int, got {type(steps).__name__}")
    if steps < 0:
        raise ValueError(f"{name}: steps must be >= 0, got {steps}")
    return steps


def _check_noise(name: str, noise: Tensor | None, x: Tensor, random_start: bool) -> None:
    if noise is None:
        return
    if not random_start:
        raise ValueError(f"{name}: noise was given but random_start=False. "
                         "Hint: drop noise or set random_start=True")
    if not isinstance(noise, Tensor) or noise.shape != x.shape:
        got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
        raise ValueError(f"{name}: noise must be a tensor of x's shape {tuple(x.shape)}, got {got}")


# ----------------------------------------------------------------------------- helpers


def _linf_bounds(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """The eps-ball around ``x`` intersected with [0, 1]: per-element ``(lo, hi)``."""
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)


def _row_view(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-row vector (N,) to broadcast against ``x`` (N, ...)."""
    return v.view(-1, *([1] * (x.dim() - 1)))


def _input_grad(model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
    """d/dx of the summed cross-entropy; ``x_adv`` is a leaf with ``requires_grad``."""
    loss = F.cross_entropy(model(x_adv), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_adv)
    return grad


def _rand(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None, *, normal: bool) -> Tensor:
    """Draw U[0, 1) or N(0, 1) in ``like``'s dtype on the generator's device, then move to like's.

    A CPU generator with a CUDA ``x`` draws on the CPU (bit-identical across devices, at the cost
    of a host-to-device copy); a CUDA generator draws on its own device. ``None`` uses torch's
    default generator of ``x``'s device (seeded by the caller, e.g. ``torch.manual_seed``).
    """
    device = generator.device if generator is not None else like.device
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


def _l2_norms(t: Tensor) -> Tensor:
    """Per-row L2 norms, shape (N,)."""
    return torch.linalg.vector_norm(t.flatten(1), ord=2, dim=1)


def _project_l2_(x_adv: Tensor, x: Tensor, eps: float) -> Tensor:
    """In place: scale ``x_adv - x`` into the L2 eps-ball, then clamp to [0, 1].

    Clamping after the projection keeps the result inside the ball: x is in [0, 1], so clamping
    only moves a coordinate toward x's.
    """
    delta = x_adv.sub_(x)
    scale = (eps / _l2_norms(delta).clamp_min(torch.finfo(x.dtype).tiny)).clamp_(max=1.0)
    return delta.mul_(_row_view(scale, x)).add_(x).clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------- attacks


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
        ValueError: x outside [0, 1], eps < 0, batch sizes that differ.
    """
    y = _check_inputs("fgsm", model, x, y)
    eps = _check_number("fgsm", "eps", eps, allow_inf=True)
    x = x.detach()
    if x.shape[0] == 0:
        return x.clone()
    lo, hi = _linf_bounds(x, eps)
    x_adv = x.clone().requires_grad_(True)
    with frozen_params(model), torch.enable_grad():
        grad = _input_grad(model, x_adv, y)
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
        generator: source of the random start (see :func:`_rand` for devices); ``None`` uses
            torch's default generator.
        noise: explicit random start in units of eps, x's shape; overrides ``generator``.

    Returns:
        The adversarial batch (detached, x's shape and dtype).

    Raises:
        TypeError: non-floating x, non-integer y, non-number settings.
        ValueError: x outside [0, 1], eps/step_size/steps < 0, batch sizes that differ, a ``noise``
            of the wrong shape.
    """
    y = _check_inputs("pgd", model, x, y)
    eps = _check_number("pgd", "eps", eps, allow_inf=True)
    step_size = _check_number("pgd", "step_size", step_size)
    steps = _check_steps("pgd", steps)
    _check_noise("pgd", noise, x, random_start)
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
            grad = _input_grad(model, x_adv, y)
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
        ValueError: x outside [0, 1], eps/step_size/steps < 0, batch sizes that differ, a ``noise``
            of the wrong shape.
    """
    y = _check_inputs("pgd_l2", model, x, y)
    eps = _check_number("pgd_l2", "eps", eps)
    step_size = _check_number("pgd_l2", "step_size", step_size)
    steps = _check_steps("pgd_l2", steps)
    _check_noise("pgd_l2", noise, x, random_start)
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
            grad = _input_grad(model, x_adv, y)
            with torch.no_grad():
                grad.div_(_row_view(_l2_norms(grad).clamp_min_(tiny), x))
                _project_l2_(x_adv.add_(grad, alpha=step_size), x, eps)
    return x_adv.detach()


def mifgsm(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, step_size: float, steps: int,
           decay: float = 1.0) -> Tensor:
    """Momentum Iterative FGSM (Dong et al. 2018), L-inf, no random start (SPEC §3 decision).

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
        ValueError: x outside [0, 1], eps/step_size/steps/decay < 0, batch sizes that differ.
    """
    y = _check_inputs("mifgsm", model, x, y)
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
            grad = _input_grad(model, x_adv, y)
            with torch.no_grad():
                l1 = grad.abs().flatten(1).sum(dim=1).clamp_min_(tiny)  # (N,)
                momentum.mul_(decay).add_(grad.div_(_row_view(l1, x)))
                x_adv.add_(momentum.sign(), alpha=step_size).clamp_(lo, hi)
    return x_adv.detach()


def deepfool(model: nn.Module, x: Tensor, y: Tensor, *, steps: int = 50, overshoot: float = 0.02,
             num_candidates: int = 10, norm: str = "inf", eps: float | None = None) -> Tensor:
    """DeepFool (Moosavi-Dezfooli et al. 2016), batched multi-class version, L-inf or L2.

    Candidates: the true class y and the ``num_candidates - 1`` other classes with the highest
    clean logits. Each iteration linearises the active rows around the current point
    ``x_i = clip_[0,1](x + (1 + overshoot) * r)``: with ``f'_k = f_k - f_y`` and
    ``w'_k = grad f'_k``, pick ``l = argmin_k |f'_l| / ||w'_l||_q`` (q = 1 for L-inf, 2 for L2,
    the dual norms) and add the minimal step to the linearised boundary,
    ``r += (|f'_l| / ||w'_l||_q + 1e-4) * sign(w'_l)`` (L-inf) or ``* w'_l / ||w'_l||_2`` (L2).
    The overshoot scales the accumulated ``r`` as in the original (``x + (1 + overshoot) * r``).
    A row stops as soon as the model no longer predicts y (rows misclassified at the start are
    returned unchanged); the loop ends after ``steps`` updates or when no row is left. Only
    active rows are forwarded (one host sync per iteration): in train mode, BN therefore sees
    the active rows only.

    With ``eps`` the final perturbation is projected into the eps-ball of ``norm`` (the SPEC's
    "DeepFool accuracy" is measured on that projection); without it the minimal perturbation is
    returned unbounded (but in [0, 1]).

    Args:
        model: classifier returning logits; its mode is used as is.
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        steps: maximum number of linearisation steps.
        overshoot: relative overshoot of the accumulated perturbation.
        num_candidates: classes considered, y included (capped at the number of classes).
        norm: ``"inf"`` or ``"2"``.
        eps: radius of the final projection, or ``None``.

    Returns:
        The adversarial batch (detached, x's shape and dtype).

    Raises:
        TypeError: non-floating x, non-integer y, non-number settings.
        ValueError: x outside [0, 1], steps/overshoot/eps < 0, num_candidates < 2, unknown norm,
            batch sizes that differ.
    """
    y = _check_inputs("deepfool", model, x, y)
    steps = _check_steps("deepfool", steps)
    overshoot = _check_number("deepfool", "overshoot", overshoot)
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int):
        raise TypeError(f"deepfool: num_candidates must be an int, got {type(num_candidates).__name__}")
    if num_candidates < 2:
        raise ValueError(f"deepfool: num_candidates must be >= 2 (y and at least one other class), "
                         f"got {num_candidates}")
    if norm not in _NORMS:
        raise ValueError(f"deepfool: norm must be 'inf' or '2', got {norm!r}")
    if eps is not None:
        eps = _check_number("deepfool", "eps", eps, allow_inf=True)
    x = x.detach()
    n = x.shape[0]
    x_adv = x.clone()
    if n == 0:
        return x_adv
    r_tot = torch.zeros_like(x)
    dual = 1.0 if norm == "inf" else 2.0
    with frozen_params(model), torch.enable_grad():
        with torch.no_grad():
            logits0 = model(x)
        if logits0.dim() != 2 or logits0.shape[1] < 2:
            raise ValueError(f"deepfool: the model must return logits of shape (N, classes >= 2), "
                             f"got {tuple(logits0.shape)}")
        k = min(num_candidates, logits0.shape[1])
        # The k-1 strongest classes other than y, by clean logits: (N, k-1).
        others = logits0.float().scatter(1, y[:, None], -math.inf).topk(k - 1, dim=1).indices
        active = torch.arange(n, device=x.device)
        for _ in range(steps):
            xa = x_adv[active].requires_grad_(True)
            logits = model(xa)
            ya = y[active]
            still = logits.argmax(dim=1) == ya
            keep = still.nonzero().squeeze(1)  # the one host sync per iteration
            if keep.numel() == 0:
                break
            oa = others[active]
            f_y = logits.gather(1, ya[:, None])  # (Na, 1)
            f_diff = logits.gather(1, oa) - f_y  # (Na, k-1)
            # One backward per candidate; rows are independent, so the sum's gradient is per row.
            grads = [
                torch.autograd.grad(f_diff[:, j].sum(), xa, retain_graph=j < k - 2)[0]
                for j in range(k - 1)
            ]
            with torch.no_grad():
                w = torch.stack(grads, dim=1)[keep]  # (Nk, k-1, ...)
                f = f_diff[keep].to(x.dtype).abs()  # (Nk, k-1)
                w_norm = torch.linalg.vector_norm(w.flatten(2), ord=dual, dim=2)  # (Nk, k-1)
                ratio = f / w_norm.clamp_min(torch.finfo(x.dtype).tiny)
                best = ratio.argmin(dim=1)  # (Nk,)
                rows = torch.arange(best.shape[0], device=x.device)
                w_l = w[rows, best]  # (Nk, ...)
                step = ratio[rows, best] + _DEEPFOOL_STEP_TOL
                if norm == "inf":
                    r_i = w_l.sign_().mul_(_row_view(step, w_l))
                else:
                    r_i = w_l.mul_(_row_view(step / w_norm[rows, best].clamp_min(1e-12), w_l))
                active = active[keep]
                r_tot[active] += r_i
                x_adv[active] = (x[active] + (1.0 + overshoot) * r_tot[active]).clamp_(0.0, 1.0)
    if eps is not None:
        if norm == "inf":
            lo, hi = _linf_bounds(x, eps)
            x_adv.clamp_(lo, hi)
        elif math.isfinite(eps):
            _project_l2_(x_adv, x, eps)
    return x_adv


def transfer(source: nn.Module, target: nn.Module, x: Tensor, y: Tensor,
             attack: AttackFn) -> tuple[Tensor, Tensor]:
    """Transfer (black-box) evaluation: craft on ``source``, score on ``target`` (paper Table 2).

    Neither model's mode is changed; put both in eval mode first for the paper's protocol. The
    target sees only the finished adversarial batch (no gradient from it is used).

    Args:
        source: the model the attack differentiates.
        target: the model that is scored.
        x: images in [0, 1], shape (N, ...).
        y: class indices, shape (N,).
        attack: ``attack(model, x, y) -> x_adv``, e.g. from :func:`make_attack`.

    Returns:
        ``(x_adv, correct)``: the adversarial batch and a bool tensor (N,) that is True where
        ``target`` still predicts y on it (its mean is the transfer accuracy).

    Raises:
        TypeError, ValueError: as the attacks, for x, y and the models.
    """
    y = _check_inputs("transfer", source, x, y)
    if not isinstance(target, nn.Module):
        raise TypeError(f"transfer: target must be a torch.nn.Module, got {type(target).__name__}")
    x_adv = attack(source, x, y)
    with torch.no_grad():
        correct = target(x_adv).argmax(dim=1) == y
    return x_adv, correct


def _no_attack(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    _check_inputs("none", model, x, y)
    return x.detach().clone()


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True, kw_only=True)
class AttackConfig:
    """An attack and its settings, as recorded (``dataclasses.asdict``) in every results record.

    Fields an attack does not use are kept as given and ignored by it: ``decay`` is MI-FGSM's,
    ``overshoot``/``num_candidates``/``norm`` are DeepFool's (``norm`` must also be "2" for
    ``pgd_l2`` and "inf" for the L-inf attacks), ``random_start`` is PGD's, FGSM uses only eps.
    For DeepFool, ``eps`` is the radius of the final projection (``math.inf``: none).

    Attributes:
        name: one of :data:`ATTACK_NAMES` ("none" is the clean evaluation).
        eps: radius of the threat model (L-inf unless ``norm == "2"``).
        step_size: size of each step (L-inf: per pixel; L2: per sample).
        steps: number of steps (DeepFool: maximum number of linearisations).
        random_start: PGD's uniform start in the ball.
        decay: MI-FGSM's momentum decay.
        overshoot: DeepFool's overshoot.
        num_candidates: DeepFool's candidate classes.
        norm: "inf" or "2".
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

    def __post_init__(self) -> None:
        if self.name not in ATTACK_NAMES:
            close = difflib.get_close_matches(str(self.name), ATTACK_NAMES, n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"AttackConfig: unknown attack name {self.name!r}; expected one of "
                             f"{', '.join(ATTACK_NAMES)}.{hint}")
        what = f"AttackConfig({self.name})"
        _check_number(what, "eps", self.eps, allow_inf=True)
        _check_number(what, "step_size", self.step_size)
        _check_steps(what, self.steps)
        _check_number(what, "decay", self.decay)
        _check_number(what, "overshoot", self.overshoot)
        if not isinstance(self.random_start, bool):
            raise TypeError(f"{what}: random_start must be a bool, got {type(self.random_start).__name__}")
        if isinstance(self.num_candidates, bool) or not isinstance(self.num_candidates, int):
            raise TypeError(f"{what}: num_candidates must be an int, "
                            f"got {type(self.num_candidates).__name__}")
        if self.num_candidates < 2:
            raise ValueError(f"{what}: num_candidates must be >= 2, got {self.num_candidates}")
        if self.norm not in _NORMS:
            raise ValueError(f"{what}: norm must be 'inf' or '2', got {self.norm!r}")
        if self.name == "pgd_l2" and self.norm != "2":
            raise ValueError(f"{what}: pgd_l2 is an L2 attack, so norm must be '2', got {self.norm!r}. "
                             "Hint: AttackConfig(name='pgd_l2', norm='2', eps=0.5, ...) or "
                             "parse_attack('pgd20_l2')")
        if self.name in ("fgsm", "pgd", "mifgsm") and self.norm != "inf":
            raise ValueError(f"{what}: {self.name} is an L-inf attack, so norm must be 'inf', got "
                             f"{self.norm!r}. Hint: use name='pgd_l2' or 'deepfool' for L2")
        if self.name == "pgd_l2" and math.isinf(self.eps):
            raise ValueError(f"{what}: pgd_l2 needs a finite eps, got {self.eps}")


def make_attack(cfg: AttackConfig, *, generator: torch.Generator | None = None) -> AttackFn:
    """Bind a config to its attack function: ``make_attack(cfg)(model, x, y) -> x_adv``.

    Args:
        cfg: the attack and its settings.
        generator: random-start source for PGD (ignored by the other attacks).

    Returns:
        A callable ``(model, x, y) -> x_adv``.
    """
    if not isinstance(cfg, AttackConfig):
        raise TypeError(f"make_attack: expected an AttackConfig, got {type(cfg).__name__}. "
                        "Hint: parse_attack('pgd20') builds one from a string")
    c = cfg
    if c.name == "none":
        return _no_attack
    if c.name == "fgsm":
        def run_fgsm(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
            return fgsm(model, x, y, eps=c.eps)
        return run_fgsm
    if c.name in ("pgd", "pgd_l2"):
        fn = pgd if c.name == "pgd" else pgd_l2

        def run_pgd(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
            return fn(model, x, y, eps=c.eps, step_size=c.step_size, steps=c.steps,
                      random_start=c.random_start, generator=generator)
        return run_pgd
    if c.name == "mifgsm":
        def run_mifgsm(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
            return mifgsm(model, x, y, eps=c.eps, step_size=c.step_size, steps=c.steps, decay=c.decay)
        return run_mifgsm

    def run_deepfool(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return deepfool(model, x, y, steps=c.steps, overshoot=c.overshoot, num_candidates=c.num_candidates,
                        norm=c.norm, eps=None if math.isinf(c.eps) else c.eps)
    return run_deepfool


def parse_fraction(text: str) -> float:
    """Parse a number written as a decimal or a fraction: "8/255", "0.03137", "8/255.", "inf".

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: anything else, with a hint.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_fraction: expected a string, got {type(text).__name__}")
    hint = "Hint: write a decimal or a fraction, e.g. '8/255' or '0.03137'"
    parts = [p.strip() for p in text.strip().split("/")]
    try:
        if len(parts) == 1:
            value = float(parts[0])
        elif len(parts) == 2:
            num, den = float(parts[0]), float(parts[1])
            if den == 0.0:
                raise ValueError(f"cannot parse {text!r}: division by zero. {hint}")
            value = num / den
        else:
            raise ValueError(f"cannot parse {text!r} as a number: more than one '/'. {hint}")
    except ValueError as err:
        if str(err).startswith("cannot parse"):
            raise
        raise ValueError(f"cannot parse {text!r} as a number. {hint}") from None
    if math.isnan(value):
        raise ValueError(f"cannot parse {text!r}: not a number. {hint}")
    return value


_SPEC_RE = re.compile(r"^(?:(?P<clean>clean|none)|(?P<fgsm>fgsm)|pgd(?P<pgd>\d*)(?P<l2>_l2)?"
                      r"|mifgsm(?P<mi>\d*)|(?P<df>deepfool)(?P<dfl2>_l2)?)$")
_SPEC_HINT = ("expected clean, fgsm, pgd<N> (e.g. pgd20, pgd100, pgd7), pgd<N>_l2, mifgsm, deepfool or "
              "deepfool_l2, optionally followed by ':key=value,...' "
              "(e.g. 'pgd20:eps=4/255,random_start=false')")
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(AttackConfig) if f.name != "name"}


def _base_config(head: str, spec: str) -> tuple[dict[str, object], bool]:
    """Paper settings (SPEC §3) for a spec head; also whether step_size follows eps/steps."""
    m = _SPEC_RE.match(head.replace("-", "").replace(" ", ""))
    if m is None:
        close = difflib.get_close_matches(head, ["clean", "fgsm", "pgd20", "pgd100", "pgd7", "pgd20_l2",
                                                 "mifgsm", "deepfool", "deepfool_l2"], n=2)
        did = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"parse_attack: unknown attack {spec!r}.{did} {_SPEC_HINT}")
    if m["clean"]:
        return {"name": "none", "eps": 0.0, "step_size": 0.0, "steps": 0, "random_start": False}, False
    if m["fgsm"]:
        return {"name": "fgsm", "step_size": 8 / 255, "steps": 1, "random_start": False}, True
    if m["df"]:
        if m["dfl2"]:
            return {"name": "deepfool", "steps": 50, "norm": "2", "eps": 0.5, "random_start": False}, False
        return {"name": "deepfool", "steps": 50, "random_start": False}, False
    if m["mi"] is not None:
        return {"name": "mifgsm", "steps": int(m["mi"] or 20), "random_start": False}, False
    steps = int(m["pgd"] or 20)
    if m["l2"]:
        # Madry et al.'s step rule for L2, 2.5 * eps / steps, at the usual CIFAR L2 radius 0.5.
        step = 2.5 * 0.5 / max(steps, 1)
        return {"name": "pgd_l2", "norm": "2", "eps": 0.5, "steps": steps, "step_size": step}, True
    return {"name": "pgd", "steps": steps}, False


def parse_attack(spec: str) -> AttackConfig:
    """Build an :class:`AttackConfig` from a CLI string with the paper's settings (SPEC §3).

    ``clean`` (no attack), ``fgsm`` (one step of eps = 8/255), ``pgd<N>`` (N steps of 2/255,
    eps 8/255, random start; ``pgd`` = ``pgd20``), ``pgd<N>_l2`` (eps 0.5, step 2.5 * eps / N),
    ``mifgsm`` (20 steps of 2/255, decay 1.0, no random start), ``deepfool`` (L-inf, 50 steps,
    overshoot 0.02, 10 candidates, projected into eps 8/255), ``deepfool_l2`` (projected into L2
    eps 0.5). Any field can be overridden after a colon: ``pgd20:eps=4/255,step_size=1/255``.
    For fgsm and pgd_l2 the step size follows an overridden eps (and steps) unless given.

    Raises:
        TypeError: ``spec`` is not a string.
        ValueError: unknown attack, unknown key, a value that does not parse, invalid settings.
    """
    if not isinstance(spec, str):
        raise TypeError(f"parse_attack: expected a string, got {type(spec).__name__}")
    head, _, tail = spec.strip().lower().partition(":")
    base, step_follows = _base_config(head.strip(), spec)
    overrides: dict[str, object] = {}
    for item in filter(None, (t.strip() for t in tail.split(","))):
        key, sep, raw = (s.strip() for s in item.partition("="))
        if not sep or not raw:
            raise ValueError(f"parse_attack: override {item!r} in {spec!r} is not key=value. {_SPEC_HINT}")
        if key not in _FIELD_TYPES:
            close = difflib.get_close_matches(key, list(_FIELD_TYPES), n=1)
            did = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"parse_attack: unknown setting {key!r} in {spec!r}.{did} "
                             f"Settings: {', '.join(_FIELD_TYPES)}")
        overrides[key] = _parse_value(key, raw, spec)
    fields = {**base, **overrides}
    if step_follows and "step_size" not in overrides and ("eps" in overrides or "steps" in overrides):
        eps = float(fields["eps"])  # type: ignore[arg-type]
        steps = int(fields["steps"])  # type: ignore[call-overload]
        fields["step_size"] = eps if fields["name"] == "fgsm" else 2.5 * eps / max(steps, 1)
    return AttackConfig(**fields)  # type: ignore[arg-type]


def _parse_value(key: str, raw: str, spec: str) -> object:
    kind = _FIELD_TYPES[key]
    if kind == "bool":
        table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
        if raw not in table:
            raise ValueError(f"parse_attack: {key}={raw!r} in {spec!r} is not a boolean. Hint: true or false")
        return table[raw]
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"parse_attack: {key}={raw!r} in {spec!r} is not an integer") from None
    if kind == "str":
        return raw
    return parse_fraction(raw)


def format_attack(cfg: AttackConfig) -> str:
    """The shortest :func:`parse_attack` spec for ``cfg``: ``parse_attack(format_attack(c)) == c``."""
    if not isinstance(cfg, AttackConfig):
        raise TypeError(f"format_attack: expected an AttackConfig, got {type(cfg).__name__}")
    if cfg.name == "none":
        head = "clean"
    elif cfg.name in ("pgd", "pgd_l2"):
        head = f"pgd{cfg.steps}" + ("_l2" if cfg.name == "pgd_l2" else "")
    elif cfg.name == "mifgsm":
        head = f"mifgsm{cfg.steps}"
    elif cfg.name == "deepfool":
        head = "deepfool_l2" if cfg.norm == "2" else "deepfool"
    else:
        head = cfg.name
    base = parse_attack(head)
    # Write eps and steps before step_size, so that a step size that follows them is not recomputed.
    diffs = [f"{f}={_format_value(getattr(cfg, f))}" for f in _FIELD_TYPES
             if getattr(cfg, f) != getattr(base, f)]
    follows = cfg.name in ("fgsm", "pgd_l2")
    if follows and any(d.startswith(("eps=", "steps=")) for d in diffs) and not any(
            d.startswith("step_size=") for d in diffs):
        diffs.append(f"step_size={_format_value(cfg.step_size)}")
    return head + (":" + ",".join(diffs) if diffs else "")


def _format_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, float) else str(v)

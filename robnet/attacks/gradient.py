"""Adversarial attacks in [0, 1] pixel space: FGSM, PGD (L-inf and L2), MI-FGSM, DeepFool.

Every attack is a stateless function ``attack(model, x, y, *, settings) -> x_adv`` (foolbox's
shape). The spec language that names them (``pgd20:eps=4/255``), their recorded configuration
and the name -> function table live in :mod:`robnet.attacks.spec`. Shared contract:

- ``x`` holds images in [0, 1]; a model that wants mean/std normalization has it as its first
  layer (SPEC §1). ``x`` outside [0, 1] (or NaN) raises, naming the range found.
- ``y`` holds class indices in ``[0, num_classes)``, where ``num_classes`` is the width of the
  model's logits. A label outside raises: -100, cross-entropy's ``ignore_index``, would otherwise
  give that row a zero gradient, so the attack would silently leave it alone.
- The result is a new, detached tensor of ``x``'s shape and dtype, inside the eps-ball around
  ``x`` and inside [0, 1]. ``x`` itself is never modified.
- The model's train/eval mode is never changed: the caller decides (see :mod:`robnet.utils`).
  The official RobNets training code crafts its PGD-7 examples with the model in **train** mode
  (BN uses batch statistics and updates its running averages during the attack); evaluation
  attacks the model in eval mode (``with eval_mode(model): ...``). In train mode BN couples the
  rows of a batch, so only eval-mode attacks are batch-consistent.
- Parameters are frozen for the duration of the attack (:func:`robnet.utils.frozen_params`) and
  the input gradient comes from ``torch.autograd.grad(loss, x_adv)``: no parameter gradient is
  computed and no ``param.grad`` is touched, so an attack can run between a training step's
  ``zero_grad`` and ``backward`` without interfering with it.
- The loss is cross-entropy with ``reduction="sum"``: row i's input gradient is exactly
  d loss_i / d x_i, independent of the batch size. Every update here normalises the gradient per
  sample (sign, L1 or L2), so with "mean" the iterates would be the same in exact arithmetic, but
  the gradients would shrink by 1/N, toward underflow under low-precision autocast for large N.
- Autocast is left as the caller set it; the update itself is computed in ``x``'s dtype, since
  the gradient w.r.t. ``x_adv`` comes back in it. Reported robust accuracies should come from
  float32 attacks: bf16 autocast during the attack can mask gradients (SPEC §3).
- Gradient computation is enabled inside the attack, so attacks may be called under
  ``torch.no_grad()`` (not under ``torch.inference_mode()``).

Hot path (PGD is the inner loop of adversarial training and of evaluation): the input checks
read their statistics (x's range, y's range, the explicit start's range) in one host
synchronisation per call; the loop issues none (no ``.item()``, no Python branch on tensor
values), updates the adversarial tensor in place, and projects with ``clamp`` against bounds
precomputed once: ``lo = max(x - eps, 0)``, ``hi = min(x + eps, 1)``, the intersection of the
eps-ball and [0, 1].

Settings of the paper (SPEC §3), as :func:`robnet.attacks.spec.parse_attack` gives them: L-inf
eps 8/255, step 2/255, uniform random start, PGD-7 for training, PGD-20/100 for evaluation, FGSM
(one step of eps), MI-FGSM (decay 1.0, 20 steps of 2/255, no random start), DeepFool (overshoot
0.02, 50 iterations, 10 candidate classes, scored after projection into the eps-ball).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnet.utils import frozen_params

__all__ = [
    "AttackFn",
    "deepfool",
    "fgsm",
    "mifgsm",
    "no_attack",
    "pgd",
    "pgd_l2",
]

AttackFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""An attack with its settings bound: ``attack(model, x, y) -> x_adv``."""

_NORMS = ("inf", "2")
# Step added to DeepFool's minimal linearised step, as in Moosavi-Dezfooli et al.'s reference code.
_DEEPFOOL_STEP_TOL = 1e-4
# Rounding slack for an explicit L2 start: per-row norms computed in float32 may exceed 1 by a few ulps.
_L2_NOISE_SLACK = 1e-5


# ----------------------------------------------------------------------------- validation


def _check_types(name: str, model: nn.Module, x: Tensor, y: Tensor) -> None:
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


def _noise_stat(name: str, noise: Tensor | None, x: Tensor, random_start: bool, norm: str) -> Tensor | None:
    """Check an explicit random start's type and shape; return its size statistic on the device
    (max |noise| for L-inf, the largest per-row L2 norm for L2; NaN propagates), read later."""
    if noise is None:
        return None
    if not random_start:
        raise ValueError(f"{name}: noise was given but random_start=False. "
                         "Hint: drop noise or set random_start=True")
    if not isinstance(noise, Tensor) or noise.shape != x.shape:
        got = tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__
        raise ValueError(f"{name}: noise must be a tensor of x's shape {tuple(x.shape)}, got {got}")
    if not noise.is_floating_point():
        raise TypeError(f"{name}: noise must be a floating-point tensor, got dtype {noise.dtype}")
    n = noise.detach()
    if norm == "inf":
        return n.abs().amax()
    return torch.linalg.vector_norm(n.flatten(1), ord=2, dim=1).amax()


def _check_inputs(name: str, model: nn.Module, x: Tensor, y: Tensor, *, noise: Tensor | None = None,
                  random_start: bool = True, norm: str = "inf") -> tuple[Tensor, int]:
    """Validate the common arguments in one host sync.

    Returns:
        ``y`` as int64 on ``x``'s device, and its largest label (-1 for an empty batch), which
        :func:`_logits` compares with the model's number of classes.
    """
    _check_types(name, model, x, y)
    stat = _noise_stat(name, noise, x, random_start, norm)
    if x.numel() == 0 or y.numel() == 0:
        return y.to(device=x.device, dtype=torch.long), -1
    # float64 holds every label and every pixel exactly (float32 on MPS, which lacks float64).
    wide = torch.float32 if x.device.type == "mps" else torch.float64
    parts = [torch.stack(torch.aminmax(x.detach())).to(wide),
             torch.stack(torch.aminmax(y.detach())).to(device=x.device, dtype=wide)]
    if stat is not None:
        parts.append(stat.to(device=x.device, dtype=wide).reshape(1))
    values = torch.cat(parts).tolist()  # the one host sync per call, outside the attack loop
    lo, hi, y_lo, y_hi = values[:4]
    if not (lo >= 0.0 and hi <= 1.0):  # also false for NaN
        raise ValueError(
            f"{name}: x must lie in [0, 1] (pixel space), got values in [{lo:.6g}, {hi:.6g}]. "
            "Hint: mean/std normalization belongs inside the model (as its first layer), "
            "never in the data or the attack."
        )
    if y_lo < 0:
        raise ValueError(
            f"{name}: y must hold class indices in [0, num_classes), got a label {int(y_lo)}. "
            "Hint: -100 is cross-entropy's ignore_index: such a row gets no gradient and would be "
            "left unattacked; drop those rows instead."
        )
    if stat is not None:
        limit = 1.0 if norm == "inf" else 1.0 + _L2_NOISE_SLACK
        size = values[4]
        if not size <= limit:  # also true for NaN
            what = "max |noise|" if norm == "inf" else "the largest per-row L2 norm of noise"
            raise ValueError(
                f"{name}: noise is the random start in units of eps and must be finite with "
                f"{'|noise| <= 1' if norm == 'inf' else 'per-row L2 norm <= 1'}, got {what} = {size:.6g}. "
                "Hint: draw it as 2 * torch.rand_like(x) - 1 (L-inf) or scale it into the unit ball (L2)"
            )
    return y.to(device=x.device, dtype=torch.long), int(y_hi)


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


def _logits(name: str, model: nn.Module, x: Tensor, y_hi: int) -> Tensor:
    """``model(x)``, checked against the labels: (N, classes) with every label below ``classes``.

    Shapes only: no host sync.
    """
    logits = model(x)
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"{name}: the model must return logits of shape (N, classes), got {got}")
    if y_hi >= logits.shape[1]:
        raise ValueError(
            f"{name}: y must hold class indices in [0, num_classes), got a label {y_hi} but the model has "
            f"{logits.shape[1]} classes. Hint: the model and the data disagree on the number of classes"
        )
    return logits


# ----------------------------------------------------------------------------- helpers


def _linf_bounds(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """The eps-ball around ``x`` intersected with [0, 1]: per-element ``(lo, hi)``."""
    return (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)


def _row_view(v: Tensor, x: Tensor) -> Tensor:
    """Reshape a per-row vector (N,) to broadcast against ``x`` (N, ...)."""
    return v.view(-1, *([1] * (x.dim() - 1)))


def _input_grad(name: str, model: nn.Module, x_adv: Tensor, y: Tensor, y_hi: int) -> Tensor:
    """d/dx of the summed cross-entropy; ``x_adv`` is a leaf with ``requires_grad``."""
    loss = F.cross_entropy(_logits(name, model, x_adv, y_hi), y, reduction="sum")
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
        generator: source of the random start (see :func:`_rand` for devices); ``None`` uses
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


def _deepfool_step(w: Tensor, f: Tensor, norm: str) -> Tensor:
    """DeepFool's minimal step to the nearest linearised boundary, per row.

    Args:
        w: gradients of the logit differences, (N, k-1, ...).
        f: absolute logit differences |f'_k|, (N, k-1).
        norm: "inf" (dual norm L1) or "2".

    Returns:
        ``(|f'_l| / ||w'_l||_q + 1e-4) * sign(w'_l)`` (L-inf) or ``* w'_l / ||w'_l||_2`` (L2),
        for the closest candidate l of each row: (N, ...).
    """
    dual = 1.0 if norm == "inf" else 2.0
    w_norm = torch.linalg.vector_norm(w.flatten(2), ord=dual, dim=2)  # (N, k-1)
    ratio = f / w_norm.clamp_min(torch.finfo(f.dtype).tiny)
    best = ratio.argmin(dim=1)  # (N,)
    rows = torch.arange(best.shape[0], device=w.device)
    w_l = w[rows, best]  # (N, ...)
    step = ratio[rows, best] + _DEEPFOOL_STEP_TOL
    if norm == "inf":
        return w_l.sign_().mul_(_row_view(step, w_l))
    return w_l.mul_(_row_view(step / w_norm[rows, best].clamp_min(1e-12), w_l))


def _check_deepfool_settings(steps: object, overshoot: object, num_candidates: object, norm: object,
                             eps: object) -> tuple[int, float, float | None]:
    steps = _check_steps("deepfool", steps)
    overshoot = _check_number("deepfool", "overshoot", overshoot)
    if isinstance(num_candidates, bool) or not isinstance(num_candidates, int):
        raise TypeError(f"deepfool: num_candidates must be an int, got {type(num_candidates).__name__}")
    if num_candidates < 2:
        raise ValueError(f"deepfool: num_candidates must be >= 2 (y and at least one other class), "
                         f"got {num_candidates}")
    if norm not in _NORMS:
        raise ValueError(f"deepfool: norm must be 'inf' or '2', got {norm!r}")
    return steps, overshoot, None if eps is None else _check_number("deepfool", "eps", eps, allow_inf=True)


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
        ValueError: x outside [0, 1], a label outside [0, classes), steps/overshoot/eps < 0,
            num_candidates < 2, unknown norm, batch sizes that differ.
    """
    y, y_hi = _check_inputs("deepfool", model, x, y)
    steps, overshoot, eps = _check_deepfool_settings(steps, overshoot, num_candidates, norm, eps)
    x = x.detach()
    n = x.shape[0]
    x_adv = x.clone()
    if n == 0:
        return x_adv
    r_tot = torch.zeros_like(x)
    with frozen_params(model), torch.enable_grad():
        with torch.no_grad():
            logits0 = _logits("deepfool", model, x, y_hi)
        if logits0.shape[1] < 2:
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
                r_i = _deepfool_step(torch.stack(grads, dim=1)[keep], f_diff[keep].to(x.dtype).abs(), norm)
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

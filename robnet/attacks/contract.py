"""The contract every attack in :mod:`robnet.attacks` keeps, and the code that enforces it.

An attack is a stateless function ``attack(model, x, y, *, settings) -> x_adv`` (foolbox's
shape); :data:`AttackFn` is one with its settings bound. Every attack of the package
(:mod:`~robnet.attacks.gradient`, :mod:`~robnet.attacks.deepfool`, :mod:`~robnet.attacks.apgd`,
:mod:`~robnet.attacks.fab`, :mod:`~robnet.attacks.square`, :mod:`~robnet.attacks.autoattack`)
checks its arguments with the functions below and builds its steps from the tensor steps below.
The contract (threat model and settings: docs/design.md §3):

- ``x`` holds images in [0, 1]; a model that wants mean/std normalization has it as its first
  layer (docs/design.md §1). ``x`` outside [0, 1] (or NaN) raises, naming the range found.
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
  d loss_i / d x_i, independent of the batch size. Every update normalises the gradient per
  sample (sign, L1 or L2), so with "mean" the iterates would be the same in exact arithmetic, but
  the gradients would shrink by 1/N, toward underflow under low-precision autocast for large N.
- Autocast is left as the caller set it; the update itself is computed in ``x``'s dtype, since
  the gradient w.r.t. ``x_adv`` comes back in it. Reported robust accuracies should come from
  float32 attacks: bf16 autocast during the attack can mask gradients (docs/design.md §3).
- Gradient computation is enabled inside the attack, so attacks may be called under
  ``torch.no_grad()`` (not under ``torch.inference_mode()``).

The input checks read their statistics (x's range, y's range, an explicit start's size) in one
host synchronisation per call (:func:`_check_inputs`), outside any attack loop; the logits are
checked against the labels by shape only (:func:`_logits`), with no synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["NORMS", "AttackFn", "check_norm"]

AttackFn = Callable[[nn.Module, Tensor, Tensor], Tensor]
"""An attack with its settings bound: ``attack(model, x, y) -> x_adv``."""

# Rounding slack for an explicit L2 start: per-row norms computed in float32 may exceed 1 by a few ulps.
_L2_NOISE_SLACK = 1e-5


# ----------------------------------------------------------------------------- input and setting checks


# The spellings of the two threat models: "linf"/"l2" (AutoAttack's), "inf"/"2" (AttackConfig.norm's).
NORMS = {"linf": "inf", "inf": "inf", "l2": "2", "2": "2"}


def check_norm(name: str, norm: object) -> str:
    """The canonical norm ("inf" or "2") of a ``norm`` argument ("linf"/"inf" or "l2"/"2")."""
    if not isinstance(norm, str) or norm.lower() not in NORMS:
        raise ValueError(f"{name}: norm must be 'linf' or 'l2' (also 'inf' or '2'), got {norm!r}")
    return NORMS[norm.lower()]


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


def _check_int(name: str, what: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: {what} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: {what} must be >= {minimum}, got {value}")
    return value


def _check_steps(name: str, steps: object) -> int:
    return _check_int(name, "steps", steps, 0)


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


# ----------------------------------------------------------------------------- tensor steps


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

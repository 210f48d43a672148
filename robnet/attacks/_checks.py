"""The input contract every attack checks before it runs (:mod:`robnet.attacks.gradient` states it).

Types and shapes of ``model``, ``x``, ``y`` and an explicit random start; x's range, y's range
and the start's size read in one host synchronisation per call; the settings (numbers, step
counts); and the model's logits against the labels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

# Rounding slack for an explicit L2 start: per-row norms computed in float32 may exceed 1 by a few ulps.
_L2_NOISE_SLACK = 1e-5


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

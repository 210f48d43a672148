"""The tensor steps the attacks share: eps-ball bounds, L2 projection, per-row views and norms,
random draws, and the input gradient of the summed cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnet.attacks._checks import _logits


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

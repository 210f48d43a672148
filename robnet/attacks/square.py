"""Square Attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020): a score-based black-box attack, L-inf.

Square uses the model's logits only, never its gradients, so gradient masking cannot stop it: when
it finds adversarial examples a white-box attack missed, the white-box attack was being fooled
(a masking signature AutoAttack and :func:`robnet.attacks.masking.gradient_masking_report`
look for). It is the last attack of AutoAttack; settings: docs/design.md §3.

Random search on the margin loss ``m(x) = z_y - max_{i != y} z_i`` (logits ``z``; the point is
misclassified when ``m <= 0``), per sample:

1. start from vertical stripes: ``x_0 = clip(x + eps * s)`` with one sign ``s`` in {-1, +1} per
   channel and column;
2. at iteration i draw a square of side ``h_i = max(round(sqrt(p_i * H * W)), 1)`` (at most the
   image side) at a uniform position and a sign per channel, and set the square's pixels to
   ``x_best + 2 * eps * sign``, projected into the eps-ball and [0, 1] (so each lands on a vertex
   of the ball);
3. keep the candidate when it lowers the margin; stop a sample once it is misclassified.

``p_i`` starts at ``p_init`` (0.8) and halves at iterations 10, 50, 200, 500, 1000, 2000, 4000,
6000 and 8000 of a 10,000-query schedule, rescaled to the budget (the authors' schedule).

A query is one forward of one image; ``queries`` counts the stripe initialisation, so each image
costs at most ``queries`` forwards. Points the model already misclassifies are not attacked.
Where the authors' code draws one square for the whole batch at each iteration, this draws one
per image (as the paper's algorithm states it). The contract of :mod:`robnet.attacks.contract`
holds (inputs checked, x and the model's mode untouched, result detached inside the ball and
[0, 1]); the attack runs under ``torch.no_grad()``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robnet.attacks.contract import _check_inputs, _check_number, _linf_bounds, _logits, _row_view, check_norm

__all__ = ["margin", "square", "square_p_schedule", "square_side"]

# The iterations (of 10,000) after which the square's area fraction halves again.
_P_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """Per-row margin ``z_y - max_{i != y} z_i`` in float32 (negative: misclassified)."""
    z = logits.float()
    z_y = z.gather(1, y[:, None]).squeeze(1)
    return z_y - z.scatter(1, y[:, None], -math.inf).amax(dim=1)


def square_p_schedule(i: int, queries: int, p_init: float) -> float:
    """The fraction of the image a square covers at iteration ``i`` of ``queries``.

    ``p_init / 2**k`` with k the number of halving points of the 10,000-query schedule that
    ``i * 10000 / queries`` has passed (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000).
    """
    at = int(i / queries * 10000)
    return p_init / 2 ** sum(at > h for h in _P_HALVINGS)


def square_side(p: float, height: int, width: int) -> int:
    """Side of the square covering a fraction ``p`` of an H x W image: round(sqrt(p H W)), in [1, min(H, W)]."""
    return min(max(round(math.sqrt(p * height * width)), 1), height, width)


def _randint(high: int, shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform integers in [0, high) drawn on the generator's device (as :func:`contract._rand`), on like's."""
    device = generator.device if generator is not None else like.device
    return torch.randint(high, shape, generator=generator, device=device).to(like.device)


def _signs(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    return _randint(2, shape, like, generator).to(like.dtype).mul_(2).sub_(1)


def _window(n: int, side: int, height: int, width: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """One square per row at a uniform position: a (n, 1, H, W) mask of 0/1 in like's dtype."""
    top = _randint(height - side + 1, (n, 1), like, generator)
    left = _randint(width - side + 1, (n, 1), like, generator)
    rows = torch.arange(height, device=like.device)[None, :]
    cols = torch.arange(width, device=like.device)[None, :]
    in_rows = (rows >= top) & (rows < top + side)  # (n, H)
    in_cols = (cols >= left) & (cols < left + side)  # (n, W)
    return (in_rows[:, None, :, None] & in_cols[:, None, None, :]).to(like.dtype)


def _check_settings(x: Tensor, eps: object, norm: object, queries: object, p_init: object) -> tuple[float, int, float]:
    eps_f = _check_number("square", "eps", eps)
    if check_norm("square", norm) != "inf":
        raise ValueError(f"square: only the L-inf threat model is implemented, got norm={norm!r}. "
                         "Hint: use apgd(..., norm='l2') for L2")
    if eps_f > 1.0:
        raise ValueError(f"square: eps {eps} is above 1, larger than the whole [0, 1] pixel range. "
                         "Hint: L-inf radii are in pixel units, e.g. eps=8/255")
    if isinstance(queries, bool) or not isinstance(queries, int):
        raise TypeError(f"square: queries must be an int, got {type(queries).__name__}")
    if queries < 1:
        raise ValueError(f"square: queries must be >= 1 (the first is the initialisation), got {queries}")
    p = _check_number("square", "p_init", p_init)
    if not 0.0 < p <= 1.0:
        raise ValueError(f"square: p_init must lie in (0, 1] (a fraction of the image), got {p_init}")
    if x.dim() != 4:
        raise ValueError(f"square: x must be a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    return eps_f, queries, p


def square(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf", queries: int = 5000,
           p_init: float = 0.8, generator: torch.Generator | None = None) -> Tensor:
    """Square Attack, L-inf, on the margin loss (see the module docstring for the algorithm).

    Args:
        model: classifier returning logits; its mode is used as is (eval mode: rows independent).
        x: images in [0, 1], shape (N, C, H, W).
        y: class indices, shape (N,).
        eps: L-inf radius (pixel units, at most 1).
        norm: "linf" (or "inf"); the L2 version is not implemented.
        queries: forwards per image, the stripe initialisation included (AutoAttack: 5000).
        p_init: fraction of the image the first squares cover.
        generator: source of the stripes, squares and signs; ``None`` uses torch's default.

    Returns:
        The adversarial batch (detached, x's shape and dtype): the first misclassified point
        found for a fooled image, the lowest-margin point for the others, x itself for images
        already misclassified.

    Raises:
        TypeError: non-floating x, non-integer y, settings of the wrong type.
        ValueError: x outside [0, 1] or not 4-D, a label outside [0, classes), eps outside
            [0, 1], queries < 1, p_init outside (0, 1], norm other than L-inf.
    """
    y, y_hi = _check_inputs("square", model, x, y)
    eps, queries, p_init = _check_settings(x, eps, norm, queries, p_init)
    x = x.detach()
    best = x.clone()
    if x.shape[0] == 0:
        return best
    _, c, h, w = x.shape
    lo, hi = _linf_bounds(x, eps)
    with torch.no_grad():
        alive = (_logits("square", model, x, y_hi).argmax(dim=1) == y).nonzero().squeeze(1)
        stripes = _signs((alive.numel(), c, 1, w), x, generator)
        best[alive] = (x[alive] + eps * stripes).clamp_(lo[alive], hi[alive])
        m = torch.full((x.shape[0],), -math.inf, device=x.device)
        m[alive] = margin(model(best[alive]), y[alive])
        for i in range(queries - 1):
            idx = (m > 0).nonzero().squeeze(1)  # the one host sync per iteration
            if idx.numel() == 0:
                break
            side = square_side(square_p_schedule(i, queries, p_init), h, w)
            window = _window(idx.numel(), side, h, w, x, generator)
            step = window * _signs((idx.numel(), c, 1, 1), x, generator) * (2 * eps)
            cand = (best[idx] + step).clamp_(lo[idx], hi[idx])
            m_new = margin(model(cand), y[idx])
            keep = m_new < m[idx]
            best[idx] = torch.where(_row_view(keep, cand), cand, best[idx])
            m[idx] = torch.where(keep, m_new, m[idx])
    return best

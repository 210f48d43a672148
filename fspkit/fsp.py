"""FSP matrices and the clean-vs-adversarial FSP distance (pure tensor math, torch only).

The flow of solution procedure (FSP) matrix of Yim et al. (CVPR 2017, "A Gift from Knowledge
Distillation") between a cell's input F_in (m channels) and its output F_out (n channels) is

    G(x) = (1 / (h * w)) * sum_{s, t} F_in[:, s, t] (outer) F_out[:, s, t]        shape (m, n)

and the FSP loss of a cell used by RobNets (Guo et al., CVPR 2020, section 4.3) is

    L = (1 / N) * sum_x || G(x) - G(x_adv) ||_F^2.

On untrained networks the raw distance largely tracks the scale of the cell's activations
(docs/design.md §5), so the scale-free relative distance

    r(x) = || G(x) - G(x_adv) ||_F^2 / || G(x) ||_F^2

and the activation scale || G(x) ||_F^2 come out of the same fused pass
(:func:`fsp_pair_terms`), and :func:`fsp_relative_distance` computes r from two sets of matrices.
r is invariant under a common rescaling of both maps (G scales by c, both norms by c^2).

Decisions (docs/design.md §5): when the two maps have different spatial sizes (reduction cells) the larger
one is average-pooled (``adaptive_avg_pool2d``) to the smaller one; max pooling changes G by a
factor of about two and is never used. All FSP math runs in float32 or wider, with autocast
disabled, whatever the dtype of the maps (bf16 maps from mixed-precision forwards are cast up).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch
import torch.nn.functional as F

Reduction = Literal["none", "sum", "mean"]
POOLINGS: tuple[str, ...] = ("avg", "stride")
_REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean")
# Device types for which torch.autocast exists; elsewhere there is nothing to disable.
_AUTOCAST_DEVICES = frozenset({"cpu", "cuda", "xpu", "mps", "hpu", "xla"})

__all__ = [
    "align_spatial", "fsp_distance", "fsp_matrix", "fsp_pair_distance", "fsp_pair_terms", "fsp_relative_distance",
]


_MAP, _MAP_HINT = "(N, C, H, W)", "FSP is defined for convolutional feature maps; capture a cell/block output."
_GRAM, _GRAM_HINT = "(N, m, n)", "pass fsp_matrix(...) outputs; add a batch dim with g.unsqueeze(0)."


def _check_tensor(t: object, what: str, layout: str, hint: str) -> torch.Tensor:
    """``t`` if it is a floating-point tensor with as many dims as ``layout`` names (``(N, m, n)``: 3)."""
    dims = layout.count(",") + 1
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape {layout}, got {type(t).__name__}")
    if t.dim() != dims:
        raise ValueError(f"{what} must be {dims}-D {layout}, got shape {tuple(t.shape)}. Hint: {hint}")
    if not t.is_floating_point():
        raise TypeError(f"{what} must be a floating-point tensor, got dtype {t.dtype}")
    return t


def _check_pair(f_in: object, f_out: object) -> tuple[torch.Tensor, torch.Tensor]:
    a = _check_tensor(f_in, "f_in", _MAP, _MAP_HINT)
    b = _check_tensor(f_out, "f_out", _MAP, _MAP_HINT)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"f_in and f_out must have the same batch size, got {a.shape[0]} (f_in "
                         f"{tuple(a.shape)}) and {b.shape[0]} (f_out {tuple(b.shape)}). "
                         "Hint: pass the input and output of the same forward pass.")
    if a.device != b.device:
        raise ValueError(f"f_in and f_out must be on the same device, got {a.device} and {b.device}")
    return a, b


def _math_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or the widest input dtype when that is wider (float64 stays float64)."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _no_autocast(device: torch.device) -> AbstractContextManager[object]:
    if device.type in _AUTOCAST_DEVICES:
        return torch.autocast(device_type=device.type, enabled=False)
    return nullcontext()


def align_spatial(f_in: torch.Tensor, f_out: torch.Tensor, *, pooling: str = "avg") -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """Bring two feature maps to a common spatial size by average pooling the larger one.

    Each spatial dimension is reduced to the smaller of the two sizes with
    ``adaptive_avg_pool2d`` (an exact k x k mean when the sizes divide, e.g. 8x8 -> 4x4 averages
    2x2 blocks: the decision of docs/design.md §5). ``pooling="stride"`` subsamples instead (the
    nearest pixel, ``x[..., ::k, ::k]`` when the sizes divide): the alternative the study reports
    the deep-cell result's sensitivity to. Maps that already agree are returned unchanged (same
    objects). No dtype change.

    Args:
        f_in: (N, m, H1, W1) cell input.
        f_out: (N, n, H2, W2) cell output.
        pooling: ``"avg"`` or ``"stride"``.

    Returns:
        ``(f_in, f_out)`` with equal spatial size (min(H1, H2), min(W1, W2)).

    Raises:
        ValueError: not 4-D, different batch sizes or devices.
        TypeError: not floating-point tensors.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(map(repr, POOLINGS))}, got {pooling!r}")
    a, b = _check_pair(f_in, f_out)
    size = (min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3]))

    def shrink(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[2:]) == size:
            return x
        return F.adaptive_avg_pool2d(x, size) if pooling == "avg" else F.interpolate(x, size=size, mode="nearest")

    return shrink(a), shrink(b)


def _gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # a: (N, m, h, w), b: (N, n, h, w), same dtype, autocast off -> (N, m, n)
    hw = a.shape[2] * a.shape[3]
    return torch.einsum("nmhw,nkhw->nmk", a, b) / hw


def fsp_matrix(f_in: torch.Tensor, f_out: torch.Tensor) -> torch.Tensor:
    """FSP matrix per sample: G = (1/(h*w)) * sum_{s,t} F_in[:, s, t] (outer) F_out[:, s, t].

    The larger map is average-pooled to the smaller one first (:func:`align_spatial`). The math
    runs with autocast disabled in float32, or float64 when an input is float64.

    Args:
        f_in: (N, m, H1, W1) cell input.
        f_out: (N, n, H2, W2) cell output.

    Returns:
        (N, m, n) FSP matrices, float32 or wider.

    Raises:
        ValueError: inputs not 4-D, or with different batch sizes / devices.
        TypeError: inputs not floating-point tensors.
    """
    a, b = _check_pair(f_in, f_out)
    dtype = _math_dtype(a, b)
    with _no_autocast(a.device):
        a, b = align_spatial(a.to(dtype), b.to(dtype))
        return _gram(a, b)


def _check_grams(g_a: object, g_b: object) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _check_tensor(g_a, "g_a", _GRAM, _GRAM_HINT), _check_tensor(g_b, "g_b", _GRAM, _GRAM_HINT)
    if a.shape != b.shape:
        raise ValueError(f"g_a and g_b must have the same shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}. Hint: compare FSP matrices of the same cell on the same "
                         "number of samples.")
    if a.device != b.device:
        raise ValueError(f"g_a and g_b must be on the same device, got {a.device} and {b.device}")
    return a, b


def _check_reduction(reduction: object) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}, got {reduction!r}")


def _math_grams(g_a: object, g_b: object, reduction: object) -> tuple[torch.Tensor, torch.Tensor]:
    """The checked matrices (:func:`_check_grams`, after the reduction's check) in the math dtype."""
    _check_reduction(reduction)
    a, b = _check_grams(g_a, g_b)
    dtype = _math_dtype(a, b)
    return a.to(dtype), b.to(dtype)


def _reduce(d: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "sum":
        return d.sum()
    if reduction == "mean":
        return d.mean()
    return d


def fsp_distance(g_a: torch.Tensor, g_b: torch.Tensor, *, reduction: Reduction = "mean",
                 normalize: bool = False) -> torch.Tensor:
    """Squared Frobenius distance between FSP matrices, per sample then reduced.

    d_i = || G_a[i] - G_b[i] ||_F^2 (divided by m * n when ``normalize``, so cells of different
    widths compare). ``reduction="mean"`` gives the FSP loss L = (1/N) * sum_i d_i; ``"sum"``
    gives sum_i d_i (for accumulating over batches); ``"none"`` gives the (N,) vector.

    Args:
        g_a: (N, m, n) FSP matrices, e.g. of clean inputs.
        g_b: (N, m, n) FSP matrices, e.g. of the adversarial inputs.
        reduction: ``"none"``, ``"sum"`` or ``"mean"``.
        normalize: divide each distance by m * n.

    Returns:
        A scalar (``"sum"``/``"mean"``) or an (N,) tensor (``"none"``), float32 or wider.

    Raises:
        ValueError: shapes differ or are not (N, m, n); unknown reduction; devices differ.
        TypeError: not floating-point tensors.
    """
    g_a, g_b = _math_grams(g_a, g_b, reduction)
    with _no_autocast(g_a.device):
        d = (g_a - g_b).square().sum(dim=(1, 2))  # (N,)
        if normalize:
            d = d / (g_a.shape[1] * g_a.shape[2])
        return _reduce(d, reduction)


def fsp_relative_distance(g_a: torch.Tensor, g_b: torch.Tensor, *, reduction: Reduction = "none") -> torch.Tensor:
    """Scale-free FSP distance r_i = || G_a[i] - G_b[i] ||_F^2 / || G_a[i] ||_F^2 (docs/design.md §5 caveat).

    ``g_a`` is the reference (clean) matrix. r is unchanged when both matrices are multiplied by
    the same non-zero constant, so it separates feature stability from activation size. The
    ``normalize`` option of :func:`fsp_distance` would cancel in the ratio and is not offered.
    A sample whose reference matrix is exactly zero has no defined ratio: its r is NaN (0/0) or
    +inf, left for the caller to see rather than silently replaced.

    Args:
        g_a: (N, m, n) reference FSP matrices, e.g. of clean inputs.
        g_b: (N, m, n) FSP matrices, e.g. of the adversarial inputs.
        reduction: ``"none"`` (the default here: per-sample ratios), ``"sum"`` or ``"mean"``
            (the mean of the per-sample ratios, not a ratio of means).

    Returns:
        A scalar or an (N,) tensor, float32 or wider.

    Raises:
        ValueError: shapes differ or are not (N, m, n); unknown reduction; devices differ.
        TypeError: not floating-point tensors.
    """
    g_a, g_b = _math_grams(g_a, g_b, reduction)
    with _no_autocast(g_a.device):
        d = (g_a - g_b).square().sum(dim=(1, 2))  # (N,)
        return _reduce(d / g_a.square().sum(dim=(1, 2)), reduction)


def fsp_pair_terms(f_in: torch.Tensor, f_out: torch.Tensor, *, split: int, normalize: bool = False,
                   pooling: str = "avg") -> tuple[torch.Tensor, torch.Tensor]:
    """Fused clean-vs-adversarial FSP distance and clean FSP scale for a concatenated batch.

    Rows ``[0, split)`` are clean, rows ``[split, 2 * split)`` their adversarial counterparts, in
    the same order. One einsum over the whole 2N batch gives every G; from it come

        d_i = || G(x_i) - G(x_adv_i) ||_F^2      (the per-sample terms of the FSP loss)
        s_i = || G(x_i) ||_F^2                   (the clean activation scale)

    both divided by m * n when ``normalize``. The relative distance of docs/design.md §5 is ``d / s``
    (unaffected by ``normalize``). No extra forward and no second einsum: ``s`` reuses the clean
    half of the same G.

    Args:
        f_in: (2 * split, m, H1, W1) cell inputs.
        f_out: (2 * split, n, H2, W2) cell outputs.
        split: number of clean rows N.
        normalize: divide both terms by m * n.
        pooling: how maps of different sizes are aligned (:func:`align_spatial`).

    Returns:
        ``(d, s)``, two (split,) tensors, float32 (float64 when an input is float64).

    Raises:
        ValueError: batch size is not 2 * split, split < 1, or the map checks of :func:`fsp_matrix`.
        TypeError: split not an int, or maps not floating-point tensors.
    """
    if isinstance(split, bool) or not isinstance(split, int):
        raise TypeError(f"split must be an int (number of clean rows), got {type(split).__name__}")
    if split < 1:
        raise ValueError(f"split must be >= 1, got {split}")
    a, b = _check_pair(f_in, f_out)
    if a.shape[0] != 2 * split:
        raise ValueError(f"the fused clean/adversarial FSP expects a batch of 2 * split = {2 * split} rows "
                         f"(clean then adversarial), got {a.shape[0]}. "
                         "Hint: torch.cat([x_clean, x_adv]) before the forward.")
    dtype = _math_dtype(a, b)
    with _no_autocast(a.device):
        a, b = align_spatial(a.to(dtype), b.to(dtype), pooling=pooling)
        g = _gram(a, b)  # (2N, m, n)
        clean = g[:split]
        d = (clean - g[split:]).square().sum(dim=(1, 2))  # (N,)
        sq = clean.square().sum(dim=(1, 2))  # (N,)
        if normalize:
            mn = g.shape[1] * g.shape[2]
            d, sq = d / mn, sq / mn
        return d, sq


def fsp_pair_distance(f_in: torch.Tensor, f_out: torch.Tensor, *, split: int,
                      normalize: bool = False) -> torch.Tensor:
    """Fused clean-vs-adversarial FSP distances for a concatenated batch.

    Rows ``[0, split)`` are clean, rows ``[split, 2 * split)`` their adversarial counterparts, in
    the same order. One einsum over the whole 2N batch gives every G; the result is
    d_i = || G(x_i) - G(x_adv_i) ||_F^2 (divided by m * n when ``normalize``), the per-sample
    terms of the FSP loss. Equivalent to ``fsp_distance(fsp_matrix(clean...), fsp_matrix(adv...),
    reduction="none")`` but with one pass over the maps, which the streaming scorer uses. The
    first element of :func:`fsp_pair_terms`.

    Args:
        f_in: (2 * split, m, H1, W1) cell inputs.
        f_out: (2 * split, n, H2, W2) cell outputs.
        split: number of clean rows N.
        normalize: divide each distance by m * n.

    Returns:
        (split,) distances, float32 (float64 when an input is float64).

    Raises:
        ValueError: batch size is not 2 * split, split < 1, or the map checks of :func:`fsp_matrix`.
        TypeError: split not an int, or maps not floating-point tensors.
    """
    return fsp_pair_terms(f_in, f_out, split=split, normalize=normalize)[0]

"""DeepFool (Moosavi-Dezfooli et al. 2016): the minimal perturbation to the nearest linearised
decision boundary, batched, L-inf or L2.

It follows the contract of :mod:`robnet.attacks.contract` (x in [0, 1], labels checked, x never
modified, the model's mode and parameters untouched). Settings of the paper (docs/design.md §3):
overshoot 0.02, 50 iterations, 10 candidate classes, scored after projection into the eps-ball.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robnet.attacks.contract import (
    NORMS,
    _check_inputs,
    _check_number,
    _check_steps,
    _linf_bounds,
    _logits,
    _project_l2_,
    _row_view,
)
from robnet.utils import frozen_params

__all__ = ["deepfool"]

# Step added to DeepFool's minimal linearised step, as in Moosavi-Dezfooli et al.'s reference code.
_DEEPFOOL_STEP_TOL = 1e-4


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
    if norm not in set(NORMS.values()):
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

    With ``eps`` the final perturbation is projected into the eps-ball of ``norm`` (the
    "DeepFool accuracy" of docs/design.md §3 is measured on that projection); without it the
    minimal perturbation is returned unbounded (but in [0, 1]).

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
    x_adv = x.clone()
    if x.shape[0] == 0:
        return x_adv
    r_tot = torch.zeros_like(x)
    with frozen_params(model), torch.enable_grad():
        others = _candidates(model, x, y, y_hi, num_candidates)
        active = torch.arange(x.shape[0], device=x.device)
        for _ in range(steps):
            left = _linearised_update_(model, x, y, others, active, x_adv, r_tot, norm=norm, overshoot=overshoot)
            if left is None:
                break
            active = left
    if eps is not None:
        _project_(x_adv, x, eps, norm)
    return x_adv


def _candidates(model: nn.Module, x: Tensor, y: Tensor, y_hi: int, num_candidates: int) -> Tensor:
    """The ``k - 1`` strongest classes other than y by clean logits, (N, k-1), with
    ``k = min(num_candidates, classes)``."""
    with torch.no_grad():
        logits0 = _logits("deepfool", model, x, y_hi)
    if logits0.shape[1] < 2:
        raise ValueError(f"deepfool: the model must return logits of shape (N, classes >= 2), "
                         f"got {tuple(logits0.shape)}")
    k = min(num_candidates, logits0.shape[1])
    return logits0.float().scatter(1, y[:, None], -math.inf).topk(k - 1, dim=1).indices


def _linearised_update_(model: nn.Module, x: Tensor, y: Tensor, others: Tensor, active: Tensor, x_adv: Tensor,
                        r_tot: Tensor, *, norm: str, overshoot: float) -> Tensor | None:
    """One DeepFool iteration, in place on ``x_adv`` and ``r_tot``: the ``active`` rows the model
    still predicts as y take the minimal step to their nearest linearised boundary.

    Returns:
        The rows still active after the step, or None when none was left to step (the loop ends).
    """
    xa = x_adv[active].requires_grad_(True)
    logits = model(xa)
    ya = y[active]
    still = logits.argmax(dim=1) == ya
    keep = still.nonzero().squeeze(1)  # the one host sync per iteration
    if keep.numel() == 0:
        return None
    oa = others[active]
    k = oa.shape[1] + 1
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
    return active


def _project_(x_adv: Tensor, x: Tensor, eps: float, norm: str) -> None:
    """In place: ``x_adv`` into the eps-ball of ``norm`` around ``x`` (an infinite L2 ball: unchanged)."""
    if norm == "inf":
        lo, hi = _linf_bounds(x, eps)
        x_adv.clamp_(lo, hi)
    elif math.isfinite(eps):
        _project_l2_(x_adv, x, eps)

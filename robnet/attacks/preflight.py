"""Refusals before any attack: a model that does not fit its data, or whose numbers mean nothing.

A diverged checkpoint (NaN/inf weights, :func:`check_finite_weights`), a model whose logits
overflow on the first samples (:func:`check_finite_outputs`), and a model whose input channels or
number of outputs do not fit the data (:func:`check_model_data`) would each evaluate to numbers
that look like accuracies. :func:`robnet.attacks.evaluation.evaluate` and ``fspkit score`` run
these checks first and refuse with one line that says what is wrong and what to do
(docs/design.md §3).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robnet.utils import eval_mode

__all__ = ["check_finite_outputs", "check_finite_weights", "check_model_data"]


def check_finite_weights(model: nn.Module, *, what: str = "model") -> None:
    """Refuse a model with NaN or infinite parameters or floating-point buffers (one host sync).

    A diverged checkpoint evaluates to chance-level accuracy that looks like a number; its
    attacks get NaN gradients, which the sign step turns into no step at all.

    Raises:
        ValueError: naming how many tensors are non-finite and the first one.
    """
    named = [(n, t) for n, t in [*model.named_parameters(), *model.named_buffers()]
             if t.is_floating_point() and t.numel()]
    if not named:
        return
    finite = torch.stack([torch.isfinite(t.detach()).all().to(named[0][1].device) for _, t in named]).tolist()
    bad = [n for (n, _), ok in zip(named, finite, strict=True) if not ok]
    if bad:
        raise ValueError(f"{what} has non-finite weights: {len(bad)} of {len(named)} tensors hold NaN or inf "
                         f"(first: {bad[0]}). Hint: the checkpoint comes from a diverged run; use an earlier one")


def _first_images(data: Any, k: int, device: torch.device) -> torch.Tensor:
    """The first ``k`` images of ``data`` as a float batch in [0, 1] on ``device``."""
    images = [data[i][0] for i in range(k)]
    x = torch.stack([im if isinstance(im, torch.Tensor) else torch.as_tensor(im) for im in images]).to(device)
    return x.float().div(255.0) if not x.is_floating_point() else x


def check_finite_outputs(model: nn.Module, data: Any, *, n: int = 128, what: str = "model") -> None:
    """Refuse a model whose logits on the first ``n`` samples hold NaN or inf (one forward, eval mode).

    Finite weights can still overflow (an inf scale, a huge activation): accuracies computed on
    such logits, and the attacks' gradients, mean nothing. Every rank checks the same samples,
    so under DDP all ranks refuse together.

    Raises:
        ValueError: one line naming how many of the samples have non-finite logits.
    """
    k = min(n, len(data))
    if k == 0:
        return
    device = next(iter(model.parameters()), torch.empty(0)).device
    with torch.no_grad(), eval_mode(model):
        out = model(_first_images(data, k, device))
    bad = int((~torch.isfinite(out.float()).all(1)).sum())
    if bad:
        raise ValueError(f"{what} produces non-finite outputs: {bad} of the first {k} samples have NaN or inf logits, "
                         "so its accuracies and attack gradients would mean nothing. Hint: the model overflows "
                         "(a diverged checkpoint, an inf scale); check it on clean data first")


def _dataset_attr(data: Any, name: str) -> Any:
    """``data.name``, looking through ``torch.utils.data.Subset`` wrappers."""
    while not hasattr(data, name) and isinstance(data, torch.utils.data.Subset):
        data = data.dataset
    return getattr(data, name, None)


def check_model_data(model: nn.Module, data: Any, *, allow_more_classes: bool = False,
                     what: str = "model") -> int:
    """Check that ``model`` fits ``data``: input channels, then number of outputs vs classes.

    The channel count comes from the model's first ``Conv2d``; the number of outputs from one
    forward of the first sample (eval mode, no gradient, the model's device).

    Args:
        model: the classifier.
        data: an :class:`ArrayDataset`, a folder dataset or a ``Subset`` of one (non-empty).
        allow_more_classes: accept a model with more outputs than the data has classes (e.g. an
            ImageNet-1k model on a subset of the classes); never fewer.
        what: how errors name the model ("model", "transfer source", a checkpoint path).

    Returns:
        The model's number of outputs.

    Raises:
        ValueError: empty data, wrong channel count, outputs that are not (N, classes), fewer
            outputs than classes, or more without ``allow_more_classes``.
    """
    if len(data) == 0:
        raise ValueError("the dataset is empty: nothing to evaluate. Hint: check --subset / --n and --split")
    label = f"{_dataset_attr(data, 'name') or 'the data'}"
    image, _ = data[0]
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is not None and image.dim() == 3 and first.in_channels != image.shape[0]:
        raise ValueError(f"{what} expects {first.in_channels}-channel images but {label} has {image.shape[0]}: "
                         "wrong --data for this checkpoint?")
    device = next(iter(model.parameters()), torch.empty(0)).device
    x = image.to(device).float().div(255.0) if not image.is_floating_point() else image.to(device)
    with torch.no_grad(), eval_mode(model):
        out = model(x[None])
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{what} must return logits of shape (N, classes), got {got}")
    outputs, classes = int(out.shape[1]), _dataset_attr(data, "num_classes")
    if classes is None:
        return outputs
    if outputs < classes:
        raise ValueError(f"{what} has {outputs} outputs but {label} has {classes} classes: labels "
                         f"{outputs}..{classes - 1} can never be predicted. Hint: wrong --data for this checkpoint?")
    if outputs > classes and not allow_more_classes:
        raise ValueError(f"{what} has {outputs} outputs but {label} has {classes} classes: wrong --data for this "
                         "checkpoint? Hint: --allow-more-classes (allow_more_classes=True) accepts a model with "
                         "more outputs than the data's classes")
    return outputs

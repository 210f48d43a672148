"""Input normalization as a layer inside the model, so that attacks and data stay in [0, 1].

Models trained on normalized inputs, ``(x - mean) / std`` per channel, are wrapped rather than fed
normalized data: the attacks of :mod:`robnet.attacks` take their budget (eps) in pixel space and
clamp to [0, 1], and a normalization outside the model would silently rescale eps by ``1 / std``
(docs/design.md §1: "if a model wants normalization, it is a layer inside the model").

::

    model = with_normalization(net, "cifar10")             # or (mean, std), or "0.5,0.5,0.5,0.25,0.25,0.25"
    model(x01)                                             # == net((x01 - mean) / std)
    model.normalization                                    # {"name": "cifar10", "mean": [...], "std": [...]}

The wrapper :class:`NormalizedModel` holds the network as its ``model`` child, so every submodule
name gains the prefix ``model.`` (``layer1.0`` becomes ``model.layer1.0`` for hook capture and cell
globs) and its state_dict keys do too. ``mean`` / ``std`` are non-persistent buffers: they follow
``.to(device)`` but are not in the state_dict; the setting is recorded as plain data
(:attr:`NormalizedModel.normalization`), so save the inner ``.model`` and record that dict.

Named presets (:data:`DATASET_STATS`) are the per-channel mean and standard deviation of the
training images in [0, 1]. CIFAR-10's are recomputed from the official training batches
(0.4914, 0.4822, 0.4465 / 0.2470, 0.2435, 0.2616); many CIFAR repositories instead use std
(0.2023, 0.1994, 0.2010): a model trained with those needs them given explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["DATASET_STATS", "Normalize", "NormalizeSpec", "NormalizedModel", "normalization_record",
           "parse_normalization", "with_normalization"]

#: Per-channel (mean, std) of the training images in [0, 1], by dataset name.
DATASET_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

#: A dataset name, a "MEAN,STD" string of 2k numbers, ``(mean, std)`` sequences or numbers, or the
#: recorded dict ``{"mean": [...], "std": [...]}`` (``name`` optional).
NormalizeSpec = str | tuple[Sequence[float] | float, Sequence[float] | float] | Mapping[str, Any]

_FORMS = ("a dataset name (" + ", ".join(DATASET_STATS) + "), 'MEAN,STD' as 2k comma-separated numbers "
          "(k per-channel means then k stds, e.g. '0.4914,0.4822,0.4465,0.2470,0.2435,0.2616'), "
          "(mean, std) or {'mean': [...], 'std': [...]}")


def _floats(value: Any, what: str) -> tuple[float, ...]:
    items = [value] if isinstance(value, int | float) and not isinstance(value, bool) else value
    if isinstance(items, torch.Tensor):
        items = items.flatten().tolist()
    if isinstance(items, str) or not isinstance(items, Sequence) or not items:
        raise TypeError(f"normalization {what} must be a number or a non-empty list of numbers, got {value!r}")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise TypeError(f"normalization {what} must hold numbers, got {item!r} in {value!r}")
        if not math.isfinite(item):
            raise ValueError(f"normalization {what} must be finite, got {value!r}")
        out.append(float(item))
    return tuple(out)


def _parse_string(text: str) -> tuple[str | None, tuple[float, ...], tuple[float, ...]]:
    key = text.strip().lower()
    if key in DATASET_STATS:
        mean, std = DATASET_STATS[key]
        return key, mean, std
    parts = [p.strip() for p in text.split(",")]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise ValueError(f"normalization {text!r} is neither a known dataset nor numbers; expected {_FORMS}") \
            from None
    if len(numbers) % 2:
        raise ValueError(f"normalization {text!r} has {len(numbers)} numbers; expected an even count: k means "
                         "then k stds (k = 1 or the number of input channels)")
    k = len(numbers) // 2
    return None, tuple(numbers[:k]), tuple(numbers[k:])


def parse_normalization(spec: NormalizeSpec) -> dict[str, Any]:
    """Validate a normalization setting and return it as plain data.

    Args:
        spec: a dataset name of :data:`DATASET_STATS` (case-insensitive); a string of 2k comma-
            separated numbers, the k per-channel means then the k stds; ``(mean, std)`` with each a
            number or a list; or the dict this function returns.

    Returns:
        ``{"name": <dataset name or None>, "mean": [floats], "std": [floats]}``: what results and
        checkpoints record.

    Raises:
        ValueError: an unknown name, an odd count of numbers, lengths that differ, a std <= 0, a
            non-finite value.
        TypeError: anything else.
    """
    name: str | None = None
    if isinstance(spec, str):
        name, mean, std = _parse_string(spec)
    elif isinstance(spec, Mapping):
        unknown = sorted(set(map(str, spec)) - {"name", "mean", "std"})
        if unknown or "mean" not in spec or "std" not in spec:
            raise ValueError(f"normalization dict needs 'mean' and 'std' (and optionally 'name'), got keys "
                             f"{sorted(map(str, spec))}")
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"normalization name must be a str or None, got {name!r}")
        mean, std = _floats(spec["mean"], "mean"), _floats(spec["std"], "std")
    elif isinstance(spec, tuple | list) and len(spec) == 2:
        mean, std = _floats(spec[0], "mean"), _floats(spec[1], "std")
    else:
        raise TypeError(f"normalization must be {_FORMS}; got {spec!r}")
    if len(mean) != len(std):
        raise ValueError(f"normalization has {len(mean)} means but {len(std)} stds; give one of each per "
                         "channel (or one of each for all channels)")
    if not all(s > 0 for s in std):
        raise ValueError(f"normalization std must be > 0 everywhere, got {list(std)}")
    return {"name": name, "mean": list(mean), "std": list(std)}


def normalization_record(spec: NormalizeSpec | None) -> dict[str, Any] | None:
    """:func:`parse_normalization` of ``spec``, or None when no normalization is asked for."""
    return None if spec is None else parse_normalization(spec)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel of an (N, C, ...) batch.

    Args:
        mean: one value per channel, or one value for every channel.
        std: same length as ``mean``, all > 0.
        name: the dataset the statistics come from (recorded only).

    Raises:
        ValueError / TypeError: see :func:`parse_normalization`.
    """

    mean: torch.Tensor  # (C,) non-persistent buffers
    std: torch.Tensor

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float, *,
                 name: str | None = None) -> None:
        super().__init__()
        record = parse_normalization({"name": name, "mean": mean, "std": std})
        self.name: str | None = record["name"]
        self._record = record  # the exact values given (the float32 buffers round them)
        # (1, C, 1) + trailing ones are added in forward; non-persistent: the state_dict stays the network's
        self.register_buffer("mean", torch.tensor(record["mean"]), persistent=False)
        self.register_buffer("std", torch.tensor(record["std"]), persistent=False)

    @property
    def channels(self) -> int:
        """Values per statistic (1: the same for every channel)."""
        return int(self.mean.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or (self.channels != 1 and x.shape[1] != self.channels):
            raise ValueError(f"Normalize has {self.channels} per-channel values but got input of shape "
                             f"{tuple(x.shape)} (channels on dim 1). Hint: give one mean/std per input channel")
        shape = (1, -1) + (1,) * (x.dim() - 2)  # (1, C, 1, 1) for images
        mean = self.mean.to(x.dtype).reshape(shape)
        std = self.std.to(x.dtype).reshape(shape)
        return (x - mean) / std

    def to_dict(self) -> dict[str, Any]:
        """The setting as plain data: ``{"name", "mean", "std"}``."""
        return {"name": self.name, "mean": list(self._record["mean"]), "std": list(self._record["std"])}

    def extra_repr(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return f"{label}mean={self._record['mean']}, std={self._record['std']}"


class NormalizedModel(nn.Module):
    """``model(normalize(x))``: a network trained on normalized inputs, fed images in [0, 1].

    Submodule names and state_dict keys of the network gain the prefix ``model.``.

    Args:
        model: the network.
        normalize: the :class:`Normalize` layer applied first.
    """

    def __init__(self, model: nn.Module, normalize: Normalize) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"NormalizedModel wraps a torch.nn.Module, got {type(model).__name__}")
        self.normalize = normalize
        self.model = model

    @property
    def normalization(self) -> dict[str, Any]:
        """The setting as plain data (:meth:`Normalize.to_dict`)."""
        return self.normalize.to_dict()

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        return self.model(self.normalize(x), *args, **kwargs)


def with_normalization(model: nn.Module, spec: NormalizeSpec) -> NormalizedModel:
    """Prepend a :class:`Normalize` layer to ``model``.

    Args:
        model: the network (its train/eval mode is kept; the wrapper takes the same mode).
        spec: see :func:`parse_normalization`.

    Returns:
        The wrapped model on the device of ``model``'s first parameter or buffer; submodule names
        gain the prefix ``model.``.
    """
    record = parse_normalization(spec)
    layer = Normalize(record["mean"], record["std"], name=record["name"])
    tensors = [*model.parameters(), *model.buffers()]
    if tensors:
        layer = layer.to(tensors[0].device)
    wrapped = NormalizedModel(model, layer)
    # set the flags directly: train() would recurse and reset the network's own per-module flags
    wrapped.training = layer.training = model.training
    return wrapped

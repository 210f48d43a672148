"""Model zoo: ``build_model(name, num_classes=..., **overrides)`` over a plain registry.

RobNets use the official genotypes and macros (SPEC §1); baselines are the CIFAR variants used
in the paper's Table 1. Every entry accepts ``denoise=...`` to insert feature-denoising blocks
(Xie et al. 2019) after chosen cells (RobNets) or stages (baselines).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from torch import nn

from . import baselines
from .genotype import ROBNET_FREE, ROBNET_LARGE
from .network import RobNet

_ROBNET_MACROS: dict[str, dict[str, Any]] = {
    "robnet_large": {"genotype": ROBNET_LARGE, "C": 36, "layers": 20},
    "robnet_large_v2": {"genotype": ROBNET_LARGE, "C": 64, "layers": 33},
    "robnet_free": {"genotype": ROBNET_FREE, "C": 36, "layers": 20},
    "robnet_large_imagenet": {"genotype": ROBNET_LARGE, "C": 48, "layers": 20, "imagenet_stem": True},
}
_DEFAULT_CLASSES = {"robnet_large_imagenet": 1000}

_BASELINES: dict[str, Callable[..., nn.Module]] = {
    "resnet18": baselines.resnet18,
    "resnet50": baselines.resnet50,
    "wrn28_10": baselines.wrn28_10,
    "densenet121": baselines.densenet121,
}

_UNPUBLISHED = {
    "robnet_small": "4.41M params",
    "robnet_medium": "5.66M params",
}


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return [*_ROBNET_MACROS, *_BASELINES]


def model_macro(name: str) -> dict[str, Any]:
    """The macro settings of a RobNet zoo entry (genotype, C, layers, ...)."""
    if name not in _ROBNET_MACROS:
        raise ValueError(f"{name!r} is not a RobNet zoo entry; RobNets: {', '.join(_ROBNET_MACROS)}")
    return dict(_ROBNET_MACROS[name])


def build_model(name: str, *, num_classes: int | None = None, **overrides: Any) -> nn.Module:
    """Build a zoo model by name.

    Args:
        name: one of :func:`list_models`.
        num_classes: classifier outputs (10 by default; 1000 for ``robnet_large_imagenet``).
        **overrides: macro overrides (RobNets: ``C``, ``layers``, ``genotype``, ``in_channels``,
            ``denoise``; baselines: ``in_channels``, ``denoise``).
    """
    if name in _UNPUBLISHED:
        raise ValueError(
            f"{name} ({_UNPUBLISHED[name]} in the paper) was never published: its genotype is unknown and "
            "is not invented here. Hint: run the budgeted search (`robnet search --budget 7` gives the "
            "RobNet-small family: 7 sep-convs per cell at C=36, L=20)."
        )
    classes = num_classes if num_classes is not None else _DEFAULT_CLASSES.get(name, 10)
    if name in _ROBNET_MACROS:
        kwargs = {**_ROBNET_MACROS[name], **overrides}
        genotype = kwargs.pop("genotype")
        return RobNet(genotype, num_classes=classes, **kwargs)
    if name in _BASELINES:
        return _BASELINES[name](num_classes=classes, **overrides)
    close = difflib.get_close_matches(name, [*list_models(), *_UNPUBLISHED], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}")

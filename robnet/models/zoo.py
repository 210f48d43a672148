"""Model zoo: ``build_model(name, num_classes=..., **overrides)`` over a plain registry.

RobNets use the official genotypes and macros (docs/design.md §1); baselines are the CIFAR variants used
in the paper's Table 1. Every entry accepts ``denoise=...`` to insert feature-denoising blocks
(Xie et al. 2019) after chosen cells (RobNets) or stages (baselines). :func:`register` adds a
model (tests, users' own architectures) without touching the module's dicts.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from robnet.models import baselines
from robnet.models.genotype import ROBNET_FREE, ROBNET_LARGE
from robnet.models.network import RobNet

__all__ = ["build_model", "default_num_classes", "list_models", "override_keys", "register", "robnet_macro",
           "unregister"]

Builder = Callable[..., nn.Module]

_ROBNET_MACROS: dict[str, dict[str, Any]] = {
    "robnet_large": {"genotype": ROBNET_LARGE, "C": 36, "layers": 20},
    "robnet_large_v2": {"genotype": ROBNET_LARGE, "C": 64, "layers": 33},
    "robnet_free": {"genotype": ROBNET_FREE, "C": 36, "layers": 20},
    "robnet_large_imagenet": {"genotype": ROBNET_LARGE, "C": 48, "layers": 20, "imagenet_stem": True},
}
# What a RobNet zoo entry lets a caller override (RobNet's arguments minus num_classes).
_ROBNET_OVERRIDES = frozenset({"genotype", "C", "layers", "in_channels", "imagenet_stem", "denoise"})

def _supernet(*, num_classes: int = 10, C: int = 36, layers: int = 20, in_channels: int = 3,
              cell_free: bool = False, imagenet_stem: bool = False) -> nn.Module:
    """The one-shot search's weight-sharing supernet (:mod:`robnet.models.supernet`), so that its
    checkpoints record it as data like any zoo model."""
    from robnet.models.supernet import build_supernet

    return build_supernet(C=C, layers=layers, num_classes=num_classes, in_channels=in_channels,
                          cell_free=cell_free, imagenet_stem=imagenet_stem)


_BUILDERS: dict[str, Builder] = {
    "supernet": _supernet,
    "resnet18": baselines.resnet18,
    "resnet50": baselines.resnet50,
    "wrn28_10": baselines.wrn28_10,
    "densenet121": baselines.densenet121,
}
_NUM_CLASSES: dict[str, int] = {"robnet_large_imagenet": 1000}

# Names from the paper with no published genotype -> (parameters in the paper, search preset, budget).
_UNPUBLISHED = {
    "robnet_small": ("4.41M params", "small", 7),
    "robnet_medium": ("5.66M params", "medium", 10),
}


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`: the RobNets, the baselines, then registered models."""
    return [*_ROBNET_MACROS, *_BUILDERS]


def _check_name(name: str) -> None:
    if name in _UNPUBLISHED:
        params, preset, budget = _UNPUBLISHED[name]
        raise ValueError(
            f"{name} ({params} in the paper) was never published: its genotype is unknown and is not "
            f"invented here. Hint: sample that family with `robnet search sample --preset {preset}` "
            f"(or `--budget {budget}`: {budget} sep-convs per cell at C=36, L=20)."
        )
    if name not in _ROBNET_MACROS and name not in _BUILDERS:
        close = difflib.get_close_matches(str(name), [*list_models(), *_UNPUBLISHED], n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}")


def default_num_classes(name: str) -> int:
    """The classifier outputs :func:`build_model` gives ``name`` when none are asked for (10, or
    the registered value, e.g. 1000 for ``robnet_large_imagenet``)."""
    _check_name(name)
    return _NUM_CLASSES.get(name, 10)


def robnet_macro(name: str) -> dict[str, Any] | None:
    """The macro of a RobNet zoo entry as plain data (``genotype`` as its string, ``C``, ``layers``
    and ``imagenet_stem`` when set), or None for any other model."""
    _check_name(name)
    macro = _ROBNET_MACROS.get(name)
    if macro is None:
        return None
    return {k: str(v) if k == "genotype" else v for k, v in macro.items()}


def override_keys(name: str) -> frozenset[str] | None:
    """The keyword overrides :func:`build_model` accepts for ``name`` besides ``num_classes``, or
    None when its builder takes arbitrary keywords (``**kwargs``)."""
    _check_name(name)
    if name in _ROBNET_MACROS:
        return _ROBNET_OVERRIDES
    params = inspect.signature(_BUILDERS[name]).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY,
                                                          inspect.Parameter.POSITIONAL_OR_KEYWORD)
                     and p.name != "num_classes")


def register(name: str, builder: Builder, *, num_classes: int = 10, replace: bool = False) -> None:
    """Add a model to the zoo: ``build_model(name, **overrides)`` then calls
    ``builder(num_classes=..., **overrides)``, and checkpoints may record it as ``arch=name``.

    Args:
        name: the zoo name (an identifier-like string, e.g. ``"tiny_cnn"``).
        builder: a callable taking ``num_classes`` (and any overrides) as keywords and returning
            the model.
        num_classes: classifier outputs when the caller gives none.
        replace: allow replacing an existing entry (never one of the built-in RobNets).

    Raises:
        ValueError: ``name`` is taken (and ``replace`` is False), a built-in RobNet, or a paper
            name reserved for an unpublished model.
        TypeError: ``builder`` is not callable or ``num_classes`` not a positive int.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"zoo.register: name must be an identifier-like string, got {name!r}")
    if not callable(builder):
        raise TypeError(f"zoo.register: builder must be callable, got {type(builder).__name__}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise TypeError(f"zoo.register: num_classes must be a positive int, got {num_classes!r}")
    if name in _ROBNET_MACROS or name in _UNPUBLISHED:
        raise ValueError(f"zoo.register: {name!r} is a built-in RobNets name and cannot be registered or "
                         "replaced. Hint: pick another name")
    if name in _BUILDERS and not replace:
        raise ValueError(f"zoo.register: {name!r} is already in the zoo. Hint: pass replace=True to replace "
                         "it, or pick another name")
    _BUILDERS[name] = builder
    if num_classes == 10:
        _NUM_CLASSES.pop(name, None)
    else:
        _NUM_CLASSES[name] = num_classes


def unregister(name: str) -> None:
    """Remove a model added with :func:`register` (the built-in RobNets cannot be removed).

    Raises:
        ValueError: ``name`` is a built-in RobNet or not in the zoo.
    """
    if name in _ROBNET_MACROS:
        raise ValueError(f"zoo.unregister: {name!r} is a built-in RobNet and cannot be removed")
    if name not in _BUILDERS:
        raise ValueError(f"zoo.unregister: {name!r} is not in the zoo; registered: {', '.join(_BUILDERS)}")
    del _BUILDERS[name]
    _NUM_CLASSES.pop(name, None)


def build_model(name: str, *, num_classes: int | None = None, **overrides: Any) -> nn.Module:
    """Build a zoo model by name.

    Args:
        name: one of :func:`list_models`.
        num_classes: classifier outputs (default :func:`default_num_classes`: 10, 1000 for
            ``robnet_large_imagenet``).
        **overrides: macro overrides (RobNets: ``C``, ``layers``, ``genotype``, ``in_channels``,
            ``imagenet_stem``, ``denoise``; baselines: ``in_channels``, ``denoise``).
    """
    _check_name(name)
    classes = num_classes if num_classes is not None else _NUM_CLASSES.get(name, 10)
    if name in _ROBNET_MACROS:
        kwargs = {**_ROBNET_MACROS[name], **overrides}
        genotype = kwargs.pop("genotype")
        return RobNet(genotype, num_classes=classes, **kwargs)
    return _BUILDERS[name](num_classes=classes, **overrides)

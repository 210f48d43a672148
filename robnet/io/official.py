"""Official RobNets checkpoints (and any other state_dict file), read without running pickled code.

The official release saves ``torch.save({'state_dict': ..., 'optimizer': ..., 'epoch': ...,
'best_acc': ..., <a pickled lr-scheduler>})``, keys possibly prefixed ``module.``, and records no
architecture, so :func:`load_official` needs its name. Wrapper prefixes (``module.`` from
DataParallel / DDP, ``_orig_mod.`` from ``torch.compile``, in any nesting) are stripped from the
keys. These files are read with ``weights_only=True`` when possible; otherwise with a restricted
unpickler (:mod:`robnet.io.unpickle`) that imports only the tensor-rebuilding functions
``weights_only`` allows and turns every other global into an inert placeholder, so no pickled code
runs (docs/design.md §1). Only the tensors of the state_dict and plain-data extras are kept.

:func:`load_any` and :func:`detect_format` take either this format or ours
(:mod:`robnet.io.checkpoint`), reading the file once. Every failure to read raises
:class:`~robnet.io.checkpoint.CheckpointError` with a one-line reason.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from robnet.io.checkpoint import (
    CheckpointError,
    MapLocation,
    PathLike,
    _build,
    _check_file,
    _code_error,
    _corrupt,
    _is_ours,
    _load_into,
    _model_from_raw,
    _move,
    _not_ours,
    _read_weights_only,
    _validate_ours,
)
from robnet.io.unpickle import TORCH_CHECKPOINT, Inert, RestrictedPickleModule
from robnet.models.arch import ArchLike, check_data, describe_arch, normalize_arch

__all__ = ["detect_format", "load_any", "load_official"]

logger = logging.getLogger(__name__)

# Pickled globals a training checkpoint normally carries (an optimizer or lr-scheduler object): dropped
# like any other, but reported at INFO; any other global is reported at WARNING, by name.
_EXPECTED_GLOBALS = ("torch.optim.",)
# Where an official state_dict may sit in the top-level dict, in order of preference.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
# Key prefixes that model wrappers add to a state_dict: DataParallel / DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


# ----------------------------------------------------------------------------- reading safely


@dataclass(frozen=True, kw_only=True)
class _Payload:
    """A file read by :func:`_read_safely`."""

    data: Any
    unpickler: Literal["weights_only", "restricted"]
    refused: tuple[str, ...] = ()  # what weights_only refused (restricted reads only)
    placeholders: tuple[str, ...] = ()  # globals replaced by inert placeholders


def _read_safely(path: Path, map_location: MapLocation) -> _Payload:
    """``weights_only=True`` when torch accepts the file, else the restricted unpickler."""
    read = _read_weights_only(path, map_location)
    if read.ok:
        return _Payload(data=read.payload, unpickler="weights_only")
    logger.info("checkpoint %s is not readable with weights_only (%s); using the restricted unpickler", path,
                ", ".join(read.refused) if read.refused else read.error)
    log: list[str] = []
    try:
        data = torch.load(path, map_location=map_location, weights_only=False,
                          pickle_module=RestrictedPickleModule, allowlist=TORCH_CHECKPOINT,
                          on_unknown="placeholder", placeholder_log=log)
    except Exception as e:
        raise (read.error or _corrupt(path, e)) from None
    expected = [g for g in log if g.startswith(_EXPECTED_GLOBALS)]
    foreign = [g for g in log if not g.startswith(_EXPECTED_GLOBALS)]
    if foreign:
        logger.warning("checkpoint %s pickles %s outside torch's tensor types: %s; not imported (inert "
                       "placeholders: nothing ran) and whatever they built is dropped", path,
                       "a global" if len(foreign) == 1 else "globals", ", ".join(foreign))
    if expected:
        logger.info("checkpoint %s: training state pickled with %s dropped (not imported)", path,
                    ", ".join(expected))
    return _Payload(data=data, unpickler="restricted", refused=read.refused, placeholders=tuple(log))


# ----------------------------------------------------------------------------- official checkpoints


def _describe_dropped(value: Any) -> str:
    if isinstance(value, Inert):
        return f"object built by {value.pickled_global} (a placeholder: nothing was executed)"
    if isinstance(value, type) and issubclass(value, Inert):
        return f"reference to {value.pickled_global} (a placeholder: not imported)"
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}"
    if isinstance(value, Mapping | list | tuple) and _holds_tensors(value):
        return f"{type(value).__name__} holding tensors (e.g. an optimizer state)"
    return f"{type(value).__name__} (not plain data)"


def _holds_tensors(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, Mapping):
        return any(_holds_tensors(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_tensors(v) for v in value)
    return False


def _plain_value(value: Any) -> tuple[bool, Any]:
    """(True, plain version) when ``value`` is plain data, a 0-d tensor or a numpy scalar."""
    if isinstance(value, torch.Tensor):
        return (True, value.item()) if value.dim() == 0 else (False, None)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()
    if isinstance(value, OrderedDict | Counter):
        value = dict(value)
    try:
        check_data(value, "value")
    except TypeError:
        return False, None
    return True, value


def _pickled_model_error(path: Path, pickled_global: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} holds a pickled {pickled_global} object, not a state_dict: a "
                           "whole pickled model cannot be loaded without running its code, and none was run. "
                           "Hint: if you trust the file, pass --unsafe-pickle (Python: load_model(..., "
                           "allow_pickle=True)), which runs the file's code; or, in a trusted environment, "
                           "re-save it with torch.save(model.state_dict(), ...)")


def _find_state_dict(payload: Any, path: Path) -> tuple[str | None, Mapping[Any, Any]]:
    if isinstance(payload, Inert):
        raise _pickled_model_error(path, payload.pickled_global)
    if not isinstance(payload, Mapping):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, expected a dict with a "
                              "'state_dict' or a bare state_dict")
    for key in _STATE_DICT_KEYS:
        inner = payload.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return key, inner
    if payload and any(isinstance(v, torch.Tensor) for v in payload.values()) and \
            all(isinstance(v, torch.Tensor) for v in payload.values()):
        return None, payload
    keys = ", ".join(repr(k) for k in list(payload)[:10])
    raise CheckpointError(f"cannot find a state_dict in checkpoint {path}: top-level keys are [{keys}]; "
                          f"expected one of {', '.join(_STATE_DICT_KEYS)} holding tensors, or a bare "
                          "state_dict")


def _strip_prefix(state_dict: Mapping[Any, Any], ignored: dict[str, str], *, path: Path,
                  keep: Collection[str] = ()) -> tuple[dict[str, torch.Tensor], list[str], str | None]:
    """The tensors of ``state_dict`` with leading wrapper prefixes removed (any nesting,
    e.g. ``module._orig_mod.``); prefixes in ``keep`` (names the target model itself uses) stay.

    Returns:
        ``(state_dict, stripped keys (new names), the removed prefix or None)``; several different
        removed prefixes are joined with " | ". Non-tensor entries go to ``ignored``.

    Raises:
        CheckpointError: two keys that are equal once stripped (``x`` and ``module.x``).
    """
    prefixes = tuple(p for p in _WRAPPER_PREFIXES if p not in keep)
    out: dict[str, torch.Tensor] = {}
    stripped: list[str] = []
    removed: set[str] = set()
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            ignored[f"state_dict.{key}"] = _describe_dropped(value)
            continue
        new = key
        while (head := next((p for p in prefixes if new.startswith(p)), None)) is not None:
            new = new[len(head):]
        if new != key:
            stripped.append(new)
            removed.add(key[: len(key) - len(new)])
        if new in out:
            raise CheckpointError(f"checkpoint {path} has the key {new!r} twice once the wrapper prefixes "
                                  f"({', '.join(prefixes)}) are removed: it mixes wrapped and unwrapped keys")
        out[new] = value.detach()  # detach drops any pickled backward hooks
    return out, stripped, " | ".join(sorted(removed)) if removed else None


def _official_parts(read: _Payload, path: Path, *,
                    keep_prefixes: Collection[str] = ()) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    payload = read.data
    if _is_ours(payload) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]  # one of ours, loaded with an explicit arch
    sd_key, raw_sd = _find_state_dict(payload, path)
    ignored: dict[str, str] = {}
    state_dict, stripped, prefix = _strip_prefix(raw_sd, ignored, path=path, keep=keep_prefixes)
    extras: dict[str, Any] = {}
    if sd_key is not None:
        for key, value in payload.items():
            if key == sd_key:
                continue
            ok, plain = _plain_value(value)
            if ok and isinstance(key, str):
                extras[key] = plain
            else:
                ignored[str(key)] = _describe_dropped(value)
    info: dict[str, Any] = {
        "format": "official",
        "unpickler": read.unpickler,
        "ignored": list(ignored),
        "ignored_detail": ignored,
        "placeholders": sorted(set(read.placeholders)),
        "stripped_prefix": prefix,
        "stripped_keys": stripped,
    }
    meta: dict[str, Any] = {}
    for key, value in extras.items():
        meta[f"checkpoint.{key}" if key in info or key == "arch" else key] = value
    meta.update(info)
    return state_dict, meta


def _infer_classes(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    for key in ("classifier.weight", "linear.weight", "fc.weight"):
        w = state_dict.get(key)
        if w is not None and w.dim() == 2:
            return int(w.shape[0])
    return None


def _official_model(state_dict: dict[str, torch.Tensor], meta: dict[str, Any], path: Path, arch: ArchLike,
                    num_classes: int | None, map_location: MapLocation,
                    strict: bool) -> tuple[nn.Module, dict[str, Any]]:
    norm = normalize_arch(arch)
    given = num_classes if num_classes is not None else (arch.get("num_classes") if isinstance(arch, Mapping)
                                                          else None)
    if given is None:
        given = _infer_classes(state_dict)
    if given is not None:
        norm = normalize_arch({**norm, "num_classes": given})
    model = _build(norm, path)
    _load_into(model, state_dict, strict=strict, path=path, label=describe_arch(norm))
    meta["arch"] = norm
    return _move(model, map_location).eval(), meta


def load_official(path: PathLike, arch: ArchLike, *, num_classes: int | None = None,
                  map_location: MapLocation = "cpu", strict: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Load an official RobNets checkpoint (or any state_dict file) without running pickled code.

    Accepts ``{'state_dict': ..., ...extras}`` (also ``model_state_dict`` / ``model`` / ``net``) or a
    bare state_dict, zip or legacy ``torch.save`` format; ``module.`` (DataParallel / DDP) and
    ``_orig_mod.`` (``torch.compile``) key prefixes are stripped. Read with ``weights_only=True``
    when torch allows it, else with the restricted unpickler (unknown globals such as a pickled
    lr-scheduler become inert placeholders, see the module docstring).

    Args:
        path: the checkpoint file.
        arch: its architecture (zoo name or dict, see :func:`normalize_arch`): official files
            record none.
        num_classes: classifier outputs; default: ``arch['num_classes']`` when given, else read from
            the checkpoint's ``classifier.weight`` (``linear`` / ``fc`` for baselines).
        map_location: device for the tensors and the returned model.
        strict: require exactly the model's keys (shape mismatches always raise).

    Returns:
        ``(model, meta)``: the model in eval mode; ``meta`` holds the plain-data extras of the
        file (``epoch``, ``best_acc``, ...; 0-d tensors and numpy scalars become Python numbers;
        an extra whose name clashes with the keys below is renamed ``checkpoint.<name>``) and
        ``format`` ("official"), ``arch`` (normalized), ``unpickler`` ("weights_only" or
        "restricted"), ``ignored`` (names of the dropped top-level entries), ``ignored_detail``
        (name -> what it was), ``placeholders`` (globals replaced by placeholders),
        ``stripped_prefix`` (the removed prefix, e.g. "module.", or None) and ``stripped_keys``
        (keys that had one, without it).

    Raises:
        CheckpointError: missing / truncated / corrupt file, no state_dict found, a whole pickled
            model, or weights that do not fit ``arch``.
    """
    p = _check_file(path)
    state_dict, meta = _official_parts(_read_safely(p, map_location), p)
    return _official_model(state_dict, meta, p, arch, num_classes, map_location, strict)


# ----------------------------------------------------------------------------- either format


def detect_format(path: PathLike) -> Literal["robnet", "official"]:
    """``"robnet"`` for a file written by :func:`save`, else ``"official"`` (any other file that
    reads as a checkpoint; whether it holds a usable state_dict is checked on loading).

    Raises:
        CheckpointError: missing, truncated or corrupt file.
    """
    p = _check_file(path)
    read = _read_safely(p, "cpu")
    return "robnet" if read.unpickler == "weights_only" and _is_ours(read.data) else "official"


def load_any(path: PathLike, *, arch: ArchLike | None = None, num_classes: int | None = None,
             map_location: MapLocation = "cpu", strict: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Load either format, reading the file once: ours when recognised (``arch`` and
    ``num_classes`` are then ignored, with a warning when they disagree), else an official
    checkpoint, which needs ``arch``.

    Returns:
        ``(model, meta)`` in eval mode, as :func:`load` or :func:`load_official` return them.

    Raises:
        CheckpointError: as :func:`load` / :func:`load_official`; a file that is not ours and no
            ``arch``; a file that claims our format but asks to run code.
    """
    p = _check_file(path)
    read = _read_safely(p, map_location)
    if _is_ours(read.data):
        if read.unpickler != "weights_only":
            raise _code_error(p, read.refused)
        raw = _validate_ours(read.data, p)
        if arch is not None and normalize_arch(arch) != raw["arch"]:
            logger.warning("ignoring arch %s: checkpoint %s records %s", describe_arch(arch), p,
                           describe_arch(raw["arch"]))
        return _model_from_raw(raw, p, map_location=map_location, strict=strict), dict(raw["meta"])
    if arch is None:
        raise _not_ours(p)
    state_dict, meta = _official_parts(read, p)
    return _official_model(state_dict, meta, p, arch, num_classes, map_location, strict)

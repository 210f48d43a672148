"""Load any model file without running its code: one entry point, :func:`load_model`.

==========================  ===============================================  ===========================
the file holds              read with                                        architecture from
==========================  ===============================================  ===========================
our checkpoint (``save``)   ``torch.load(weights_only=True)``                the file (``arch`` ignored)
a state_dict (.pt / .pth,   ``weights_only=True``, else the restricted        ``arch``: a zoo name or
bare or under               unpickler (unknown globals become inert           ``MODULE:CALLABLE`` with
``state_dict`` etc.; the    placeholders: nothing pickled runs)               ``arch_kwargs``
official RobNets files)
a ``.safetensors`` file     ``safetensors`` (a header and raw tensors: no     ``arch``
                            pickle at all)
a whole pickled ``Module``  refused, unless ``allow_pickle=True``             the pickle itself
                            (``--unsafe-pickle``), which runs its code
==========================  ===============================================  ===========================

Keys are matched strictly: a wrong architecture raises one line listing the missing and unexpected
keys (:meth:`robnet.models.arch.StateDictReport.summary`). The wrapper prefixes ``module.``
(DataParallel / DDP) and ``_orig_mod.`` (``torch.compile``) are stripped, except one the
architecture itself uses as a top-level name. ``normalize`` prepends a
:class:`robnet.models.normalize.Normalize` layer for models trained on normalized inputs
(submodule names then start with ``model.``), so data and attacks stay in [0, 1]
(docs/design.md §1).

The returned ``info`` is plain data for result files::

    {"path": "m.pt", "format": "state_dict", "arch": {"factory": "my_models:make_net", "kwargs": {...}},
     "normalize": {"name": "cifar10", "mean": [...], "std": [...]} or None, "unpickler": "weights_only",
     "stripped_prefix": "module." or None, "ignored": [...], "placeholders": [...], "meta": {...}}
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robnet.io.checkpoint import (
    CheckpointError,
    MapLocation,
    PathLike,
    _check_file,
    _code_error,
    _is_ours,
    _load_into,
    _model_from_raw,
    _move,
    _one_line,
    _reason,
    _validate_ours,
)
from robnet.io.external import ArchSpec, _cwd_on_path, resolve_arch
from robnet.io.official import (
    _STATE_DICT_KEYS,
    _WRAPPER_PREFIXES,
    _official_model,
    _official_parts,
    _Payload,
    _pickled_model_error,
    _plain_value,
    _read_safely,
    _strip_prefix,
)
from robnet.io.unpickle import Inert
from robnet.models.arch import ArchLike, describe_arch
from robnet.models.normalize import NormalizeSpec, normalization_record, with_normalization
from robnet.utils import unwrap_model

__all__ = ["FORMATS", "load_model"]

logger = logging.getLogger(__name__)

#: Values of ``info["format"]``.
FORMATS = ("robnet", "state_dict", "safetensors", "pickle")

_FACTORY_HINT = " Hint: check --arch and --arch-kwargs against the model the file was saved from"
# Entries of the loaders' meta that describe the loading rather than the file's own extras.
_LOADING_KEYS = frozenset({"format", "unpickler", "ignored", "ignored_detail", "placeholders", "stripped_prefix",
                           "stripped_keys", "arch"})

Parts = Callable[[Collection[str]], tuple[dict[str, torch.Tensor], dict[str, Any]]]


def _is_safetensors(path: Path) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
        size = path.stat().st_size
    except OSError:
        return False
    return len(head) == 9 and 2 <= int.from_bytes(head[:8], "little") <= size - 8 and head[8:9] == b"{"


def _no_arch(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path} holds {what} but no architecture: pass --arch NAME (a zoo name) or --arch "
                           "MODULE:CALLABLE with --arch-kwargs JSON (your own model); Python: load_model(path, "
                           "arch=..., arch_kwargs=...)")


def _info(meta: dict[str, Any], fmt: str) -> dict[str, Any]:
    """Split a loader's meta into what ``info`` records about the loading and the file's extras."""
    return {"format": fmt, "arch": meta.get("arch"), "unpickler": meta.get("unpickler"),
            "stripped_prefix": meta.get("stripped_prefix"), "ignored": list(meta.get("ignored", [])),
            "placeholders": list(meta.get("placeholders", [])),
            "meta": {k: v for k, v in meta.items() if k not in _LOADING_KEYS}}


def _own_prefixes(model: nn.Module) -> set[str]:
    """Wrapper prefixes the model itself uses as top-level names (a child called ``module``)."""
    return {p for p in _WRAPPER_PREFIXES if any(k.startswith(p) for k in model.state_dict())}


def _weights_into(path: Path, spec: ArchSpec, parts: Parts, *, map_location: MapLocation,
                  strict: bool) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``spec``'s model and load the state_dict ``parts(keep_prefixes)`` returns into it."""
    if spec.kind == "zoo":
        state_dict, meta = parts(())
        # the request, not the filled-in record: num_classes comes from the file unless given
        return _official_model(state_dict, meta, path, spec.request, None, map_location, strict)
    model = spec.build()
    state_dict, meta = parts(_own_prefixes(model))
    _load_into(model, state_dict, strict=strict, path=path, label=spec.target, hint=_FACTORY_HINT)
    meta["arch"] = spec.record
    return _move(model, map_location).eval(), meta


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            return {key: f.get_tensor(key) for key in f.keys()}, metadata  # noqa: SIM118 - not a dict
    except Exception as e:  # SafetensorError (damaged header or data), OSError
        raise CheckpointError(f"cannot read safetensors file {path}: file is truncated or corrupt "
                              f"({type(e).__name__}: {_one_line(str(e))})") from None


def _load_safetensors(path: Path, spec: ArchSpec | None, *, map_location: MapLocation,
                      strict: bool) -> tuple[nn.Module, dict[str, Any]]:
    if spec is None:
        raise _no_arch(path, "safetensors weights")
    tensors, metadata = _read_safetensors(path)

    def parts(keep: Collection[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        ignored: dict[str, str] = {}
        state_dict, _, prefix = _strip_prefix(tensors, ignored, path=path, keep=keep)
        # the header's own metadata (often {"format": "pt"}) is the file's: renamed where it clashes
        extras = {f"checkpoint.{k}" if k in _LOADING_KEYS else k: v for k, v in metadata.items()}
        return state_dict, {"unpickler": None, "stripped_prefix": prefix, **extras}

    model, meta = _weights_into(path, spec, parts, map_location=map_location, strict=strict)
    return model, _info(meta, "safetensors")


def _load_ours(path: Path, read: _Payload, spec: ArchSpec | None, *, map_location: MapLocation,
               strict: bool) -> tuple[nn.Module, dict[str, Any]]:
    if read.unpickler != "weights_only":
        raise _code_error(path, read.refused)
    raw = _validate_ours(read.data, path)
    if spec is not None and (spec.kind == "factory" or spec.record != raw["arch"]):
        logger.warning("ignoring arch %s: checkpoint %s records %s", spec.target, path, describe_arch(raw["arch"]))
    model = _model_from_raw(raw, path, map_location=map_location, strict=strict)
    return model, {"format": "robnet", "arch": raw["arch"], "unpickler": "weights_only", "stripped_prefix": None,
                   "ignored": [], "placeholders": [], "meta": dict(raw["meta"])}


def _pickled_global(payload: Any) -> str | None:
    """The pickled class standing where the model should be (the whole payload, or its ``model``
    / ``net`` / ... entry when no state_dict sits beside it), or None."""
    if isinstance(payload, Inert):
        return payload.pickled_global
    if isinstance(payload, Mapping) and not any(isinstance(payload.get(k), Mapping) for k in _STATE_DICT_KEYS):
        inner = next((payload[k] for k in _STATE_DICT_KEYS if isinstance(payload.get(k), Inert)), None)
        return inner.pickled_global if inner is not None else None
    return None


def _load_pickle(path: Path, spec: ArchSpec | None, *, map_location: MapLocation) -> tuple[nn.Module,
                                                                                           dict[str, Any]]:
    """``torch.load(weights_only=False)``: runs the file's code; only with the caller's opt-in."""
    logger.warning("%s: unpickling a whole model with allow_pickle=True (--unsafe-pickle): this runs code "
                   "from the file", path)
    with _cwd_on_path():
        try:
            obj = torch.load(path, map_location=map_location, weights_only=False)
        except Exception as e:
            raise CheckpointError(f"cannot unpickle {path} (allow_pickle): {_reason(e)}. Hint: the classes it "
                                  "pickles must be importable: run from the folder that holds their module") from e
    key = next((k for k in _STATE_DICT_KEYS if isinstance(obj, Mapping) and isinstance(obj.get(k), nn.Module)),
               None)
    model = obj[key] if key is not None else obj
    if not isinstance(model, nn.Module):
        kind = (f"a {type(obj).__name__} without a torch.nn.Module under {', '.join(map(repr, _STATE_DICT_KEYS))}"
                if isinstance(obj, Mapping) else f"a {type(obj).__name__}")
        raise CheckpointError(f"{path} unpickled to {kind}, not a torch.nn.Module")
    model = unwrap_model(model)
    if spec is not None:
        logger.warning("ignoring arch %s: %s holds a whole pickled model", spec.target, path)
    extras = {str(k): _plain_value(v)[1] for k, v in obj.items() if k != key and _plain_value(v)[0]} \
        if key is not None else {}
    cls = type(model)
    return _move(model, map_location).eval(), {
        "format": "pickle", "arch": {"pickled_class": f"{cls.__module__}.{cls.__qualname__}"}, "unpickler": "pickle",
        "stripped_prefix": None, "ignored": [], "placeholders": [], "meta": extras}


def _spec(arch: ArchLike | ArchSpec | None, arch_kwargs: Mapping[str, Any] | None) -> ArchSpec | None:
    if isinstance(arch, ArchSpec):
        if arch_kwargs:
            raise ValueError("arch_kwargs given with an already resolved ArchSpec: put them in resolve_arch")
        return arch
    if arch is None:
        if arch_kwargs:
            raise ValueError(f"--arch-kwargs {dict(arch_kwargs)} given without --arch. Hint: name the architecture "
                             "they are for")
        return None
    return resolve_arch(arch, arch_kwargs)


def load_model(path: PathLike, *, arch: ArchLike | ArchSpec | None = None, arch_kwargs: Mapping[str, Any] | None = None,
               normalize: NormalizeSpec | None = None, allow_pickle: bool = False, map_location: MapLocation = "cpu",
               strict: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Load a model from any supported file (see the module docstring) without running its code.

    Args:
        path: the file (CLI: the checkpoint argument).
        arch: the architecture for files that record none (CLI ``--arch``): a zoo name, an arch
            dict, ``MODULE:CALLABLE`` (:func:`robnet.io.external.resolve_arch`) or a resolved
            :class:`~robnet.io.external.ArchSpec`. Ignored, with a warning, for our checkpoints
            and whole pickled models.
        arch_kwargs: keyword arguments for ``arch`` (CLI ``--arch-kwargs`` parsed by
            :func:`robnet.io.external.parse_arch_kwargs`): zoo overrides or the factory's.
            Without ``num_classes``, a zoo model takes the checkpoint's classifier size.
        normalize: prepend ``Normalize`` (CLI ``--normalize``): a dataset name (``cifar10``,
            ``cifar100``, ``svhn``, ``imagenet``), ``"MEAN,STD"`` numbers or ``(mean, std)``; see
            :func:`robnet.models.normalize.parse_normalization`.
        allow_pickle: unpickle a whole pickled model (CLI ``--unsafe-pickle``): **this runs code
            from the file**; only for files you trust. Files that need no code never use it.
        map_location: device of the returned model.
        strict: require exactly the model's keys (shape mismatches always raise).

    Returns:
        ``(model, info)``: the model in eval mode and ``info``, plain data (module docstring).

    Raises:
        CheckpointError: missing / damaged file, a pickle that needs code without
            ``allow_pickle`` (naming ``--unsafe-pickle``; nothing of it ran), no ``arch`` for a
            file that records none, weights that do not fit (one line naming the missing and
            unexpected keys).
        ValueError / TypeError: a bad ``arch``, ``arch_kwargs`` or ``normalize``
            (:func:`~robnet.io.external.resolve_arch`, :func:`~robnet.models.normalize.parse_normalization`).
    """
    p = _check_file(path)
    norm = normalization_record(normalize)  # bad settings fail before the file is read
    spec = _spec(arch, arch_kwargs)
    if _is_safetensors(p) or p.suffix == ".safetensors":
        model, info = _load_safetensors(p, spec, map_location=map_location, strict=strict)
    else:
        read = _read_safely(p, map_location)  # weights_only or the restricted unpickler: nothing runs
        pickled = _pickled_global(read.data)
        if pickled is not None:
            if not allow_pickle:
                raise _pickled_model_error(p, pickled)
            model, info = _load_pickle(p, spec, map_location=map_location)
        elif _is_ours(read.data):
            model, info = _load_ours(p, read, spec, map_location=map_location, strict=strict)
        elif spec is None:
            _official_parts(read, p)  # a file without any state_dict says so first
            raise _no_arch(p, "a state_dict")
        else:
            def parts(keep: Collection[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
                return _official_parts(read, p, keep_prefixes=keep)

            model, meta = _weights_into(p, spec, parts, map_location=map_location, strict=strict)
            info = _info(meta, "state_dict")
    if norm is not None:
        model = with_normalization(model, norm).eval()
    return model, {"path": str(p), **info, "normalize": norm}

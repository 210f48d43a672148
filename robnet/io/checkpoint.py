"""Checkpoints: plain data + a state_dict, read back without running pickled code.

Our format (``save`` / ``load``) is one ``torch.save`` of a dict holding only plain data and
tensors::

    {"format": "robnet-checkpoint", "version": 1,
     "arch": {"name": "robnet_large", "num_classes": 10, ...overrides}   # or a genotype + macro
     "state_dict": {...}, "meta": {...plain data...}, "extra": {...tensors + plain data...},
     "created_with": {"robnet": "0.1.0", "torch": "2.x"}}

so it is always read with ``torch.load(weights_only=True)``; the architecture is described as data
and rebuilt with :func:`robnet.models.zoo.build_model` / :func:`robnet.models.network.build_robnet`. Files are
written atomically (a temporary file in the same directory, fsync, ``os.replace``): a crash
mid-save leaves the previous checkpoint intact.

Official RobNets checkpoints (``torch.save({'state_dict': ..., 'optimizer': ..., 'epoch': ...,
'best_acc': ..., <a pickled lr-scheduler>})``, keys possibly prefixed ``module.``) record no
architecture, so :func:`load_official` needs its name. Wrapper prefixes (``module.`` from
DataParallel / DDP, ``_orig_mod.`` from ``torch.compile``, in any nesting) are stripped from the
keys. These files are read with ``weights_only=True`` when possible; otherwise with a restricted
unpickler that imports only the tensor-rebuilding functions ``weights_only`` allows and turns every
other global into an inert placeholder, so no pickled code runs (docs/design.md §1). Only the
tensors of the state_dict and plain-data extras are kept.

Every failure to read raises :class:`CheckpointError` (a ``ValueError``) with a one-line reason.
Plain state_dicts, safetensors files, users' own architectures and (opted-in) whole pickled models
are loaded by :func:`robnet.io.models.load_model`, which builds on the readers here.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections import Counter, OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from robnet.io.files import atomic_write
from robnet.io.unpickle import TORCH_CHECKPOINT, Inert, RestrictedPickleModule
from robnet.models.arch import (
    ArchLike,
    arch_from_model,
    build_from_arch,
    check_data,
    compare_state_dict,
    describe_arch,
    normalize_arch,
)
from robnet.utils import unwrap_model

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "detect_format",
    "load",
    "load_any",
    "load_official",
    "load_raw",
    "save",
]

logger = logging.getLogger(__name__)

FORMAT = "robnet-checkpoint"
VERSION = 1

PathLike = str | os.PathLike[str]
MapLocation = str | torch.device

# Pickled globals a training checkpoint normally carries (an optimizer or lr-scheduler object): dropped
# like any other, but reported at INFO; any other global is reported at WARNING, by name.
_EXPECTED_GLOBALS = ("torch.optim.",)
# Where an official state_dict may sit in the top-level dict, in order of preference.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
# Key prefixes that model wrappers add to a state_dict: DataParallel / DDP and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not fit the requested architecture."""


# ----------------------------------------------------------------------------- weights into a model


def _load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool, path: PathLike,
               label: str, hint: str | None = None) -> None:
    """Load ``state_dict`` into ``model`` or raise one CheckpointError line listing the missing,
    unexpected and mismatched keys; ``label`` names the architecture, ``hint`` replaces the
    report's generic hint (a class-count hint still wins when it applies)."""
    report = compare_state_dict(state_dict, model)
    if report.mismatched or (strict and not report.ok):
        tail = report.hint() if hint is None else report.hint(default=hint)
        raise CheckpointError(f"checkpoint {path} does not match architecture {label}: {report.summary()}.{tail}")
    if not report.ok:
        logger.warning("checkpoint %s loaded with strict=False: %s", path, report.summary())
    try:
        model.load_state_dict(state_dict, strict=strict)
    except (RuntimeError, TypeError, ValueError, AttributeError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} does not load into architecture {label}: "
                              f"{type(e).__name__}: {_one_line(str(e))}") from None


def _build(arch: Mapping[str, Any], path: PathLike) -> nn.Module:
    """``build_from_arch`` for an arch read from (or completed by) a file: one CheckpointError line for
    anything the arch cannot build, including a size above :data:`robnet.models.arch.MAX_PARAMS` (refused by
    the parameter estimate before anything is allocated)."""
    try:
        return build_from_arch(arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: cannot build its architecture: {_one_line(str(e))}") from None


# ----------------------------------------------------------------------------- saving


def save(path: PathLike, model: nn.Module, *, arch: ArchLike | None = None,
         meta: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (temporary file in the same directory, fsync, ``os.replace``).

    Args:
        path: destination file; its parent directories are created.
        model: the model (DataParallel / DDP / torch.compile wrappers are unwrapped).
        arch: the architecture (see :func:`normalize_arch`); None describes a RobNet from its
            attributes (:func:`arch_from_model`). It is checked against ``model`` by building it
            on the meta device: same state_dict keys and shapes.
        meta: plain data (str, int, float, bool, None, lists, tuples, dicts with str keys), e.g.
            a config's ``asdict``, the epoch, metrics.
        extra: training-resume payloads: optimizer / scheduler ``state_dict()``s, RNG states
            (tensors and plain data only, so the file stays loadable with ``weights_only=True``).

    Returns:
        The path written.

    Raises:
        TypeError: ``meta`` / ``extra`` hold something else (the message names its key path).
        ValueError: ``arch`` does not describe ``model``.
    """
    from robnet import __version__

    model = unwrap_model(model)
    norm = normalize_arch(arch) if arch is not None else arch_from_model(model)
    meta_d = dict(meta) if meta is not None else {}
    check_data(meta_d, "meta")
    extra_d = dict(extra) if extra is not None else {}
    check_data(extra_d, "extra", tensors=True)
    state_dict = model.state_dict()
    with torch.device("meta"):
        skeleton = build_from_arch(norm)
    report = compare_state_dict(state_dict, skeleton)
    if not report.ok:
        raise ValueError(f"arch {describe_arch(norm)} does not describe this {type(model).__name__}: "
                         f"{report.summary()}.{report.hint()}")
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": norm,
        "state_dict": state_dict,
        "meta": meta_d,
        "extra": extra_d,
        "created_with": {"robnet": str(__version__), "torch": str(torch.__version__)},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


# ----------------------------------------------------------------------------- reading (safe)


@dataclass(frozen=True, kw_only=True)
class _Read:
    """Outcome of a ``weights_only`` read: the payload, the globals it refused, or why it failed."""

    payload: Any = None
    refused: tuple[str, ...] = ()  # globals / constructs weights_only refused (the pickle asks for code)
    error: CheckpointError | None = None  # not parsable by weights_only: damaged, or opcodes it lacks

    @property
    def ok(self) -> bool:
        return not self.refused and self.error is None


_REFUSAL = re.compile(r"GLOBAL|unrecognized function|Can only create new object|Can only build")


def _check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"checkpoint {p} is a directory, expected a file")
    return p


def _reason(e: BaseException) -> str:
    """The informative line of a torch.load / unpickling exception."""
    text = str(e)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    # torch wraps the unpickler's reason in advice paragraphs; keep the reason.
    advice = ("Weights only load failed", "Check the documentation")
    paragraphs = [par for par in text.split("\n\n") if par.strip() and not par.lstrip().startswith(advice)]
    text = paragraphs[0] if paragraphs else text
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    line = lines[0] if lines else "no details"
    return f"{type(e).__name__}: {line}"


def _one_line(text: str, limit: int = 300) -> str:
    """``text``'s lines joined with "; ", shortened at a word boundary beyond ``limit`` characters."""
    flat = "; ".join(ln.strip() for ln in text.splitlines() if ln.strip()) or "no details"
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " ..."


def _corrupt(path: Path, e: BaseException) -> CheckpointError:
    return CheckpointError(f"cannot read checkpoint {path}: file is truncated or corrupt ({_reason(e)})")


def _read_weights_only(path: Path, map_location: MapLocation) -> _Read:
    try:
        with warnings.catch_warnings():
            # Official files may use pickle protocols > 2; the fallback reader handles those.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return _Read(payload=torch.load(path, map_location=map_location, weights_only=True))
    except pickle.UnpicklingError as e:
        reason = _reason(e)
        if not _REFUSAL.search(reason):
            return _Read(error=_corrupt(path, e))
        try:
            names = tuple(sorted(torch.serialization.get_unsafe_globals_in_checkpoint(path)))  # a set: sort
        except Exception:  # only zip files can be scanned; fall back to the message
            names = ()
        if not names:
            match = re.search(r"GLOBAL ([\w.]+)", reason)
            names = (match.group(1) if match else reason,)
        return _Read(refused=names)
    except PermissionError as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e.strerror}") from None
    except Exception as e:  # torch raises RuntimeError/EOFError/KeyError/... on damaged files
        raise _corrupt(path, e) from None


def _code_error(path: Path, refused: tuple[str, ...]) -> CheckpointError:
    names = ", ".join(f"'{n}'" for n in refused[:5])
    noun = "global" if len(refused) == 1 else "globals"
    return CheckpointError(f"checkpoint {path} asks to run code ({noun} {names}); refusing to unpickle it. "
                           "Hint: if it is an official RobNets checkpoint use load_official / --arch")


def _is_ours(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def _validate_ours(payload: dict[str, Any], path: Path) -> dict[str, Any]:
    version = payload.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"checkpoint {path} has no valid format version (got {version!r})")
    if version > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {version}, newer than this robnet reads "
                              f"({VERSION}). Hint: upgrade robnet")
    for key, kind in (("arch", dict), ("state_dict", Mapping), ("meta", dict)):
        if not isinstance(payload.get(key), kind):
            got = type(payload.get(key)).__name__ if key in payload else "nothing"
            raise CheckpointError(f"checkpoint {path} is damaged: '{key}' should be a {kind.__name__}, "
                                  f"got {got}")
    bad = [k for k, v in payload["state_dict"].items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint {path} is damaged: {len(bad)} state_dict entries are not tensors "
                              f"under str keys (the first: {bad[0]!r})")
    metadata = getattr(payload["state_dict"], "_metadata", None)
    if metadata is not None and not _torch_metadata(metadata):
        raise CheckpointError(f"checkpoint {path} is damaged: its state_dict's _metadata is not torch's "
                              f"{{prefix: {{'version': int}}}} (got {type(metadata).__name__} "
                              f"{_one_line(repr(metadata), 80)})")
    try:
        arch = normalize_arch(payload["arch"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} records an unusable arch {payload['arch']!r}: "
                              f"{e}") from None
    out = dict(payload)
    out["arch"] = arch
    out.setdefault("extra", {})
    return out


def _torch_metadata(metadata: Any) -> bool:
    """Whether a state_dict's ``_metadata`` is what ``nn.Module.state_dict`` writes (load_state_dict
    hands each entry to the module's ``_load_from_state_dict``, which trusts it)."""
    return isinstance(metadata, dict) and all(
        isinstance(k, str) and isinstance(v, dict) and all(isinstance(kk, str) for kk in v)
        and (v.get("version") is None or type(v.get("version")) is int) for k, v in metadata.items())


def _not_ours(path: Path) -> CheckpointError:
    return CheckpointError(f"{path} is not a robnet checkpoint (no 'arch' recorded): pass --arch NAME, "
                           "e.g. --arch robnet_free (Python: load_official(path, arch))")


def load_raw(path: PathLike, *, map_location: MapLocation = "cpu") -> dict[str, Any]:
    """The whole validated payload of one of our checkpoints (``weights_only=True``).

    Returns:
        A dict with ``format``, ``version``, ``arch`` (normalized), ``state_dict``, ``meta``,
        ``extra`` (``{}`` when none was saved) and ``created_with``.

    Raises:
        CheckpointError: missing, truncated or corrupt file; a pickle that asks to run code; a
            file in another format (e.g. an official RobNets checkpoint).
    """
    p = _check_file(path)
    read = _read_weights_only(p, map_location)
    if read.error is not None:
        raise read.error
    if read.refused:
        raise _code_error(p, read.refused)
    if not _is_ours(read.payload):
        raise _not_ours(p)
    return _validate_ours(read.payload, p)


def _move(model: nn.Module, map_location: MapLocation) -> nn.Module:
    device = torch.device(map_location)
    return model if device.type == "cpu" else model.to(device)


def load(path: PathLike, *, map_location: MapLocation = "cpu",
         strict: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Load one of our checkpoints: rebuild the recorded architecture, load its weights.

    Args:
        path: a file written by :func:`save`.
        map_location: device for the tensors and the returned model.
        strict: require exactly the model's keys (shape mismatches always raise).

    Returns:
        ``(model, meta)``: the model in **eval mode** (call ``.train()`` to resume training) and
        the saved ``meta``. The architecture is ``load_raw(path)["arch"]`` (or
        :func:`arch_from_model` for a RobNet); optimizer and RNG states are in
        ``load_raw(path)["extra"]``.

    Raises:
        CheckpointError: see :func:`load_raw`; also when the weights do not fit the architecture.
    """
    raw = load_raw(path, map_location=map_location)
    return _model_from_raw(raw, Path(path), map_location=map_location, strict=strict), dict(raw["meta"])


def _model_from_raw(raw: dict[str, Any], path: Path, *, map_location: MapLocation, strict: bool) -> nn.Module:
    model = _build(raw["arch"], path)
    _load_into(model, raw["state_dict"], strict=strict, path=path, label=describe_arch(raw["arch"]))
    return _move(model, map_location).eval()


# ----------------------------------------------------------------------------- reading either way


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

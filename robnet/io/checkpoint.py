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

Every failure to read raises :class:`CheckpointError` (a ``ValueError``) with a one-line reason.
Official RobNets checkpoints, which record no architecture and may pickle training objects, are
read by :mod:`robnet.io.official` (through the restricted unpickler, docs/design.md §1); plain
state_dicts, safetensors files, users' own architectures and (opted-in) whole pickled models are
loaded by :func:`robnet.io.models.load_model`. Both build on the readers here.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robnet.io.files import atomic_write
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
    "load",
    "load_raw",
    "save",
]

logger = logging.getLogger(__name__)

FORMAT = "robnet-checkpoint"
VERSION = 1

PathLike = str | os.PathLike[str]
MapLocation = str | torch.device


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

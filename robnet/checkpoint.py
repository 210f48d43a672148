"""Checkpoints: plain data + a state_dict, read back without running pickled code.

Our format (``save`` / ``load``) is one ``torch.save`` of a dict holding only plain data and
tensors::

    {"format": "robnet-checkpoint", "version": 1,
     "arch": {"name": "robnet_large", "num_classes": 10, ...overrides}   # or a genotype + macro
     "state_dict": {...}, "meta": {...plain data...}, "extra": {...tensors + plain data...},
     "created_with": {"robnet": "0.1.0", "torch": "2.x"}}

so it is always read with ``torch.load(weights_only=True)``; the architecture is described as data
and rebuilt with :func:`robnet.zoo.build_model` / :func:`robnet.network.build_robnet`. Files are
written atomically (a temporary file in the same directory, fsync, ``os.replace``): a crash
mid-save leaves the previous checkpoint intact.

Official RobNets checkpoints (``torch.save({'state_dict': ..., 'optimizer': ..., 'epoch': ...,
'best_acc': ..., <a pickled lr-scheduler>})``, keys possibly prefixed ``module.``) record no
architecture, so :func:`load_official` needs its name. They are read with ``weights_only=True``
when possible; otherwise with a restricted unpickler that imports only the tensor-rebuilding
functions ``weights_only`` allows and turns every other global into an inert placeholder, so no
pickled code runs (SPEC §1). Only the tensors of the state_dict and plain-data extras are kept.

Every failure to read raises :class:`CheckpointError` (a ``ValueError``) with a one-line reason.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import os
import pickle
import re
import warnings
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from . import zoo
from ._files import atomic_write
from .genotype import Genotype
from .network import RobNet, as_genotype, build_robnet

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "arch_from_model",
    "build_from_arch",
    "describe_arch",
    "detect_format",
    "load",
    "load_any",
    "load_official",
    "load_raw",
    "normalize_arch",
    "save",
]

logger = logging.getLogger(__name__)

FORMAT = "robnet-checkpoint"
VERSION = 1

PathLike = str | os.PathLike[str]
ArchLike = str | Mapping[str, Any]
MapLocation = str | torch.device

# Keys of a genotype arch and their defaults (those of build_robnet).
_GENOTYPE_DEFAULTS: dict[str, Any] = {"C": 36, "layers": 20, "num_classes": 10, "in_channels": 3,
                                      "imagenet_stem": False}
# Where an official state_dict may sit in the top-level dict, in order of preference.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")
_LIST_FIRST = 5


class CheckpointError(ValueError):
    """A checkpoint could not be read or does not fit the requested architecture."""


# ----------------------------------------------------------------------------- plain data


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_SCALARS = (str, int, float, bool, type(None))
_PLAIN = "str, int, float, bool, None, list, tuple, dict with str keys"
_PLAIN_OR_TENSOR = "tensors, str, int, float, bool, None, list, tuple, dict with str or int keys"


def _check_data(value: Any, where: str, *, tensors: bool) -> None:
    """Raise TypeError naming the key path of the first value ``weights_only`` could not load back.

    Types are matched exactly: subclasses (``torch.__version__``, numpy floats, enums) pickle as
    their class and would make the file refuse to load.
    """
    if type(value) in _SCALARS or (tensors and isinstance(value, torch.Tensor)):
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_data(item, f"{where}[{i}]", tensors=tensors)
        return
    if type(value) in (dict, OrderedDict):
        key_types: tuple[type, ...] = (str, int) if tensors else (str,)
        for key, item in value.items():
            if type(key) not in key_types:
                raise TypeError(f"{where} has key {key!r} of type {type(key).__name__}; expected "
                                f"{' or '.join(t.__name__ for t in key_types)} keys. Hint: convert the key "
                                "with str()")
            _check_data(item, f"{where}[{key!r}]", tensors=tensors)
        return
    base = next((t.__name__ for t in _SCALARS[:3] if isinstance(value, t)), None)
    if base is not None:
        hint = f"convert it with {base}()"
    elif hasattr(value, "item"):
        hint = "convert it with .item() or .tolist()"
    else:
        hint = "store its name or repr instead"
    allowed = _PLAIN_OR_TENSOR if tensors else _PLAIN
    raise TypeError(f"{where} is {type(value).__name__} ({_short_repr(value)}), not plain data ({allowed}). "
                    f"Hint: {hint}")


def _check_plain(value: Any, where: str) -> None:
    _check_data(value, where, tensors=False)


# ----------------------------------------------------------------------------- architectures


def normalize_arch(arch: ArchLike) -> dict[str, Any]:
    """The architecture as plain data, with every default made explicit.

    Args:
        arch: a zoo name (``"robnet_large"``); a dict ``{"name": ..., **overrides}`` whose overrides
            are those of :func:`robnet.zoo.build_model` (``num_classes``, ``C``, ``layers``,
            ``genotype``, ``in_channels``, ``denoise``); or a custom genotype with its macro,
            ``{"genotype": "<Genotype string>", "C": 36, "layers": 20, "num_classes": 10,
            "in_channels": 3, "imagenet_stem": False, "denoise": [...]}`` (missing keys take the
            :func:`robnet.network.build_robnet` defaults shown).

    Returns:
        ``{"name": ..., "num_classes": ..., **overrides}`` or ``{"genotype": str, "C": ...,
        "layers": ..., "num_classes": ..., "in_channels": ..., "imagenet_stem": ...}`` (plus
        ``"denoise"`` when non-empty). Genotypes become their canonical string.
    """
    if isinstance(arch, str):
        _check_zoo_name(arch)
        return {"name": arch, "num_classes": zoo._DEFAULT_CLASSES.get(arch, 10)}
    if not isinstance(arch, Mapping):
        raise TypeError(f"arch must be a zoo name or a dict, got {type(arch).__name__}. "
                        "Hint: arch='robnet_large' or arch={'genotype': '11 01 ...', 'C': 36, 'layers': 20}")
    if "name" in arch:
        name = arch["name"]
        if not isinstance(name, str):
            raise TypeError(f"arch['name'] must be a str, got {type(name).__name__}")
        _check_zoo_name(name)
        out: dict[str, Any] = {"name": name}
        classes = arch.get("num_classes")
        out["num_classes"] = zoo._DEFAULT_CLASSES.get(name, 10) if classes is None else _as_int(classes,
                                                                                                "num_classes")
        for key, value in arch.items():
            if key in ("name", "num_classes"):
                continue
            out[key] = _normalize_override(key, value)
        _check_plain(out, "arch")
        return out
    if "genotype" in arch:
        unknown = sorted(set(arch) - {"genotype", "denoise", *_GENOTYPE_DEFAULTS})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in a genotype arch; expected genotype, "
                             f"{', '.join(_GENOTYPE_DEFAULTS)}, denoise")
        out = {"genotype": str(_as_genotype(arch["genotype"]))}
        for key, default in _GENOTYPE_DEFAULTS.items():
            value = arch.get(key, default)
            out[key] = bool(value) if key == "imagenet_stem" else _as_int(value, key)
        denoise = _normalize_override("denoise", arch.get("denoise", ()))
        if denoise:
            out["denoise"] = denoise
        _check_plain(out, "arch")
        return out
    raise ValueError(f"arch dict needs a 'name' (a zoo model) or a 'genotype' (with its macro), got keys "
                     f"{sorted(arch)}. Hint: {{'name': 'robnet_large', 'C': 8}} or "
                     "{'genotype': '11 01 ...', 'C': 36, 'layers': 20}")


def _check_zoo_name(name: str) -> None:
    names = zoo.list_models()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown architecture {name!r}.{hint} Zoo names: {', '.join(names)}; for a custom "
                     "genotype pass {'genotype': '<Genotype string>', 'C': 36, 'layers': 20}")


def _as_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"arch[{key!r}] must be an int, got {type(value).__name__} ({value!r})")
    return value


def _as_genotype(value: Any) -> Genotype:
    try:
        return as_genotype(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"arch['genotype'] is not a valid genotype: {e}") from None


def _normalize_override(key: str, value: Any) -> Any:
    if key == "genotype":
        return str(_as_genotype(value))
    if key == "denoise":
        items = [value] if isinstance(value, str | int) else list(value)
        return sorted(items) if all(isinstance(i, int) for i in items) else items
    return value


def describe_arch(arch: ArchLike) -> str:
    """Short human label, e.g. ``"robnet_large (num_classes=10, C=8, layers=5)"``."""
    norm = normalize_arch(arch)
    if "name" in norm:
        head, rest = norm["name"], {k: v for k, v in norm.items() if k != "name"}
    else:
        genotype = norm["genotype"]
        head = f"genotype {genotype[:41] + '...' if len(genotype) > 44 else genotype!r}"
        rest = {k: v for k, v in norm.items() if k != "genotype"}
    if rest == {"num_classes": 10}:
        return head
    return f"{head} ({', '.join(f'{k}={v}' for k, v in rest.items())})"


def build_from_arch(arch: ArchLike) -> nn.Module:
    """Build an (untrained) model from an architecture description (see :func:`normalize_arch`)."""
    norm = normalize_arch(arch)
    if "name" in norm:
        overrides = {k: v for k, v in norm.items() if k not in ("name", "num_classes")}
        return zoo.build_model(norm["name"], num_classes=norm["num_classes"], **overrides)
    return build_robnet(norm["genotype"], C=norm["C"], layers=norm["layers"], num_classes=norm["num_classes"],
                        in_channels=norm["in_channels"], imagenet_stem=norm["imagenet_stem"],
                        denoise=norm.get("denoise", ()))


def arch_from_model(model: nn.Module) -> dict[str, Any]:
    """Describe a :class:`~robnet.network.RobNet` as a genotype arch (plain data).

    Raises:
        TypeError: for any other model (pass ``arch=<zoo name or dict>`` to :func:`save` instead).
    """
    model = _unwrap(model)
    if not isinstance(model, RobNet):
        raise TypeError(f"cannot describe a {type(model).__name__} as data; only RobNet instances are "
                        "described automatically. Hint: pass arch='resnet18' (a zoo name) or "
                        "arch={'name': ..., **overrides} to save()")
    first_conv = model.stem0[0] if model._imagenet else model.stem[0]
    if not isinstance(first_conv, nn.Conv2d):
        raise TypeError(f"unexpected RobNet stem: {type(first_conv).__name__} where a Conv2d was expected")
    if not model._imagenet and first_conv.out_channels != 3 * model._C:
        raise ValueError(f"RobNet with stem width {first_conv.out_channels} != 3*C={3 * model._C} cannot be "
                         "described by build_robnet's arguments (stem_multiplier is not recorded)")
    arch: dict[str, Any] = {
        "genotype": str(model.genotype),
        "C": model._C,
        "layers": model._layers,
        "num_classes": model.classifier.out_features,
        "in_channels": first_conv.in_channels,
        "imagenet_stem": bool(model._imagenet),
    }
    if hasattr(model, "denoise"):
        arch["denoise"] = sorted(int(k) for k in model.denoise)
    return arch


def _unwrap(model: nn.Module) -> nn.Module:
    """The module itself under DataParallel / DistributedDataParallel / torch.compile wrappers."""
    while True:
        wrapped = isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel)
        inner = getattr(model, "module" if wrapped else "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


# ----------------------------------------------------------------------------- key matching


@dataclass(frozen=True, kw_only=True)
class _KeyReport:
    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, checkpoint shape, model shape)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys ({_first(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys ({_first(self.unexpected)})")
        if self.mismatched:
            shown = [f"{k}: checkpoint {_shape(a)} vs model {_shape(b)}"
                     for k, a, b in self.mismatched[:_LIST_FIRST]]
            more = ", ..." if len(self.mismatched) > _LIST_FIRST else ""
            parts.append(f"{len(self.mismatched)} shape mismatches ({', '.join(shown)}{more})")
        return ", ".join(parts)


def _first(keys: list[str]) -> str:
    return ", ".join(keys[:_LIST_FIRST]) + (", ..." if len(keys) > _LIST_FIRST else "")


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(shape))


def _compare_keys(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> _KeyReport:
    expected = model.state_dict()
    return _KeyReport(
        missing=[k for k in expected if k not in state_dict],
        unexpected=[k for k in state_dict if k not in expected],
        mismatched=[(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in state_dict.items()
                    if k in expected and tuple(v.shape) != tuple(expected[k].shape)],
    )


def _classes_hint(report: _KeyReport) -> str:
    for key, ckpt, model in report.mismatched:
        if key.endswith("weight") and len(ckpt) == 2 == len(model) and ckpt[1] == model[1]:
            return f" Hint: the checkpoint has {ckpt[0]} classes; pass num_classes={ckpt[0]}"
    return " Hint: check the architecture name, C, layers and num_classes"


def _load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool, path: PathLike,
               arch: Mapping[str, Any]) -> None:
    report = _compare_keys(state_dict, model)
    if report.mismatched or (strict and not report.ok):
        raise CheckpointError(f"checkpoint {path} does not match architecture {describe_arch(arch)}: "
                              f"{report.summary()}.{_classes_hint(report)}")
    if not report.ok:
        logger.warning("checkpoint %s loaded with strict=False: %s", path, report.summary())
    model.load_state_dict(state_dict, strict=strict)


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
    from . import __version__

    model = _unwrap(model)
    norm = normalize_arch(arch) if arch is not None else arch_from_model(model)
    meta_d = dict(meta) if meta is not None else {}
    _check_plain(meta_d, "meta")
    extra_d = dict(extra) if extra is not None else {}
    _check_data(extra_d, "extra", tensors=True)
    state_dict = model.state_dict()
    with torch.device("meta"):
        skeleton = build_from_arch(norm)
    report = _compare_keys(state_dict, skeleton)
    if not report.ok:
        raise ValueError(f"arch {describe_arch(norm)} does not describe this {type(model).__name__}: "
                         f"{report.summary()}.{_classes_hint(report)}")
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
    return f"{type(e).__name__}: {line[:200]}"


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
    names = ", ".join(f"'{n}'" for n in refused[:_LIST_FIRST])
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
        raise CheckpointError(f"checkpoint {path} is damaged: state_dict entries that are not tensors: "
                              f"{_first([str(k) for k in bad])}")
    try:
        arch = normalize_arch(payload["arch"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path} records an unusable arch {payload['arch']!r}: "
                              f"{e}") from None
    out = dict(payload)
    out["arch"] = arch
    out.setdefault("extra", {})
    return out


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
    model = build_from_arch(raw["arch"])
    _load_into(model, raw["state_dict"], strict=strict, path=path, arch=raw["arch"])
    return _move(model, map_location).eval()


# ----------------------------------------------------------------------------- restricted unpickler


class _Inert:
    """Stands in for a global the restricted unpickler refused to import.

    Constructing or calling it, ``__setstate__`` and the container ops the unpickler uses
    (``__setitem__``, ``append``, ``extend``, ``add``) all swallow their arguments: nothing from
    the pickle is executed and nothing it carried is kept.
    """

    pickled_global: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        # e.g. getattr(obj, "method") then REDUCE: the placeholder is "called"; nothing runs.
        return type(self).called()()

    @classmethod
    def called(cls) -> type[_Inert]:
        """The placeholder class of what calling this one would have returned."""
        name = f"{cls.pickled_global}()"
        return type(f"Placeholder[{name}]", (_Inert,), {"pickled_global": name})

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<not unpickled: {self.pickled_global}>"


def _encode_bytes(text: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: text codecs only."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "utf-8",
                                                                               "utf8", "ascii"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode(encoding, errors)


def _rebuild_from_type(func: Any, new_type: Any, args: tuple[Any, ...], state: Any) -> Any:
    """``torch._tensor._rebuild_from_type_v2`` restricted to plain tensors and Parameters."""
    ret = func(*args)
    if not isinstance(ret, torch.Tensor) or new_type not in (torch.Tensor, nn.Parameter):
        return ret  # an unknown tensor subclass: keep the plain tensor (or the placeholder)
    return torch._tensor._rebuild_from_type_v2(lambda: ret, new_type, (), state)


# Exactly the callables/classes weights_only=True allows for plain checkpoints, by qualified name.
_ALLOWED_NAMES: frozenset[str] = frozenset({
    "collections.OrderedDict", "collections.Counter",
    "builtins.set", "builtins.frozenset", "builtins.complex", "builtins.bytearray",
    "torch.Size", "torch.device", "torch.Tensor", "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout",
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor", "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "numpy.dtype", "numpy.ndarray",
    "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
})
_SUBSTITUTES: dict[str, Any] = {
    "_codecs.encode": _encode_bytes,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
}
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _resolve_allowed(module: str, name: str) -> Any | None:
    """The allowlisted object ``module.name``, or None. Imports only torch/numpy/stdlib modules."""
    full = f"{module}.{name}"
    if full in _SUBSTITUTES:
        return _SUBSTITUTES[full]
    if full in _ALLOWED_NAMES:
        import importlib

        try:
            with warnings.catch_warnings():  # numpy 2 warns on importing numpy.core (old pickles)
                warnings.simplefilter("ignore", DeprecationWarning)
                return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            return None
    if module == "torch":
        # dtypes, layouts, memory formats, legacy tensor types (torch.FloatTensor), storage classes.
        # vars(), not getattr: no lazy submodule imports for names a pickle makes up.
        obj = vars(torch).get(name)
        if isinstance(obj, torch.dtype | torch.layout | torch.memory_format):
            return obj
        if inspect.isclass(obj) and (obj in torch._tensor_classes
                                     or issubclass(obj, torch.storage.TypedStorage | torch.UntypedStorage)):
            return obj
    if module == "numpy.dtypes" and name.endswith("DType"):
        try:
            import numpy.dtypes
        except ImportError:
            return None
        cls = vars(numpy.dtypes).get(name)
        return cls if inspect.isclass(cls) else None
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` returns allowlisted torch rebuild functions or inert
    placeholder classes; torch.load subclasses it and adds its storage ``persistent_load``."""

    def __init__(self, file: Any, *, placeholder_log: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._log = placeholder_log if placeholder_log is not None else []
        self._placeholders: dict[str, type[_Inert]] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        obj = _resolve_allowed(module, name)
        if obj is not None:
            return obj
        full = f"{module}.{name}"
        if full not in self._placeholders:
            self._log.append(full)
            self._placeholders[full] = type(f"Placeholder[{full}]", (_Inert,), {"pickled_global": full})
        return self._placeholders[full]


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` uses: ``Unpickler`` and ``load``."""

    Unpickler = _RestrictedUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return _RestrictedUnpickler(file, **kwargs).load()


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
                          pickle_module=_RestrictedPickleModule, placeholder_log=log)
    except Exception as e:
        raise (read.error or _corrupt(path, e)) from None
    return _Payload(data=data, unpickler="restricted", refused=read.refused, placeholders=tuple(log))


# ----------------------------------------------------------------------------- official checkpoints


def _describe_dropped(value: Any) -> str:
    if isinstance(value, _Inert):
        return f"object built by {value.pickled_global} (a placeholder: nothing was executed)"
    if isinstance(value, type) and issubclass(value, _Inert):
        return f"reference to {value.pickled_global} (a placeholder: not imported)"
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {_shape(tuple(value.shape))}"
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
        _check_plain(value, "value")
    except TypeError:
        return False, None
    return True, value


def _find_state_dict(payload: Any, path: Path) -> tuple[str | None, Mapping[Any, Any]]:
    if isinstance(payload, _Inert):
        raise CheckpointError(f"checkpoint {path} holds a pickled {payload.pickled_global} object, not a "
                              "state_dict: a whole pickled model cannot be loaded without running its "
                              "code. Hint: in a trusted environment re-save it with "
                              "torch.save(model.state_dict(), ...)")
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


def _strip_prefix(state_dict: Mapping[Any, Any], ignored: dict[str, str]) -> tuple[dict[str, torch.Tensor],
                                                                                  list[str]]:
    out: dict[str, torch.Tensor] = {}
    stripped: list[str] = []
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            ignored[f"state_dict.{key}"] = _describe_dropped(value)
            continue
        new = key
        while new.startswith("module."):
            new = new[len("module."):]
        if new != key:
            stripped.append(new)
        out[new] = value.detach()  # detach drops any pickled backward hooks
    return out, stripped


def _official_parts(read: _Payload, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    payload = read.data
    if _is_ours(payload) and isinstance(payload.get("state_dict"), Mapping):
        payload = payload["state_dict"]  # one of ours, loaded with an explicit arch
    sd_key, raw_sd = _find_state_dict(payload, path)
    ignored: dict[str, str] = {}
    state_dict, stripped = _strip_prefix(raw_sd, ignored)
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
        "stripped_prefix": "module." if stripped else None,
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
    model = build_from_arch(norm)
    _load_into(model, state_dict, strict=strict, path=path, arch=norm)
    meta["arch"] = norm
    return _move(model, map_location).eval(), meta


def load_official(path: PathLike, arch: ArchLike, *, num_classes: int | None = None,
                  map_location: MapLocation = "cpu", strict: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """Load an official RobNets checkpoint (or any state_dict file) without running pickled code.

    Accepts ``{'state_dict': ..., ...extras}`` (also ``model_state_dict`` / ``model`` / ``net``) or a
    bare state_dict, zip or legacy ``torch.save`` format; ``module.`` key prefixes (DataParallel)
    are stripped. Read with ``weights_only=True`` when torch allows it, else with the restricted
    unpickler (unknown globals such as a pickled lr-scheduler become inert placeholders, see the
    module docstring).

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
        ``stripped_prefix`` ("module." or None) and ``stripped_keys`` (keys that had it).

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

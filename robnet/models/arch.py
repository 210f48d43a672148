"""A model's architecture as plain data: describe it, build from it, read it back from a model.

An *arch* is either a zoo entry with overrides, ``{"name": "robnet_large", "num_classes": 10,
"C": 8}``, or a custom genotype with its macro, ``{"genotype": "11 01 ...", "C": 36, "layers": 20,
"num_classes": 10, "in_channels": 3, "imagenet_stem": False}`` (plus ``"denoise"``). It is what
checkpoints record and search results name, so it holds only plain data (str, int, bool, lists,
dicts) and round-trips through JSON and ``torch.load(weights_only=True)``:

* :func:`normalize_arch` makes every default explicit and validates keys and types;
* :func:`build_from_arch` builds the (untrained) model, refusing absurd sizes first by
  :func:`estimate_params` (exact for RobNets, computed without building anything);
* :func:`arch_from_model` reads the arch back from a :class:`~robnet.models.network.RobNet` through its
  public properties;
* :func:`compare_state_dict` says how a state_dict's keys and shapes fit a model of the arch.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robnet.models import zoo
from robnet.models.genotype import Genotype
from robnet.models.network import RobNet, as_genotype, build_robnet, robnet_num_params
from robnet.utils import unwrap_model

__all__ = [
    "MAX_PARAMS",
    "ArchLike",
    "StateDictReport",
    "arch_from_model",
    "build_from_arch",
    "check_data",
    "compare_state_dict",
    "describe_arch",
    "estimate_params",
    "normalize_arch",
]

ArchLike = str | Mapping[str, Any]

#: :func:`build_from_arch` refuses architectures above this many parameters (4 GB of float32
#: weights, about 30 times RobNet-large-v2) unless asked with ``max_params=None``.
MAX_PARAMS = 1_000_000_000

# Keys of a genotype arch and their defaults (those of build_robnet).
_GENOTYPE_DEFAULTS: dict[str, Any] = {"C": 36, "layers": 20, "num_classes": 10, "in_channels": 3,
                                      "imagenet_stem": False}
_INT_KEYS = ("C", "layers", "num_classes", "in_channels")


# ----------------------------------------------------------------------------- plain data


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_SCALARS = (str, int, float, bool, type(None))
_PLAIN = "str, int, float, bool, None, list, tuple, dict with str keys"
_PLAIN_OR_TENSOR = "tensors, str, int, float, bool, None, list, tuple, dict with str or int keys"


def check_data(value: Any, where: str, *, tensors: bool = False) -> None:
    """Raise TypeError naming the key path of the first value ``weights_only`` could not load back.

    Types are matched exactly: subclasses (``torch.__version__``, numpy floats, enums) pickle as
    their class and would make the file refuse to load.

    Args:
        value: the data to check.
        where: its name in messages, e.g. ``"meta"``.
        tensors: also accept tensors (and int dict keys, as optimizer states use).
    """
    if type(value) in _SCALARS or (tensors and isinstance(value, torch.Tensor)):
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            check_data(item, f"{where}[{i}]", tensors=tensors)
        return
    if type(value) in (dict, OrderedDict):
        key_types: tuple[type, ...] = (str, int) if tensors else (str,)
        for key, item in value.items():
            if type(key) not in key_types:
                raise TypeError(f"{where} has key {key!r} of type {type(key).__name__}; expected "
                                f"{' or '.join(t.__name__ for t in key_types)} keys. Hint: convert the key "
                                "with str()")
            check_data(item, f"{where}[{key!r}]", tensors=tensors)
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


# ----------------------------------------------------------------------------- normalizing


def normalize_arch(arch: ArchLike) -> dict[str, Any]:
    """The architecture as plain data, with every default made explicit.

    Args:
        arch: a zoo name (``"robnet_large"``); a dict ``{"name": ..., **overrides}`` whose overrides
            are those :func:`robnet.models.zoo.build_model` accepts for that name (RobNets: ``C``,
            ``layers``, ``genotype``, ``in_channels``, ``imagenet_stem``, ``denoise``); or a custom
            genotype with its macro, ``{"genotype": "<Genotype string>", "C": 36, "layers": 20,
            "num_classes": 10, "in_channels": 3, "imagenet_stem": False, "denoise": [...]}``
            (missing keys take the :func:`robnet.models.network.build_robnet` defaults shown).

    Returns:
        ``{"name": ..., "num_classes": ..., **overrides}`` or ``{"genotype": str, "C": ...,
        "layers": ..., "num_classes": ..., "in_channels": ..., "imagenet_stem": ...}`` (plus
        ``"denoise"`` when non-empty). Genotypes become their canonical string.

    Raises:
        ValueError: an unknown zoo name, unknown keys, a value out of range, an invalid genotype.
        TypeError: a value of the wrong type (e.g. ``C=8.0``), or one that is not plain data.
    """
    if isinstance(arch, str):
        _check_zoo_name(arch)
        return {"name": arch, "num_classes": zoo.default_num_classes(arch)}
    if not isinstance(arch, Mapping):
        raise TypeError(f"arch must be a zoo name or a dict, got {type(arch).__name__}. "
                        "Hint: arch='robnet_large' or arch={'genotype': '11 01 ...', 'C': 36, 'layers': 20}")
    if "name" in arch:
        return _normalize_named(arch)
    if "genotype" in arch:
        unknown = sorted(set(arch) - {"genotype", "denoise", *_GENOTYPE_DEFAULTS})
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in a genotype arch; expected genotype, "
                             f"{', '.join(_GENOTYPE_DEFAULTS)}, denoise")
        out: dict[str, Any] = {"genotype": str(_as_genotype(arch["genotype"]))}
        for key, default in _GENOTYPE_DEFAULTS.items():
            out[key] = _normalize_override(key, arch.get(key, default))
        denoise = _normalize_override("denoise", arch.get("denoise", ()))
        if denoise:
            out["denoise"] = denoise
        check_data(out, "arch")
        return out
    raise ValueError(f"arch dict needs a 'name' (a zoo model) or a 'genotype' (with its macro), got keys "
                     f"{sorted(map(str, arch))}. Hint: {{'name': 'robnet_large', 'C': 8}} or "
                     "{'genotype': '11 01 ...', 'C': 36, 'layers': 20}")


def _normalize_named(arch: Mapping[str, Any]) -> dict[str, Any]:
    name = arch["name"]
    if not isinstance(name, str):
        raise TypeError(f"arch['name'] must be a str, got {type(name).__name__}")
    _check_zoo_name(name)
    allowed = zoo.override_keys(name)
    if allowed is not None:
        unknown = sorted(str(k) for k in arch if k not in allowed and k not in ("name", "num_classes"))
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} for zoo model {name!r}; it accepts num_classes"
                             f"{', ' if allowed else ''}{', '.join(sorted(allowed))}")
    classes = arch.get("num_classes")
    out: dict[str, Any] = {"name": name, "num_classes": zoo.default_num_classes(name) if classes is None
                           else _normalize_override("num_classes", classes)}
    for key, value in arch.items():
        if key not in ("name", "num_classes"):
            out[key] = _normalize_override(key, value)
    check_data(out, "arch")
    return out


def _check_zoo_name(name: str) -> None:
    names = zoo.list_models()
    if name in names:
        return
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown architecture {name!r}.{hint} Zoo names: {', '.join(names)}; for a custom "
                     "genotype pass {'genotype': '<Genotype string>', 'C': 36, 'layers': 20}")


def _as_genotype(value: Any) -> Genotype:
    try:
        return as_genotype(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"arch['genotype'] is not a valid genotype: {e}") from None


def _normalize_override(key: str, value: Any) -> Any:
    if key == "genotype":
        return str(_as_genotype(value))
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"arch[{key!r}] must be an int, got {type(value).__name__} ({_short_repr(value)})")
        if value < 1:
            raise ValueError(f"arch[{key!r}] must be >= 1, got {value}")
        return value
    if key == "imagenet_stem":
        if not isinstance(value, bool):
            raise TypeError(f"arch['imagenet_stem'] must be a bool, got {type(value).__name__} ({value!r})")
        return value
    if key == "denoise":
        items = [value] if isinstance(value, str | int) else list(value) if isinstance(value, list | tuple) \
            else None
        if items is None or not all(isinstance(i, str) or (isinstance(i, int) and not isinstance(i, bool))
                                    for i in items):
            raise TypeError(f"arch['denoise'] must be an int, a str or a list of them (cell or stage "
                            f"indices / names), got {_short_repr(value)}")
        return sorted(set(items)) if all(isinstance(i, int) for i in items) else items
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


# ----------------------------------------------------------------------------- building


def estimate_params(arch: ArchLike) -> int:
    """The number of parameters of ``build_from_arch(arch)``, without building it.

    Exact for RobNets (genotype archs and RobNet zoo entries, by
    :func:`robnet.models.network.robnet_num_params`: one pass over the edge codes, cheap for any size);
    other zoo models are built on the meta device (no memory) and counted.
    """
    norm = normalize_arch(arch)
    if "name" not in norm:  # a genotype arch (a zoo name may also carry a genotype override: below)
        return robnet_num_params(norm["genotype"], **{k: v for k, v in norm.items() if k != "genotype"})
    overrides = {k: v for k, v in norm.items() if k not in ("name", "num_classes")}
    macro = zoo.robnet_macro(norm["name"])
    if macro is not None:
        merged = {**macro, **overrides}
        return robnet_num_params(merged.pop("genotype"), num_classes=norm["num_classes"], **merged)
    with torch.device("meta"):
        model = zoo.build_model(norm["name"], num_classes=norm["num_classes"], **overrides)
    return sum(p.numel() for p in model.parameters())


def build_from_arch(arch: ArchLike, *, max_params: int | None = MAX_PARAMS) -> nn.Module:
    """Build an (untrained) model from an architecture description (see :func:`normalize_arch`).

    Args:
        arch: the architecture.
        max_params: refuse, before building anything, an architecture with more parameters than
            this (:func:`estimate_params`); None: no limit.

    Raises:
        ValueError: an invalid arch, or one above ``max_params``.
    """
    norm = normalize_arch(arch)
    if max_params is not None:
        n = estimate_params(norm)
        if n > max_params:
            raise ValueError(f"arch {describe_arch(norm)} would have {n:,} parameters ({4 * n / 1e9:.3g} GB as "
                             f"float32), more than the limit of {max_params:,}; refusing to build it. Hint: "
                             "check C, layers and num_classes (build_from_arch(..., max_params=None) lifts "
                             "the limit)")
    if "name" in norm:
        overrides = {k: v for k, v in norm.items() if k not in ("name", "num_classes")}
        return zoo.build_model(norm["name"], num_classes=norm["num_classes"], **overrides)
    return build_robnet(norm["genotype"], C=norm["C"], layers=norm["layers"], num_classes=norm["num_classes"],
                        in_channels=norm["in_channels"], imagenet_stem=norm["imagenet_stem"],
                        denoise=norm.get("denoise", ()))


# ----------------------------------------------------------------------------- weights vs architecture

_LIST_FIRST = 5


@dataclass(frozen=True, kw_only=True)
class StateDictReport:
    """How a state_dict fits a model (see :func:`compare_state_dict`).

    Attributes:
        missing: keys the model has and the state_dict lacks, in the model's order.
        unexpected: keys the state_dict has and the model lacks.
        mismatched: ``(key, state_dict shape, model shape)`` for the common keys whose shapes differ.
    """

    missing: list[str]
    unexpected: list[str]
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]

    @property
    def ok(self) -> bool:
        """Same keys, same shapes."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """One line: counts and the first few keys of each kind."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing keys ({_first(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected keys ({_first(self.unexpected)})")
        if self.mismatched:
            shown = [f"{k}: checkpoint {a} vs model {b}" for k, a, b in self.mismatched[:_LIST_FIRST]]
            more = ", ..." if len(self.mismatched) > _LIST_FIRST else ""
            parts.append(f"{len(self.mismatched)} shape mismatches ({', '.join(shown)}{more})")
        return ", ".join(parts)

    def hint(self, default: str = " Hint: check the architecture name, C, layers and num_classes") -> str:
        """`` Hint: ...`` naming the class count when only a classifier's rows differ, else ``default``."""
        for key, ckpt, model in self.mismatched:
            if key.endswith("weight") and len(ckpt) == 2 == len(model) and ckpt[1] == model[1]:
                return f" Hint: the checkpoint has {ckpt[0]} classes; pass num_classes={ckpt[0]}"
        return default


def _first(keys: list[str]) -> str:
    return ", ".join(keys[:_LIST_FIRST]) + (", ..." if len(keys) > _LIST_FIRST else "")


def compare_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module) -> StateDictReport:
    """Compare a state_dict's keys and shapes with ``model``'s (which may live on the meta device)."""
    expected = model.state_dict()
    return StateDictReport(
        missing=[k for k in expected if k not in state_dict],
        unexpected=[k for k in state_dict if k not in expected],
        mismatched=[(k, tuple(v.shape), tuple(expected[k].shape)) for k, v in state_dict.items()
                    if k in expected and tuple(v.shape) != tuple(expected[k].shape)],
    )


# ----------------------------------------------------------------------------- reading back


def arch_from_model(model: nn.Module) -> dict[str, Any]:
    """Describe a :class:`~robnet.models.network.RobNet` as a genotype arch (plain data), through its
    public properties; wrappers (DataParallel, DDP, ``torch.compile``) are looked through.

    Raises:
        TypeError: for any other model (pass ``arch=<zoo name or dict>`` to
            :func:`robnet.io.checkpoint.save` instead).
        ValueError: a RobNet whose stem width is not ``3 * C`` (not describable by build_robnet).
    """
    model = unwrap_model(model)
    if not isinstance(model, RobNet):
        raise TypeError(f"cannot describe a {type(model).__name__} as data; only RobNet instances are "
                        "described automatically. Hint: pass arch='resnet18' (a zoo name) or "
                        "arch={'name': ..., **overrides} to save()")
    if not model.imagenet_stem and model.stem_multiplier != 3:
        raise ValueError(f"RobNet with stem width {model.stem_multiplier * model.C} != 3*C={3 * model.C} cannot "
                         "be described by build_robnet's arguments (stem_multiplier is not recorded)")
    arch: dict[str, Any] = {
        "genotype": str(model.genotype),
        "C": model.C,
        "layers": model.layers,
        "num_classes": model.num_classes,
        "in_channels": model.in_channels,
        "imagenet_stem": model.imagenet_stem,
    }
    if model.denoise_cells:
        arch["denoise"] = list(model.denoise_cells)
    return arch

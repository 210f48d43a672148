"""The restricted unpickler: plain data, tensors and numpy arrays come back; no pickled code runs.

One unpickler serves every pickle the package reads from outside: official RobNets checkpoints
(through ``torch.load(pickle_module=RestrictedPickleModule, ...)``) and the CIFAR python batches.
What it may import is an :class:`Allowlist`:

* :data:`NUMPY_ARRAYS`: numpy arrays, dtypes and protocol-2 bytes (the CIFAR batches);
* :data:`TORCH_CHECKPOINT`: exactly the tensor-rebuilding functions and classes that
  ``torch.load(weights_only=True)`` allows, plus numpy arrays and scalars.

Any other global is either refused (``on_unknown="refuse"``: ``pickle.UnpicklingError`` naming
it) or replaced by an inert placeholder class (``on_unknown="placeholder"``) that swallows
whatever the pickle does with it, so the tensors of a checkpoint whose extras hold, say, a
pickled lr-scheduler still load while nothing of the scheduler runs or is kept (docs/design.md §1).
"""

from __future__ import annotations

import importlib
import inspect
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

__all__ = ["NUMPY_ARRAYS", "TORCH_CHECKPOINT", "Allowlist", "Inert", "RestrictedPickleModule",
           "RestrictedUnpickler"]


class Inert:
    """Stands in for a global the restricted unpickler refused to import.

    Constructing or calling it, ``__setstate__`` and the container ops the unpickler uses
    (``__setitem__``, ``append``, ``extend``, ``add``) all swallow their arguments: nothing from
    the pickle is executed and nothing it carried is kept.
    """

    pickled_global: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Inert:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Inert:
        # e.g. getattr(obj, "method") then REDUCE: the placeholder is "called"; nothing runs.
        return type(self).called()()

    @classmethod
    def called(cls) -> type[Inert]:
        """The placeholder class of what calling this one would have returned."""
        return _placeholder(f"{cls.pickled_global}()")

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


def _placeholder(full: str) -> type[Inert]:
    return type(f"Placeholder[{full}]", (Inert,), {"pickled_global": full})


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


def _torch_type(name: str) -> Any | None:
    # dtypes, layouts, memory formats, legacy tensor types (torch.FloatTensor), storage classes.
    # vars(), not getattr: no lazy submodule imports for names a pickle makes up.
    obj = vars(torch).get(name)
    if isinstance(obj, torch.dtype | torch.layout | torch.memory_format):
        return obj
    if inspect.isclass(obj) and (obj in torch._tensor_classes
                                 or issubclass(obj, torch.storage.TypedStorage | torch.UntypedStorage)):
        return obj
    return None


def _numpy_dtype_class(name: str) -> Any | None:
    if not name.endswith("DType"):
        return None
    try:
        import numpy.dtypes
    except ImportError:  # pragma: no cover - numpy < 1.25
        return None
    cls = vars(numpy.dtypes).get(name)
    return cls if inspect.isclass(cls) else None


@dataclass(frozen=True, kw_only=True)
class Allowlist:
    """What a :class:`RestrictedUnpickler` may import.

    Attributes:
        names: qualified names (``"numpy.ndarray"``) imported as they are.
        substitutes: qualified name -> a restricted stand-in (e.g. ``_codecs.encode`` limited to
            text codecs).
        torch_types: also torch dtypes, layouts, memory formats, tensor and storage classes, and
            numpy's ``numpy.dtypes.*DType`` classes.
    """

    names: frozenset[str]
    substitutes: Mapping[str, Any] = field(default_factory=dict)
    torch_types: bool = False

    def resolve(self, module: str, name: str) -> Any | None:
        """The allowed object ``module.name``, or None. Imports only the modules named here."""
        full = f"{module}.{name}"
        if full in self.substitutes:
            return self.substitutes[full]
        if full in self.names:
            try:
                with warnings.catch_warnings():  # numpy 2 warns on importing numpy.core (old pickles)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return getattr(importlib.import_module(module), name)
            except (ImportError, AttributeError):
                return None
        if self.torch_types and module == "torch":
            return _torch_type(name)
        if self.torch_types and module == "numpy.dtypes":
            return _numpy_dtype_class(name)
        return None


_NUMPY_NAMES = frozenset({"numpy.dtype", "numpy.ndarray", "numpy.core.multiarray._reconstruct",
                          "numpy._core.multiarray._reconstruct"})

#: numpy arrays, dtypes, lists, dicts and protocol-2 bytes: what the CIFAR python batches hold.
NUMPY_ARRAYS = Allowlist(names=_NUMPY_NAMES, substitutes={"_codecs.encode": _encode_bytes})

#: Exactly the callables/classes ``weights_only=True`` allows for plain checkpoints, by qualified name.
TORCH_CHECKPOINT = Allowlist(
    names=_NUMPY_NAMES | {
        "collections.OrderedDict", "collections.Counter",
        "builtins.set", "builtins.frozenset", "builtins.complex", "builtins.bytearray",
        "torch.Size", "torch.device", "torch.Tensor", "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
        "torch._utils._rebuild_sparse_tensor", "torch._utils._rebuild_qtensor",
        "torch._utils._rebuild_device_tensor_from_cpu_tensor", "torch._utils._rebuild_device_tensor_from_numpy",
        "torch._utils._rebuild_meta_tensor_no_storage",
        "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    },
    substitutes={"_codecs.encode": _encode_bytes, "torch._tensor._rebuild_from_type_v2": _rebuild_from_type},
    torch_types=True,
)

_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` returns only what ``allowlist`` allows.

    ``torch.load(pickle_module=RestrictedPickleModule, allowlist=..., ...)`` subclasses it and adds
    its storage ``persistent_load``; the extra keywords travel through ``torch.load``.

    Args:
        file: the binary file to read.
        allowlist: what may be imported.
        on_unknown: ``"refuse"`` raises ``pickle.UnpicklingError("forbidden global <name>")``;
            ``"placeholder"`` substitutes an :class:`Inert` subclass named after the global.
        placeholder_log: a list that receives the qualified name of every global replaced by a
            placeholder (once each).
        **kwargs: ``pickle.Unpickler``'s (``encoding``, ``errors``, ...).
    """

    def __init__(self, file: Any, *, allowlist: Allowlist, on_unknown: Literal["refuse", "placeholder"] = "refuse",
                 placeholder_log: list[str] | None = None, **kwargs: Any) -> None:
        if on_unknown not in ("refuse", "placeholder"):
            raise ValueError(f"RestrictedUnpickler: on_unknown must be 'refuse' or 'placeholder', got {on_unknown!r}")
        super().__init__(file, **kwargs)
        self._allowlist = allowlist
        self._on_unknown = on_unknown
        self._log = placeholder_log if placeholder_log is not None else []
        self._placeholders: dict[str, type[Inert]] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2_MODULES.get(module, module)
        obj = self._allowlist.resolve(module, name)
        if obj is not None:
            return obj
        full = f"{module}.{name}"
        if self._on_unknown == "refuse":
            raise pickle.UnpicklingError(f"forbidden global {full}")
        if full not in self._placeholders:
            self._log.append(full)
            self._placeholders[full] = _placeholder(full)
        return self._placeholders[full]


class RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` uses: ``Unpickler`` and ``load``."""

    Unpickler = RestrictedUnpickler

    @staticmethod
    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()

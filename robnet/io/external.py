"""Architectures named on the command line: a zoo name, or a user's ``MODULE:CALLABLE`` factory.

``--arch`` takes either a name of :func:`robnet.models.zoo.list_models` (``resnet18``) or
``MODULE:CALLABLE`` (``my_models:make_net``, ``pkg.nets:Net``, ``pkg.nets:Builders.small``): a
callable importable from the current working directory or an installed package, called with the
keyword arguments of ``--arch-kwargs '{"num_classes": 10}'`` (a JSON object) and returning the
``nn.Module``::

    spec = resolve_arch("my_models:make_net", parse_arch_kwargs('{"num_classes": 10}'))
    model = spec.build()     # my_models.make_net(num_classes=10)
    spec.record              # {"factory": "my_models:make_net", "kwargs": {"num_classes": 10}}

Resolving imports the module (errors now, before any data is loaded); building calls the factory.
The current working directory is put at the end of ``sys.path`` only while importing and calling,
so installed packages win over same-named files there. Importing a user's module runs its code: that
is what naming it asks for; checkpoint files never get to choose what is imported
(:mod:`robnet.io.checkpoint`, :mod:`robnet.io.official`).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from robnet.models import zoo
from robnet.models.arch import ArchLike, build_from_arch, check_data, describe_arch, normalize_arch

__all__ = ["ArchSpec", "parse_arch_kwargs", "resolve_arch"]


@contextmanager
def _cwd_on_path() -> Iterator[None]:
    """The current directory on ``sys.path`` (last, so installed packages win) while inside."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    importlib.invalidate_caches()  # files written since the last import (tests, notebooks) are found
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _one_line(text: str, limit: int = 200) -> str:
    flat = "; ".join(ln.strip() for ln in text.splitlines() if ln.strip()) or "no details"
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " ..."


def parse_arch_kwargs(text: str | None) -> dict[str, Any]:
    """The keyword arguments of ``--arch-kwargs``: a JSON object, e.g. ``'{"num_classes": 10}'``.

    Args:
        text: the JSON text; None or "" for no arguments.

    Raises:
        ValueError: not JSON, or JSON that is not an object (the message shows where and why).
    """
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--arch-kwargs is not valid JSON ({e.msg} at column {e.colno}): {text!r}. Hint: a JSON "
                         "object with double-quoted keys, e.g. '{\"num_classes\": 10, \"width\": 16}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"--arch-kwargs must be a JSON object of keyword arguments, got {type(value).__name__} "
                         f"{text!r}. Hint: '{{\"num_classes\": 10}}'")
    return value


def _plain(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` for a record: plain values as they are, anything else as its repr."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        try:
            check_data(value, key)
            out[key] = value
        except TypeError:
            out[key] = repr(value)
    return out


@dataclass(frozen=True, kw_only=True)
class ArchSpec:
    """A resolved ``--arch``: how to build the (untrained) model and how to record it.

    Attributes:
        kind: ``"zoo"`` (a :mod:`robnet.models.zoo` name or an arch dict) or ``"factory"`` (a
            user's ``MODULE:CALLABLE``).
        target: the ``--arch`` text (zoo: the name; dict archs: their label).
        kwargs: the keyword arguments (``--arch-kwargs``).
        record: the architecture as plain data: the normalized zoo arch
            (:func:`robnet.models.arch.normalize_arch`), or ``{"factory": "MODULE:CALLABLE",
            "kwargs": {...}}`` (non-plain values as their repr).
        request: zoo kind: the arch as asked, before defaults are filled in (so a loader can still
            read ``num_classes`` from a checkpoint when it was not given).
        factory: the user's callable (``kind == "factory"``).
    """

    kind: Literal["zoo", "factory"]
    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any]
    request: dict[str, Any] = field(default_factory=dict)
    factory: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("zoo", "factory"):
            raise ValueError(f"ArchSpec.kind must be 'zoo' or 'factory', got {self.kind!r}")
        if self.kind == "factory" and not callable(self.factory):
            raise TypeError(f"ArchSpec for {self.target!r}: a factory spec needs a callable factory, got "
                            f"{self.factory!r}")

    def build(self) -> nn.Module:
        """Build the model: :func:`robnet.models.arch.build_from_arch`, or call the factory.

        Raises:
            ValueError: the factory rejects the keyword arguments, or raises.
            TypeError: the factory returns something that is not an ``nn.Module``.
        """
        if self.kind == "zoo" or self.factory is None:
            return build_from_arch(self.record)
        _check_signature(self.factory, self.kwargs, self.target)
        with _cwd_on_path():
            try:
                model = self.factory(**self.kwargs)
            except Exception as e:
                raise ValueError(f"arch {self.target}: calling it with {self.kwargs} raised {type(e).__name__}: "
                                 f"{_one_line(str(e))}") from e
        if not isinstance(model, nn.Module):
            raise TypeError(f"arch {self.target} returned {type(model).__name__}, not a torch.nn.Module. Hint: "
                            "the callable must build and return the model")
        return model


def _check_signature(factory: Callable[..., Any], kwargs: Mapping[str, Any], target: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    try:
        signature.bind(**kwargs)
    except TypeError as e:
        raise ValueError(f"arch {target} does not accept the keyword arguments {dict(kwargs)}: {e}; its signature "
                         f"is {signature}. Hint: check --arch-kwargs") from None


def _split_target(target: str) -> tuple[str, str]:
    module_name, _, attr = target.partition(":")
    if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
        stem = os.path.splitext(os.path.basename(module_name))[0]
        raise ValueError(f"arch {target!r} names a file; give its module name instead: --arch "
                         f"{stem}:{attr or 'CALLABLE'}, run from the folder that holds {os.path.basename(module_name)}")
    module_ok = bool(module_name) and all(part.isidentifier() for part in module_name.split("."))
    attr_ok = bool(attr) and all(part.isidentifier() for part in attr.split("."))
    if not (module_ok and attr_ok):
        raise ValueError(f"arch {target!r} is neither a zoo name nor MODULE:CALLABLE (e.g. my_models:make_net, "
                         "pkg.nets:Net)")
    return module_name, attr


def _import(module_name: str, target: str) -> Any:
    with _cwd_on_path():
        try:
            return importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            missing = e.name or module_name
            if module_name == missing or module_name.startswith(missing + "."):
                raise ValueError(f"arch {target}: cannot import module {module_name!r}: no module named "
                                 f"{missing!r} in the current directory ({os.getcwd()}) or on sys.path. Hint: "
                                 f"run from the folder that holds {missing.split('.')[0]}.py (or its package), "
                                 "add that folder to PYTHONPATH, or install the package") from None
            raise ValueError(f"arch {target}: importing module {module_name!r} failed: it imports {missing!r}, "
                             f"which is not installed. Hint: pip install {missing.split('.')[0]}") from None
        except Exception as e:
            raise ValueError(f"arch {target}: importing module {module_name!r} raised {type(e).__name__}: "
                             f"{_one_line(str(e))}") from e


def _attribute(module: Any, attr: str, target: str) -> Any:
    obj = module
    for i, part in enumerate(attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = module.__name__ + "".join(f".{p}" for p in attr.split(".")[:i])
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            callables = [n for n in names if callable(getattr(obj, n, None))][:10]
            hint = (f" Did you mean {', '.join(close)}?" if close else
                    f" Callables there: {', '.join(callables)}." if callables else "")
            raise ValueError(f"arch {target}: {owner!r} has no attribute {part!r}.{hint}") from None
    if not callable(obj):
        raise TypeError(f"arch {target} is not callable (type {type(obj).__name__}). Hint: name a function or "
                        "class that returns the model")
    return obj


def _zoo_name_error(name: str) -> ValueError:
    names = zoo.list_models()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ValueError(f"unknown architecture {name!r}.{hint} Give a zoo name ({', '.join(names)}) or your own "
                      "model as MODULE:CALLABLE (e.g. my_models:make_net, importable from the current directory) "
                      "with --arch-kwargs JSON")


def resolve_arch(arch: ArchLike, kwargs: Mapping[str, Any] | None = None) -> ArchSpec:
    """Resolve ``--arch`` (and ``--arch-kwargs``) without building anything.

    Args:
        arch: a zoo name, ``MODULE:CALLABLE``, or an arch dict (:func:`robnet.models.arch.normalize_arch`).
        kwargs: keyword arguments: zoo overrides (``num_classes``, ``C``, ...) or the factory's.

    Returns:
        An :class:`ArchSpec`; ``spec.build()`` makes the model.

    Raises:
        ValueError: an unknown zoo name (with close matches), a module that cannot be imported
            (with the directory searched), a missing attribute (with close matches), bad zoo
            overrides.
        TypeError: ``kwargs`` keys that are not str, a target that is not callable.
    """
    kw = dict(kwargs or {})
    bad = [k for k in kw if not isinstance(k, str)]
    if bad:
        raise TypeError(f"arch keyword arguments need str keys, got {bad[0]!r}")
    if isinstance(arch, str) and ":" in arch:
        module_name, attr = _split_target(arch.strip())
        factory = _attribute(_import(module_name, arch), attr, arch)
        return ArchSpec(kind="factory", target=arch, kwargs=kw, record={"factory": arch, "kwargs": _plain(kw)},
                        factory=factory)
    if isinstance(arch, str):
        if arch not in zoo.list_models():
            raise _zoo_name_error(arch)
        request = {"name": arch, **kw}
        return ArchSpec(kind="zoo", target=arch, kwargs=kw, record=normalize_arch(request), request=request)
    if isinstance(arch, Mapping):
        request = {**arch, **kw}
        record = normalize_arch(request)
        return ArchSpec(kind="zoo", target=describe_arch(record), kwargs=kw, record=record, request=request)
    raise TypeError(f"arch must be a zoo name, MODULE:CALLABLE or an arch dict, got {type(arch).__name__}")

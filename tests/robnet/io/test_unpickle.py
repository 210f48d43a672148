"""robnet.io.unpickle: one restricted unpickler, an allow-list per use, nothing pickled ever runs."""

from __future__ import annotations

import codecs
import collections
import io
import os
import pickle
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from robnet.io.unpickle import (
    NUMPY_ARRAYS,
    TORCH_CHECKPOINT,
    Allowlist,
    Inert,
    RestrictedPickleModule,
    RestrictedUnpickler,
)

TOUCHED: list[str] = []


class Shell:
    """Unpickling would run a shell command creating ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


class Stateful:
    """Pickles as class + __dict__: unpickling would call __setstate__, then the list ops below."""

    def __init__(self) -> None:
        self.lr = 0.1

    def __setstate__(self, state: dict[str, Any]) -> None:
        TOUCHED.append("setstate")


class Method:
    """Unpickling calls a bound method of a hostile object (getattr, then REDUCE on its result)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Stateful().__setstate__, ({"lr": 1.0},))


def _load(data: bytes, allowlist: Allowlist, **kwargs: Any) -> Any:
    return RestrictedUnpickler(io.BytesIO(data), allowlist=allowlist, **kwargs).load()


@pytest.fixture(autouse=True)
def _reset() -> None:
    TOUCHED.clear()


def test_numpy_arrays_round_trip_protocol_2_with_bytes() -> None:
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3], b"name": b"batch 1",
           b"f": np.float64(0.5).item()}
    back = _load(pickle.dumps(obj, protocol=2), NUMPY_ARRAYS, encoding="bytes")
    assert back.keys() == obj.keys() and back[b"labels"] == [1, 2, 3] and back[b"name"] == b"batch 1"
    assert back[b"data"].dtype == np.uint8 and np.array_equal(back[b"data"], obj[b"data"])


def test_refuse_mode_names_the_global_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError, match=r"^forbidden global (posix|nt)\.system$"):
        _load(pickle.dumps({"x": Shell(marker)}, protocol=2), NUMPY_ARRAYS)
    with pytest.raises(pickle.UnpicklingError, match=r"forbidden global collections\.OrderedDict"):
        _load(pickle.dumps(collections.OrderedDict(a=1)), NUMPY_ARRAYS)  # not on this list
    assert not marker.exists()


def test_placeholder_mode_swallows_everything(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    log: list[str] = []
    data = pickle.dumps({"shell": Shell(marker), "sched": Stateful(), "call": Method(), "again": Stateful(),
                         "kept": [1.5, "a", {"b": (1, 2)}]})
    back = _load(data, TORCH_CHECKPOINT, on_unknown="placeholder", placeholder_log=log)
    assert not marker.exists() and TOUCHED == []
    assert back["kept"] == [1.5, "a", {"b": (1, 2)}]
    assert isinstance(back["shell"], Inert) and back["shell"].pickled_global in ("posix.system", "nt.system")
    assert isinstance(back["sched"], Inert) and type(back["sched"]) is type(back["again"])  # one class per global
    assert repr(back["sched"]) == f"<not unpickled: {__name__}.Stateful>"
    assert isinstance(back["call"], Inert) and back["call"].pickled_global == "builtins.getattr()"
    assert sorted(log) == sorted({back["shell"].pickled_global, f"{__name__}.Stateful", "builtins.getattr"})


def test_text_codecs_only() -> None:
    class Rot13:
        def __reduce__(self) -> tuple[Any, ...]:
            return (codecs.encode, ("abc", "rot13"))

    with pytest.raises(pickle.UnpicklingError, match=r"refusing _codecs\.encode with encoding 'rot13'"):
        _load(pickle.dumps(Rot13(), protocol=2), NUMPY_ARRAYS)


def test_allowlist_resolution() -> None:
    assert TORCH_CHECKPOINT.resolve("torch", "float16") is torch.float16
    assert TORCH_CHECKPOINT.resolve("torch", "FloatTensor") is torch.FloatTensor
    assert TORCH_CHECKPOINT.resolve("torch", "load") is None  # a function: never
    assert TORCH_CHECKPOINT.resolve("torch", "no_such_name") is None
    assert TORCH_CHECKPOINT.resolve("numpy.dtypes", "Float64DType") is type(np.dtype("float64"))
    assert TORCH_CHECKPOINT.resolve("collections", "OrderedDict") is collections.OrderedDict
    assert NUMPY_ARRAYS.resolve("torch", "float16") is None and NUMPY_ARRAYS.resolve("numpy.dtypes", "Float64DType") \
        is None
    # a Python-2 module name maps to its Python-3 home before the lookup
    assert _load(b"c__builtin__\nset\n(]K\x01atR.", TORCH_CHECKPOINT) == {1}
    with pytest.raises(ValueError, match="on_unknown must be 'refuse' or 'placeholder', got 'ignore'"):
        RestrictedUnpickler(io.BytesIO(b""), allowlist=NUMPY_ARRAYS, on_unknown="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize("zipfile", [True, False])
def test_torch_load_through_the_pickle_module(tmp_path: Path, zipfile: bool) -> None:
    marker = tmp_path / "pwned"
    weights = {"w": torch.arange(6.0).view(2, 3), "p": torch.nn.Parameter(torch.ones(2))}
    torch.save({"state_dict": weights, "sched": Stateful(), "x": Shell(marker)}, tmp_path / "f.pt",
               _use_new_zipfile_serialization=zipfile)
    log: list[str] = []
    back = torch.load(tmp_path / "f.pt", weights_only=False, pickle_module=RestrictedPickleModule,
                      allowlist=TORCH_CHECKPOINT, on_unknown="placeholder", placeholder_log=log)
    assert torch.equal(back["state_dict"]["w"], weights["w"]) and isinstance(back["state_dict"]["p"],
                                                                              torch.nn.Parameter)
    assert isinstance(back["sched"], Inert) and isinstance(back["x"], Inert) and len(log) == 2
    assert not marker.exists() and TOUCHED == []

"""One record schema (robnet.io.results): provenance, derived seeds, strict JSON, JSON Lines, output checks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import robnet.io.results as results
from robnet.io.results import (
    append_jsonl,
    check_output_path,
    config_hash,
    derive_seed,
    dumps,
    provenance,
    read_jsonl,
    to_jsonable,
    versions,
    write_json,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Cfg:
    lr: float = 0.1
    eps: float = math.nan
    sizes: tuple[int, ...] = (1, 2)


def _strict(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------------------- provenance and seeds


def test_versions_and_provenance_block() -> None:
    import robnet

    v = versions()
    assert set(v) == {"robnet", "torch", "numpy", "python"}
    assert v["robnet"] == robnet.__version__ and v["torch"] == torch.__version__ and v["numpy"] == np.__version__
    p = provenance(seed=3, device=torch.device("cpu"), settings=_Cfg())
    assert list(p) == ["versions", "device", "seed", "deterministic", "created", "settings"]
    assert p["device"] == "cpu" and p["seed"] == 3 and p["deterministic"] is False
    assert p["settings"] == {"lr": 0.1, "eps": None, "sizes": [1, 2]}  # asdict, NaN -> null
    created = dt.datetime.fromisoformat(p["created"])
    assert created.tzinfo is not None and abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 60
    assert provenance(seed=None)["device"] is None and provenance(seed=None)["settings"] is None


def test_provenance_records_deterministic_algorithms() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert provenance(seed=0)["deterministic"] is True
    finally:
        torch.use_deterministic_algorithms(before)


def test_derive_seed_is_a_stable_blake2b_of_the_keys() -> None:
    def reference(*keys: int | str) -> int:
        text = "\x1f".join(f"{type(k).__name__}:{k}" for k in keys)
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1

    assert derive_seed(0) == reference(0) == 6711488920161924273  # same on every machine and Python
    assert derive_seed(0, "candidate", 17) == reference(0, "candidate", 17) == 733022066708999812
    assert derive_seed("0") != derive_seed(0)  # the key's type is part of it
    assert derive_seed(1, 2) != derive_seed(2, 1) and derive_seed(12) != derive_seed(1, 2)
    seeds = {derive_seed(0, "c", i) for i in range(1000)}
    assert len(seeds) == 1000 and all(0 <= s < 2**63 for s in seeds)
    torch.Generator().manual_seed(max(seeds))  # usable as a torch seed
    with pytest.raises(ValueError, match="derive_seed needs at least one key"):
        derive_seed()
    for bad in (1.5, True, None, (1,)):
        with pytest.raises(TypeError, match="derive_seed keys must be int or str"):
            derive_seed(0, bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- strict JSON


def test_to_jsonable() -> None:
    data = {
        1: (1, 2.5, math.inf),
        "set": {3},
        "path": Path("/a/b"),
        "np": [np.float32(0.5), np.int64(7), np.bool_(True), np.float64("nan")],
        "arr": np.array([[1.0, np.nan]]),
        "t": torch.tensor([1.5, float("-inf")]),
        "t0": torch.tensor(3),
        "cfg": _Cfg(lr=0.2),
        "flags": [True, False, None],
        "dev": torch.device("cuda", 1),
    }
    assert to_jsonable(data) == {
        "1": [1, 2.5, None], "set": [3], "path": "/a/b", "np": [0.5, 7, True, None], "arr": [[1.0, None]],
        "t": [1.5, None], "t0": 3, "cfg": {"lr": 0.2, "eps": None, "sizes": [1, 2]}, "flags": [True, False, None],
        "dev": "cuda:1",
    }
    assert to_jsonable(True) is True and to_jsonable(np.bool_(False)) is False


def test_dumps_is_strict_and_write_json_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = dumps({"a": math.nan, "b": [math.inf, -math.inf, 1.0]})
    assert text == '{"a": null, "b": [null, null, 1.0]}'
    target = tmp_path / "r.json"
    assert write_json(target, {"x": math.nan, "y": 1}) == target
    assert _strict(target.read_text()) == {"x": None, "y": 1} and target.read_text().endswith("}\n")
    # a failure while replacing leaves the old file and no temporary behind
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_json(target, {"y": 2})
    assert _strict(target.read_text()) == {"x": None, "y": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_config_hash() -> None:
    h = config_hash({"b": 1, "a": [1, 2]})
    expected = hashlib.sha256(b'{"a":[1,2],"b":1}').hexdigest()[:16]
    assert h == expected == "94a786c3662bc7be"
    assert config_hash({"a": [1, 2], "b": 1}) == h  # key order does not matter
    assert config_hash({"a": [2, 1], "b": 1}) != h
    assert config_hash(_Cfg()) == config_hash({"lr": 0.1, "eps": None, "sizes": [1, 2]})


# ----------------------------------------------------------------------------- JSON Lines


def test_append_and_read_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    assert read_jsonl(path) == results.JsonlRead([], False)
    append_jsonl(path, {"i": 0, "v": math.nan})
    append_jsonl(path, [{"i": 1}, {"i": 2}])
    append_jsonl(path, [])  # no-op
    assert path.read_text() == '{"i": 0, "v": null}\n{"i": 1}\n{"i": 2}\n'
    assert read_jsonl(path) == results.JsonlRead([{"i": 0, "v": None}, {"i": 1}, {"i": 2}], False)


@pytest.mark.parametrize("tail", ['{"i": 2', '{"i": 2}', '{"i"'])
def test_torn_tail_is_dropped_and_repaired(tail: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"i": 0}\n{"i": 1}\n' + tail)
    read = read_jsonl(path)
    assert read.records == [{"i": 0}, {"i": 1}] and read.torn_tail
    assert "dropped a torn last line" in caplog.text
    assert path.read_text().endswith(tail)  # reading alone does not change the file
    assert read_jsonl(path, repair=True).torn_tail
    assert path.read_text() == '{"i": 0}\n{"i": 1}\n'
    assert read_jsonl(path) == results.JsonlRead([{"i": 0}, {"i": 1}], False)


def test_append_after_a_torn_tail_keeps_the_new_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: the new record was glued onto the torn fragment and that line was then dropped as torn,
    silently losing a complete record (a resumed run appending to its log after a kill)."""
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"i": 0})
    with open(path, "a") as f:
        f.write('{"i": 1, "partial')  # a writer killed mid-append
    append_jsonl(path, {"i": 2})
    assert "cut a torn last line (17 bytes) before appending" in caplog.text
    assert path.read_text() == '{"i": 0}\n{"i": 2}\n'
    assert read_jsonl(path) == results.JsonlRead([{"i": 0}, {"i": 2}], False)
    only_fragment = tmp_path / "frag.jsonl"
    only_fragment.write_text('{"i": ')
    append_jsonl(only_fragment, {"i": 9})
    assert only_fragment.read_text() == '{"i": 9}\n'


def test_bad_lines_in_the_middle_raise(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(ValueError, match=r"line 2 is not valid JSON .* not written by append_jsonl"):
        read_jsonl(path)
    path.write_text('{"i": 0}\n[1, 2]\n{"i": 2}\n')
    with pytest.raises(ValueError, match="line 2 holds a list, expected a JSON object"):
        read_jsonl(path)


# ----------------------------------------------------------------------------- output paths


def test_check_output_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"w")
    assert check_output_path(tmp_path / "new.json", inputs=[ckpt]) == tmp_path / "new.json"
    existing = tmp_path / "old.json"
    existing.write_text("{}")
    assert check_output_path(existing, inputs=[ckpt]) == existing  # overwriting an old output is fine
    with pytest.raises(ValueError, match=rf"^--json {tmp_path} is a folder: give a file name$"):
        check_output_path(tmp_path, what="--json")
    with pytest.raises(ValueError, match=rf"^output {tmp_path}/no/x\.json: folder {tmp_path}/no does not exist"):
        check_output_path(tmp_path / "no" / "x.json")
    link, hard = tmp_path / "link.pt", tmp_path / "hard.pt"
    link.symlink_to(ckpt)
    os.link(ckpt, hard)
    for same in (ckpt, tmp_path / "." / "m.pt", link, hard):
        with pytest.raises(ValueError, match=r"is the input file .*: refusing to write over an input$"):
            check_output_path(same, inputs=[ckpt])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="refusing to write over an input"):
        check_output_path("m.pt", inputs=[str(ckpt)])
    monkeypatch.setattr(results.os, "access", lambda p, mode: False)
    with pytest.raises(ValueError, match=rf"^output {existing} is not writable$"):
        check_output_path(existing)
    with pytest.raises(ValueError, match=rf"^output {tmp_path}/n\.json: folder {tmp_path} is not writable$"):
        check_output_path(tmp_path / "n.json")

"""Checkpoints: round trips, atomic writes, plain-data meta, every read error, crafted files.

Official RobNets checkpoints (load_official, load_any, detect_format) are tested in test_official.py;
the tests here that also call them check errors both readers share.
"""

from __future__ import annotations

import logging
import os
import random
import shlex
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from robnet.io import checkpoint as ck
from robnet.io import official as of
from robnet.models import arch as A
from robnet.models.genotype import sample
from robnet.models.network import RobNet
from robnet.models.zoo import build_model
from tests.robnet.io._checkpoint_models import FLIPPED, SMALL, FlipScheduler, assert_same_state, batch, small_model


def _flip(tag: str) -> str:
    FLIPPED.append(tag)
    return tag


class FlipOnReduce:
    """Unpickling calls _flip: what a malicious __reduce__ looks like."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_flip, ("reduce",))


class RunsShell:
    """Unpickling would run a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


# ----------------------------------------------------------------------------- round trips


def test_round_trip_zoo_dict_with_overrides(tmp_path: Path, small: nn.Module) -> None:
    meta_in = {"epoch": 3, "cfg": {"lr": 0.1, "tags": ["a", 1]}}
    path = ck.save(tmp_path / "m.pt", small, arch=SMALL, meta=meta_in)
    model, meta = ck.load(path)
    assert meta == meta_in
    assert isinstance(model, RobNet) and not model.training
    assert_same_state(small, model)
    with torch.no_grad():
        assert torch.equal(model(batch()), small(batch()))
    raw = ck.load_raw(path)
    assert raw["arch"] == {"name": "robnet_large", "num_classes": 10, "C": 8, "layers": 5}
    assert raw["format"] == "robnet-checkpoint" and raw["version"] == 1 and raw["extra"] == {}
    assert raw["created_with"]["torch"] == str(torch.__version__)
    assert of.detect_format(path) == "robnet"


def test_round_trip_zoo_name(tmp_path: Path) -> None:
    model = build_model("robnet_large")
    path = ck.save(tmp_path / "large.pt", model, arch="robnet_large")
    loaded, meta = ck.load(path)
    assert meta == {}
    assert ck.load_raw(path)["arch"] == {"name": "robnet_large", "num_classes": 10}
    assert_same_state(model, loaded)
    # docs/design.md §1 parameter count, from the recorded arch alone (meta device: no memory).
    with torch.device("meta"):
        assert sum(p.numel() for p in A.build_from_arch("robnet_large").parameters()) == 6_842_710


@pytest.mark.parametrize("cell_free", [False, True])
def test_round_trip_custom_genotype(tmp_path: Path, cell_free: bool) -> None:
    genotype = sample(random.Random(7), cell_free=cell_free, layers=3)
    arch = {"genotype": str(genotype), "C": 4, "layers": 3, "num_classes": 7, "denoise": [1]}
    torch.manual_seed(1)
    model = A.build_from_arch(arch).eval()
    path = ck.save(tmp_path / "g.pt", model, arch=arch)
    loaded, _ = ck.load(path)
    norm = {"genotype": str(genotype), "C": 4, "layers": 3, "num_classes": 7, "in_channels": 3,
            "imagenet_stem": False, "denoise": [1]}
    assert ck.load_raw(path)["arch"] == norm
    assert isinstance(loaded, RobNet) and loaded.genotype == genotype
    assert_same_state(model, loaded)
    with torch.no_grad():
        assert torch.equal(loaded(batch(2, 16)), model(batch(2, 16)))
    # arch=None describes a RobNet from its attributes: the same normalized dict.
    assert A.arch_from_model(model) == norm
    ck.save(tmp_path / "auto.pt", model)
    assert ck.load_raw(tmp_path / "auto.pt")["arch"] == norm


def test_extra_round_trip_for_resume(tmp_path: Path) -> None:
    model = small_model(seed=2, layers=3, C=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for i, p in enumerate(model.parameters()):
        p.grad = torch.full_like(p, float(i))
    opt.step()
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    opt.step()
    sched.step()
    gen = torch.Generator().manual_seed(5)
    extra = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "torch_rng": gen.get_state(),
             "np_rng": np.random.default_rng(3).bit_generator.state, "py_rng": random.Random(4).getstate()}
    ck.save(tmp_path / "r.pt", model, arch={"name": "robnet_large", "C": 4, "layers": 3}, extra=extra)
    raw = ck.load_raw(tmp_path / "r.pt")
    opt2 = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.0)
    opt2.load_state_dict(raw["extra"]["optimizer"])
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"] and opt2.param_groups[0]["momentum"] == 0.9
    buf = opt.state_dict()["state"][0]["momentum_buffer"]
    assert torch.equal(opt2.state_dict()["state"][0]["momentum_buffer"], buf)
    assert raw["extra"]["scheduler"] == sched.state_dict()
    gen2 = torch.Generator()
    gen2.set_state(raw["extra"]["torch_rng"])
    assert torch.equal(torch.rand(5, generator=gen2), torch.rand(5, generator=gen))
    assert raw["extra"]["np_rng"] == np.random.default_rng(3).bit_generator.state
    r = random.Random()
    r.setstate(raw["extra"]["py_rng"])
    assert r.random() == random.Random(4).random()


def test_wrappers_are_unwrapped_on_save(tmp_path: Path, small: nn.Module) -> None:
    ck.save(tmp_path / "dp.pt", nn.DataParallel(small), arch=SMALL)
    assert not any(k.startswith("module.") for k in ck.load_raw(tmp_path / "dp.pt")["state_dict"])


# ----------------------------------------------------------------------------- saving: checks


def test_atomic_write_leaves_no_tmp_and_keeps_old_file_on_failure(tmp_path: Path, small: nn.Module,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ckpt.pt"
    ck.save(path, small, arch=SMALL, meta={"epoch": 1})
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    before = path.read_bytes()

    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        ck.save(path, small, arch=SMALL, meta={"epoch": 2})
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert path.read_bytes() == before
    monkeypatch.undo()
    assert ck.load(path)[1] == {"epoch": 1}


def test_save_creates_parent_directories(tmp_path: Path, small: nn.Module) -> None:
    path = ck.save(tmp_path / "a" / "b" / "m.pt", small, arch=SMALL)
    assert path.is_file()


@pytest.mark.parametrize(("meta", "match"), [
    ({"cfg": {"fn": print}}, r"meta\['cfg'\]\['fn'\] is builtin_function_or_method .*Hint: store its name"),
    ({"acc": np.float64(0.5)}, r"meta\['acc'\] is float64 .*Hint: convert it with float\(\)"),
    ({"v": torch.__version__}, r"meta\['v'\] is TorchVersion .*Hint: convert it with str\(\)"),
    ({"t": torch.zeros(2)}, r"meta\['t'\] is Tensor .*Hint: convert it with \.item\(\) or \.tolist\(\)"),
    ({"xs": [1, {2}]}, r"meta\['xs'\]\[1\] is set"),
    ({"d": {1: "a"}}, r"meta\['d'\] has key 1 of type int; expected str keys"),
])
def test_meta_must_be_plain_data(tmp_path: Path, small: nn.Module, meta: dict[str, Any], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        ck.save(tmp_path / "m.pt", small, arch=SMALL, meta=meta)
    assert not (tmp_path / "m.pt").exists()


def test_extra_must_be_tensors_and_plain_data(tmp_path: Path, small: nn.Module) -> None:
    with pytest.raises(TypeError, match=r"extra\['sched'\] is FlipScheduler"):
        ck.save(tmp_path / "m.pt", small, arch=SMALL, extra={"sched": FlipScheduler()})


def test_save_checks_arch_against_model(tmp_path: Path, small: nn.Module) -> None:
    with pytest.raises(ValueError, match=r"arch robnet_large \(num_classes=100, C=8, layers=5\) does not "
                                         r"describe this RobNet: 2 shape mismatches \(classifier.weight: "
                                         r"checkpoint \(10, 128\) vs model \(100, 128\)"):
        ck.save(tmp_path / "m.pt", small, arch={**SMALL, "num_classes": 100})
    with pytest.raises(ValueError, match=r"does not describe this RobNet: .* missing keys"):
        ck.save(tmp_path / "m.pt", small, arch="robnet_large")
    with pytest.raises(ValueError, match=r"unknown architecture 'robnet_larg'\. Did you mean robnet_large"):
        ck.save(tmp_path / "m.pt", small, arch="robnet_larg")
    with pytest.raises(TypeError, match="cannot describe a CifarResNet as data"):
        A.arch_from_model(build_model("resnet18", num_classes=2))


# ----------------------------------------------------------------------------- read errors


@pytest.fixture
def saved(tmp_path: Path, small: nn.Module) -> Path:
    return ck.save(tmp_path / "good.pt", small, arch=SMALL)


@pytest.mark.parametrize("loader", [ck.load, ck.load_raw, of.detect_format, of.load_any])
def test_missing_file(tmp_path: Path, loader: Any) -> None:
    with pytest.raises(ck.CheckpointError, match=r"^checkpoint not found: .*nope\.pt$"):
        loader(tmp_path / "nope.pt")
    with pytest.raises(ck.CheckpointError, match="is a directory"):
        loader(tmp_path)


@pytest.mark.parametrize("damage", ["half", "garbage", "empty", "flipped"])
def test_truncated_or_corrupt(saved: Path, damage: str) -> None:
    data = saved.read_bytes()
    if damage == "half":
        saved.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        saved.write_bytes(np.random.default_rng(0).bytes(4096))
    elif damage == "empty":
        saved.write_bytes(b"")
    else:  # keep the zip directory, damage the pickle
        start = data.index(b"data.pkl") + 40
        saved.write_bytes(data[:start] + bytes(200) + data[start + 200:])
    pattern = r"^cannot read checkpoint .*good\.pt: file is truncated or corrupt \(\w+: .+\)$"
    for loader in (ck.load, of.detect_format, lambda p: of.load_official(p, SMALL)):
        with pytest.raises(ck.CheckpointError, match=pattern) as info:
            loader(saved)
        assert "\n" not in str(info.value)


def test_pickle_asking_for_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "robnet-checkpoint", "version": 1, "x": RunsShell(marker), "y": FlipOnReduce()},
               path)
    with pytest.raises(ck.CheckpointError, match=r"^checkpoint .*evil\.pt asks to run code \(globals "
                                                 r"'\w+\.system', '[\w.]*_flip'\); refusing to unpickle it\. "
                                                 r"Hint: if it is an official RobNets checkpoint use "
                                                 r"load_official / --arch$"):
        ck.load(path)
    with pytest.raises(ck.CheckpointError, match="asks to run code"):
        ck.load_raw(path)
    # Claims our format but needs code: load_any refuses too; the restricted reader ran nothing.
    with pytest.raises(ck.CheckpointError, match="asks to run code"):
        of.load_any(path, arch=SMALL)
    assert of.detect_format(path) == "official"
    # Not our format and no state_dict: the restricted reader still executes nothing.
    torch.save({"x": RunsShell(marker), "y": FlipOnReduce()}, tmp_path / "evil2.pt")
    with pytest.raises(ck.CheckpointError, match=r"cannot find a state_dict in checkpoint .*'x', 'y'"):
        of.load_official(tmp_path / "evil2.pt", SMALL)
    assert not marker.exists()
    assert FLIPPED == []


def test_not_a_robnet_checkpoint_needs_arch(tmp_path: Path, small: nn.Module) -> None:
    torch.save({"state_dict": small.state_dict()}, tmp_path / "o.pt")
    expected = (r"o\.pt is not a robnet checkpoint \(no 'arch' recorded\): pass --arch NAME, "
                r"e\.g\. --arch robnet_free")
    with pytest.raises(ck.CheckpointError, match=expected):
        of.load_any(tmp_path / "o.pt")
    with pytest.raises(ck.CheckpointError, match=expected):
        ck.load(tmp_path / "o.pt")
    assert of.detect_format(tmp_path / "o.pt") == "official"


def test_newer_format_version(saved: Path) -> None:
    payload = torch.load(saved, weights_only=True)
    torch.save({**payload, "version": 2}, saved)
    with pytest.raises(ck.CheckpointError, match=r"format version 2, newer than this robnet reads \(1\)"):
        ck.load(saved)


def _tampered_state(model: nn.Module) -> dict[str, torch.Tensor]:
    sd = dict(model.state_dict())
    del sd["cells.0.preprocess0.op.1.weight"]
    sd["extra.weight"] = torch.zeros(3)
    sd["classifier.weight"] = torch.zeros(100, 128)
    sd["classifier.bias"] = torch.zeros(100)
    return sd


def test_wrong_architecture_lists_keys_and_shapes(tmp_path: Path, small: nn.Module) -> None:
    payload = torch.load(ck.save(tmp_path / "m.pt", small, arch=SMALL), weights_only=True)
    torch.save({**payload, "state_dict": _tampered_state(small)}, tmp_path / "m.pt")
    expected = (r"^checkpoint .*m\.pt does not match architecture robnet_large \(num_classes=10, C=8, "
                r"layers=5\): 1 missing keys \(cells\.0\.preprocess0\.op\.1\.weight\), "
                r"1 unexpected keys \(extra\.weight\), "
                r"2 shape mismatches \(classifier\.weight: checkpoint \(100, 128\) vs model \(10, 128\), "
                r"classifier\.bias: checkpoint \(100,\) vs model \(10,\)\)\. "
                r"Hint: the checkpoint has 100 classes; pass num_classes=100$")
    with pytest.raises(ck.CheckpointError, match=expected):
        ck.load(tmp_path / "m.pt")
    torch.save({"state_dict": _tampered_state(small)}, tmp_path / "o.pt")
    with pytest.raises(ck.CheckpointError, match=expected.replace(r"m\.pt", r"o\.pt")):
        of.load_official(tmp_path / "o.pt", SMALL, num_classes=10)


def test_wrong_architecture_lists_first_five(tmp_path: Path, small: nn.Module) -> None:
    torch.save({"state_dict": small.state_dict()}, tmp_path / "o.pt")
    with pytest.raises(ck.CheckpointError) as info:
        of.load_official(tmp_path / "o.pt", {"name": "robnet_large", "C": 8, "layers": 6})
    msg = str(info.value)
    report = _compare(small, A.build_from_arch({"name": "robnet_large", "C": 8, "layers": 6}))
    assert f"{len(report[0])} missing keys ({', '.join(report[0][:5])}, ...)" in msg
    assert f"{len(report[2])} shape mismatches (" in msg


def _compare(ckpt: nn.Module, model: nn.Module) -> tuple[list[str], list[str], list[str]]:
    a, b = ckpt.state_dict(), model.state_dict()
    return ([k for k in b if k not in a], [k for k in a if k not in b],
            [k for k in a if k in b and a[k].shape != b[k].shape])


def test_strict_false_tolerates_missing_and_unexpected_only(tmp_path: Path, small: nn.Module,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    sd = dict(small.state_dict())
    removed = sd.pop("cells.0.preprocess0.op.1.weight")
    sd["extra.weight"] = torch.zeros(3)
    torch.save({"state_dict": sd}, tmp_path / "o.pt")
    with caplog.at_level(logging.WARNING, logger="robnet.io.checkpoint"):
        model, _ = of.load_official(tmp_path / "o.pt", SMALL, strict=False)
    assert "1 missing keys" in caplog.text and "1 unexpected keys" in caplog.text
    assert torch.equal(model.state_dict()["classifier.weight"], small.state_dict()["classifier.weight"])
    assert not torch.equal(model.state_dict()["cells.0.preprocess0.op.1.weight"], removed)
    with pytest.raises(ck.CheckpointError, match="shape mismatches"):
        of.load_official(tmp_path / "o.pt", {**SMALL, "num_classes": 3}, strict=False)


# ----------------------------------------------------------------------------- crafted files


def _crafted(tmp_path: Path, small: nn.Module, **changes: Any) -> Path:
    payload = torch.load(ck.save(tmp_path / "c.pt", small, arch=SMALL), weights_only=True)
    torch.save({**payload, **changes}, tmp_path / "c.pt")
    return tmp_path / "c.pt"


def _metadata(state_dict: dict[str, torch.Tensor], metadata: Any) -> OrderedDict[str, torch.Tensor]:
    out = OrderedDict(state_dict)
    out._metadata = metadata  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize(("change", "match"), [
    # an OrderedDict state_dict whose _metadata load_state_dict trusts: was TypeError / AttributeError
    ({"state_dict": "version"}, r"is damaged: its state_dict's _metadata is not torch's \{prefix: \{'version': "
                                r"int\}\} \(got dict \{'': \{'version': 'x'\}\}\)$"),
    ({"state_dict": "int"}, r"_metadata is not torch's .* \(got int 7\)$"),
    # arch overrides the builder does not take, or of the wrong type: were TypeErrors from RobNet.__init__
    ({"arch": {**SMALL, "bogus": 1}}, r"records an unusable arch .*unknown key\(s\) \['bogus'\] for zoo model "),
    ({"arch": {**SMALL, "C": "8"}}, r"records an unusable arch .*arch\['C'\] must be an int, got str"),
    ({"arch": {**SMALL, "denoise": [1, "a"]}}, r"cannot build its architecture: denoise must hold cell indices"),
    ({"arch": OrderedDict(name="robnet_large", C=8, layers=5, in_channels=2)},
     r"does not match architecture robnet_large \(num_classes=10, C=8, layers=5, in_channels=2\): 1 shape "),
])
def test_crafted_checkpoints_raise_checkpoint_error(tmp_path: Path, small: nn.Module, change: dict[str, Any],
                                                    match: str) -> None:
    key, value = next(iter(change.items()))
    if key == "state_dict":
        value = _metadata(small.state_dict(), {"": {"version": "x"}} if value == "version" else 7)
    path = _crafted(tmp_path, small, **{key: value})
    for loader in (ck.load, of.load_any):
        with pytest.raises(ck.CheckpointError, match=match) as info:
            loader(path)
        assert "\n" not in str(info.value)


def test_genuine_metadata_still_loads(tmp_path: Path, small: nn.Module) -> None:
    path = ck.save(tmp_path / "m.pt", small, arch=SMALL)
    assert getattr(ck.load_raw(path)["state_dict"], "_metadata", None)  # torch wrote versions
    assert_same_state(small, ck.load(path)[0])


def test_absurd_recorded_arch_is_refused_before_building(tmp_path: Path, small: nn.Module,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = _crafted(tmp_path, small, arch={"name": "robnet_large", "C": 4096, "layers": 10_000})

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a module was built")

    monkeypatch.setattr(RobNet, "__init__", never)
    with pytest.raises(ck.CheckpointError, match=r"^checkpoint .*c\.pt: cannot build its architecture: arch "
                                                 r"robnet_large \(num_classes=10, C=4096, layers=10000\) would have "
                                                 r"39,957,224,345,610 parameters .*refusing to build it"):
        of.load_any(path)


def test_checkpoint_reexports_nothing_it_does_not_own() -> None:
    assert set(ck.__all__) == {"FORMAT", "VERSION", "CheckpointError", "load", "load_raw", "save"}

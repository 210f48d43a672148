"""load_model and --arch MODULE:CALLABLE: a user's own CNN from a module file, saved as a plain state_dict,
as safetensors and as a whole pickle; wrapper prefixes; wrong architectures; the pickle opt-in."""

from __future__ import annotations

import importlib
import json
import logging
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from robnet.io import checkpoint as ck
from robnet.io.external import ArchSpec, parse_arch_kwargs, resolve_arch
from robnet.io.models import load_model
from robnet.models.arch import check_data
from robnet.models.normalize import NormalizedModel
from robnet.models.zoo import build_model
from tests._paths import DATA

USER_MODULE = '''
import torch
from torch import nn


class ConvBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class UserCNN(nn.Module):
    def __init__(self, num_classes=10, width=4):
        super().__init__()
        self.features = nn.Sequential(ConvBlock(3, width), ConvBlock(width, width), nn.MaxPool2d(2),
                                      ConvBlock(width, 2 * width))
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


class OtherCNN(nn.Module):
    """Same layers under other names: a wrong architecture for UserCNN's weights."""

    def __init__(self, num_classes=10, width=4):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(3, width), ConvBlock(width, width), nn.MaxPool2d(2),
                                  ConvBlock(width, 2 * width))
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.classifier(self.body(x).mean((2, 3)))


class HasModuleChild(nn.Module):
    """Uses 'module' as a top-level name: its keys must not lose that prefix."""

    def __init__(self):
        super().__init__()
        self.module = nn.Conv2d(3, 2, 1)

    def forward(self, x):
        return self.module(x)


def make_cnn(num_classes=10, width=4):
    return UserCNN(num_classes=num_classes, width=width)


def make_other(num_classes=10, width=4):
    return OtherCNN(num_classes=num_classes, width=width)


def not_a_model(**kwargs):
    return {"weights": 1}


def broken(num_classes=10):
    raise RuntimeError("factory exploded")


class Builders:
    @staticmethod
    def small(num_classes=10):
        return UserCNN(num_classes=num_classes, width=2)


CONSTANT = 3
'''


@pytest.fixture
def usernets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A user's module file in tmp_path (the current directory), under a name unique to the test."""
    name = f"usernets_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(tmp_path))  # only for the test's own import: load_model must find it from the cwd
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
    yield module
    sys.modules.pop(name, None)


def _trained(module: ModuleType, seed: int = 0, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)
    model = module.make_cnn(**kwargs)
    for m in model.modules():  # non-trivial BN statistics: eval outputs depend on the buffers too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)
    return model.eval()


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_user_cnn_round_trip_through_module_callable(usernets: ModuleType, tmp_path: Path, kind: str) -> None:
    model = _trained(usernets, width=3, num_classes=5)
    path = tmp_path / f"m.{kind}"
    if kind == "pt":
        torch.save(model.state_dict(), path)
    else:
        save_file(model.state_dict(), str(path), metadata={"format": "pt", "note": "mine"})
    target = f"{usernets.__name__}:make_cnn"
    loaded, info = load_model(path, arch=target, arch_kwargs=parse_arch_kwargs('{"width": 3, "num_classes": 5}'))
    assert type(loaded) is usernets.UserCNN and not loaded.training
    _assert_same(model, loaded)
    assert info["format"] == ("state_dict" if kind == "pt" else "safetensors")
    assert info["arch"] == {"factory": target, "kwargs": {"width": 3, "num_classes": 5}}
    assert info["stripped_prefix"] is None and info["normalize"] is None and info["path"] == str(path)
    if kind == "safetensors":  # the header's metadata is kept, a clash with info's own keys renamed
        assert info["unpickler"] is None and info["meta"] == {"checkpoint.format": "pt", "note": "mine"}
    else:
        assert info["unpickler"] == "weights_only" and info["meta"] == {}
    check_data(info, "info")
    json.dumps(info)


def test_state_dict_under_a_key_with_extras(usernets: ModuleType, tmp_path: Path) -> None:
    model = _trained(usernets)
    torch.save({"state_dict": model.state_dict(), "epoch": 12, "best_acc": torch.tensor(0.5)}, tmp_path / "o.pt")
    loaded, info = load_model(tmp_path / "o.pt", arch=f"{usernets.__name__}:make_cnn")
    _assert_same(model, loaded)
    assert info["meta"] == {"epoch": 12, "best_acc": 0.5}


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_wrapper_prefixes_are_stripped(usernets: ModuleType, tmp_path: Path, prefix: str, kind: str) -> None:
    model = _trained(usernets)
    wrapped = {prefix + k: v for k, v in model.state_dict().items()}
    path = tmp_path / f"w.{kind}"
    torch.save(wrapped, path) if kind == "pt" else save_file(wrapped, str(path))
    loaded, info = load_model(path, arch=f"{usernets.__name__}:make_cnn")
    _assert_same(model, loaded)
    assert info["stripped_prefix"] == prefix


def test_dataparallel_state_dict_loads(usernets: ModuleType, tmp_path: Path) -> None:
    model = _trained(usernets)
    torch.save(nn.DataParallel(model).state_dict(), tmp_path / "dp.pt")  # keys 'module.*' (CPU: no GPU needed)
    loaded, info = load_model(tmp_path / "dp.pt", arch=f"{usernets.__name__}:make_cnn")
    _assert_same(model, loaded)
    assert info["stripped_prefix"] == "module."


def test_a_model_that_uses_the_name_module_keeps_its_keys(usernets: ModuleType, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = usernets.HasModuleChild()
    torch.save(model.state_dict(), tmp_path / "h.pt")  # keys 'module.weight', 'module.bias'
    loaded, info = load_model(tmp_path / "h.pt", arch=f"{usernets.__name__}:HasModuleChild")
    _assert_same(model, loaded)
    assert info["stripped_prefix"] is None


def test_zoo_arch_takes_its_class_count_from_the_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("robnet_large", C=4, layers=3, num_classes=7).eval()
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "z.pt")
    loaded, info = load_model(tmp_path / "z.pt", arch="robnet_large", arch_kwargs={"C": 4, "layers": 3})
    _assert_same(model, loaded)
    assert info["arch"] == {"name": "robnet_large", "num_classes": 7, "C": 4, "layers": 3}
    assert info["format"] == "state_dict" and info["stripped_prefix"] == "module."


def test_official_reference_checkpoint_reproduces_its_logits(tmp_path: Path) -> None:
    path = DATA / "ref_robnet_large_C8_L5.pt"
    if not path.exists():
        pytest.skip(f"reference file {path} is absent (copy it from shared/reference)")
    ref = torch.load(path, weights_only=True)
    model, info = load_model(path, arch="robnet_large", arch_kwargs={"C": 8, "layers": 5})
    with torch.no_grad():
        torch.testing.assert_close(model(ref["input"]), ref["logits"], rtol=0, atol=1e-5)
    assert info["format"] == "state_dict" and info["ignored"] == ["input", "logits"]
    # the same weights as safetensors, DDP-prefixed
    save_file({"module." + k: v.contiguous() for k, v in ref["state_dict"].items()}, str(tmp_path / "r.safetensors"))
    again, info = load_model(tmp_path / "r.safetensors", arch="robnet_large", arch_kwargs={"C": 8, "layers": 5})
    with torch.no_grad():
        torch.testing.assert_close(again(ref["input"]), ref["logits"], rtol=0, atol=1e-5)
    assert info["stripped_prefix"] == "module." and info["arch"]["num_classes"] == ref["logits"].shape[1]


def test_our_checkpoint_records_its_arch(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    model = build_model("robnet_large", C=4, layers=3).eval()
    ck.save(tmp_path / "ours.pt", model, arch={"name": "robnet_large", "C": 4, "layers": 3}, meta={"epoch": 2})
    loaded, info = load_model(tmp_path / "ours.pt")
    _assert_same(model, loaded)
    assert info["format"] == "robnet" and info["meta"] == {"epoch": 2}
    assert info["arch"] == {"name": "robnet_large", "num_classes": 10, "C": 4, "layers": 3}
    with caplog.at_level(logging.WARNING, logger="robnet.io.models"):
        load_model(tmp_path / "ours.pt", arch="resnet18")
    assert "ignoring arch resnet18" in caplog.text


def test_normalize_wraps_the_loaded_model(usernets: ModuleType, tmp_path: Path) -> None:
    model = _trained(usernets)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    loaded, info = load_model(tmp_path / "m.pt", arch=f"{usernets.__name__}:make_cnn", normalize="cifar10")
    assert isinstance(loaded, NormalizedModel) and not loaded.training
    assert info["normalize"] == {"name": "cifar10", "mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616]}
    x = torch.rand(2, 3, 8, 8)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.equal(loaded(x), model((x - mean) / std))
    with pytest.raises(ValueError, match="normalization 'cifar' is neither a known dataset nor numbers"):
        load_model(tmp_path / "m.pt", arch=f"{usernets.__name__}:make_cnn", normalize="cifar")


# ----------------------------------------------------------------------------- wrong architectures


@pytest.mark.parametrize("kind", ["pt", "safetensors"])
def test_wrong_architecture_is_one_line_naming_missing_and_unexpected_keys(usernets: ModuleType, tmp_path: Path,
                                                                            kind: str) -> None:
    model = _trained(usernets)
    path = tmp_path / f"m.{kind}"
    torch.save(model.state_dict(), path) if kind == "pt" else save_file(model.state_dict(), str(path))
    target = f"{usernets.__name__}:make_other"
    with pytest.raises(ck.CheckpointError) as info:
        load_model(path, arch=target)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"checkpoint {path} does not match architecture {target}: 20 missing keys "
                              "(body.0.conv.weight, body.0.bn.weight, body.0.bn.bias, ")
    assert "20 unexpected keys (features.0." in message  # file order: safetensors sorts its keys
    assert message.endswith("Hint: check --arch and --arch-kwargs against the model the file was saved from")
    with pytest.raises(ck.CheckpointError, match=r"2 shape mismatches \(.*head\.weight: checkpoint \(10, 8\) vs model "
                                                 r"\(3, 8\).*Hint: the checkpoint has 10 classes; pass "
                                                 "num_classes=10$"):
        load_model(path, arch=f"{usernets.__name__}:make_cnn", arch_kwargs={"num_classes": 3})


def test_file_without_arch_names_the_flag(usernets: ModuleType, tmp_path: Path) -> None:
    torch.save(_trained(usernets).state_dict(), tmp_path / "m.pt")
    save_file(_trained(usernets).state_dict(), str(tmp_path / "m.safetensors"))
    for name, what in (("m.pt", "a state_dict"), ("m.safetensors", "safetensors weights")):
        with pytest.raises(ck.CheckpointError, match=rf"m\.{name[2:]} holds {what} but no architecture: pass --arch "
                                                     r"NAME \(a zoo name\) or --arch MODULE:CALLABLE"):
            load_model(tmp_path / name)
    with pytest.raises(ValueError, match=r"--arch-kwargs \{'width': 3\} given without --arch"):
        load_model(tmp_path / "m.pt", arch_kwargs={"width": 3})


def test_damaged_safetensors_is_one_line(tmp_path: Path, usernets: ModuleType) -> None:
    save_file(_trained(usernets).state_dict(), str(tmp_path / "m.safetensors"))
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match=r"^cannot read safetensors file .*cut\.safetensors: file is "
                                                 r"truncated or corrupt \(\w+: [^\n]*\)$"):
        load_model(tmp_path / "cut.safetensors", arch=f"{usernets.__name__}:make_cnn")


# ----------------------------------------------------------------------------- whole pickles


class WritesFile(nn.Module):
    """A 'model' whose unpickling writes a file: what a hostile checkpoint looks like."""

    def __init__(self, marker: Path) -> None:
        super().__init__()
        self.marker = str(marker)
        self.conv = nn.Conv2d(3, 3, 1)

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("wrap", [False, True])
def test_hostile_pickle_is_refused_naming_the_flag_and_runs_nothing(tmp_path: Path, wrap: bool) -> None:
    marker = tmp_path / "pwned"
    payload: Any = WritesFile(marker)
    torch.save({"model": payload, "epoch": 1} if wrap else payload, tmp_path / "evil.pt")
    with pytest.raises(ck.CheckpointError) as info:
        load_model(tmp_path / "evil.pt", arch="resnet18")
    message = str(info.value)
    assert "\n" not in message and "holds a pickled builtins.exec object, not a state_dict" in message
    assert "Hint: if you trust the file, pass --unsafe-pickle (Python: load_model(..., allow_pickle=True)), which " \
           "runs the file's code" in message
    assert not marker.exists()
    # the opt-in really unpickles (and so runs the file's code: here it builds no model)
    got = "a dict without a torch.nn.Module under 'state_dict'" if wrap else "a NoneType"
    with pytest.raises(ck.CheckpointError, match=f"unpickled to {got}.*, not a torch.nn.Module"):
        load_model(tmp_path / "evil.pt", allow_pickle=True)
    assert marker.read_text() == "pwned"


def test_whole_pickled_model_only_with_the_opt_in(usernets: ModuleType, tmp_path: Path) -> None:
    model = _trained(usernets)
    torch.save(model, tmp_path / "whole.pt")
    sys.modules.pop(usernets.__name__)  # refusing must not even import the module the pickle names
    with pytest.raises(ck.CheckpointError, match=rf"holds a pickled {usernets.__name__}\.UserCNN object.*"
                                                 "--unsafe-pickle"):
        load_model(tmp_path / "whole.pt")
    assert usernets.__name__ not in sys.modules
    loaded, info = load_model(tmp_path / "whole.pt", allow_pickle=True)  # imports it from the cwd
    assert type(loaded).__name__ == "UserCNN" and usernets.__name__ in sys.modules
    _assert_same(model, loaded)
    assert info["format"] == "pickle" and info["unpickler"] == "pickle"
    assert info["arch"] == {"pickled_class": f"{usernets.__name__}.UserCNN"}


def test_allow_pickle_never_unpickles_a_file_that_needs_no_code(usernets: ModuleType, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    model = _trained(usernets)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with caplog.at_level(logging.WARNING):
        _, info = load_model(tmp_path / "m.pt", arch=f"{usernets.__name__}:make_cnn", allow_pickle=True)
    assert info["unpickler"] == "weights_only" and "runs code" not in caplog.text


# ----------------------------------------------------------------------------- resolving --arch


def test_resolve_arch_forms(usernets: ModuleType) -> None:
    spec = resolve_arch(f"{usernets.__name__}:Builders.small", {"num_classes": 4})
    assert spec.kind == "factory" and spec.record == {"factory": f"{usernets.__name__}:Builders.small",
                                                      "kwargs": {"num_classes": 4}}
    model = spec.build()
    assert isinstance(model, usernets.UserCNN) and model.head.out_features == 4
    zoo = resolve_arch("resnet18", {"num_classes": 100})
    assert zoo.kind == "zoo" and zoo.record == {"name": "resnet18", "num_classes": 100}
    assert zoo.request == {"name": "resnet18", "num_classes": 100}
    assert resolve_arch({"name": "robnet_large", "C": 4}, {"layers": 3}).record == {
        "name": "robnet_large", "num_classes": 10, "C": 4, "layers": 3}
    # non-plain keyword values are recorded by their repr
    assert resolve_arch(f"{usernets.__name__}:make_cnn", {"width": torch.float32}).record["kwargs"] == {
        "width": "torch.float32"}


def test_resolve_arch_errors(usernets: ModuleType, tmp_path: Path) -> None:
    name = usernets.__name__
    with pytest.raises(ValueError, match=rf"arch nope_xyz:make: cannot import module 'nope_xyz': no module named "
                                         rf"'nope_xyz' in the current directory \({tmp_path}\) or on sys\.path\. "
                                         r"Hint: run from the folder that holds nope_xyz\.py"):
        resolve_arch("nope_xyz:make")
    (tmp_path / "needs_dep.py").write_text("import not_installed_pkg_xyz\n")
    with pytest.raises(ValueError, match=r"importing module 'needs_dep' failed: it imports 'not_installed_pkg_xyz', "
                                         r"which is not installed\. Hint: pip install not_installed_pkg_xyz"):
        resolve_arch("needs_dep:make")
    (tmp_path / "bad_syntax.py").write_text("def f(:\n")
    with pytest.raises(ValueError, match=r"importing module 'bad_syntax' raised SyntaxError"):
        resolve_arch("bad_syntax:f")
    with pytest.raises(ValueError, match=rf"arch {name}:make_cnnn: '{name}' has no attribute 'make_cnnn'\. Did you "
                                         "mean make_cnn"):
        resolve_arch(f"{name}:make_cnnn")
    with pytest.raises(TypeError, match=rf"arch {name}:CONSTANT is not callable \(type int\)"):
        resolve_arch(f"{name}:CONSTANT")
    with pytest.raises(ValueError, match=rf"arch '{name}\.py:make_cnn' names a file; give its module name instead: "
                                         rf"--arch {name}:make_cnn"):
        resolve_arch(f"{name}.py:make_cnn")
    with pytest.raises(ValueError, match=r"arch 'a b:c' is neither a zoo name nor MODULE:CALLABLE"):
        resolve_arch("a b:c")
    with pytest.raises(ValueError, match=r"unknown architecture 'resnt18'\. Did you mean resnet18.*or your own model "
                                         r"as MODULE:CALLABLE"):
        resolve_arch("resnt18")
    with pytest.raises(ValueError, match=rf"arch {name}:make_cnn does not accept the keyword arguments "
                                         r"\{'widht': 3\}: got an unexpected keyword argument 'widht'; its signature "
                                         r"is \(num_classes=10, width=4\)\. Hint: check --arch-kwargs"):
        resolve_arch(f"{name}:make_cnn", {"widht": 3}).build()
    with pytest.raises(TypeError, match=rf"arch {name}:not_a_model returned dict, not a torch\.nn\.Module"):
        resolve_arch(f"{name}:not_a_model").build()
    with pytest.raises(ValueError, match=rf"arch {name}:broken: calling it with \{{\}} raised RuntimeError: factory "
                                         "exploded"):
        resolve_arch(f"{name}:broken").build()
    with pytest.raises(TypeError, match="a factory spec needs a callable factory"):
        ArchSpec(kind="factory", target="x:y", record={})


def test_cwd_is_on_the_path_only_while_resolving(usernets: ModuleType, tmp_path: Path) -> None:
    before = list(sys.path)
    resolve_arch(f"{usernets.__name__}:make_cnn").build()
    assert sys.path == before


@pytest.mark.parametrize(("text", "match"), [
    ("{num_classes: 10}", r"--arch-kwargs is not valid JSON \(Expecting property name enclosed in double quotes at "
                          r"column 2\)"),
    ("[1, 2]", r"--arch-kwargs must be a JSON object of keyword arguments, got list"),
])
def test_parse_arch_kwargs(text: str, match: str) -> None:
    assert parse_arch_kwargs('{"num_classes": 10, "width": 16}') == {"num_classes": 10, "width": 16}
    assert parse_arch_kwargs(None) == {} == parse_arch_kwargs(" ")
    with pytest.raises(ValueError, match=match):
        parse_arch_kwargs(text)

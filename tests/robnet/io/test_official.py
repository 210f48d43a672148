"""Official RobNets checkpoints: loaded without running pickled code, extras kept as plain data, the
official implementation's logits reproduced; load_any and detect_format on either format."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from robnet.io import checkpoint as ck
from robnet.io import official as of
from robnet.models.genotype import ROBNET_FREE, Genotype
from tests._paths import DATA
from tests.robnet.io._checkpoint_models import FLIPPED, SMALL, FlipScheduler, assert_same_state, batch, small_model

# ----------------------------------------------------------------------------- official checkpoints


def test_missing_file_official(tmp_path: Path) -> None:
    with pytest.raises(ck.CheckpointError, match=r"^checkpoint not found: "):
        of.load_official(tmp_path / "nope.pt", SMALL)


def _official_file(path: Path, model: nn.Module, **kwargs: Any) -> Path:
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()  # momentum buffers: tensors in the optimizer state
    with torch.no_grad():
        for p in model.parameters():  # undo the step so `model` keeps its weights
            p.add_(0.1 * torch.ones_like(p))
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}, "epoch": 3,
                "best_acc": 0.5, "scheduler": FlipScheduler(), "optimizer": opt.state_dict()}, path, **kwargs)
    return path


@pytest.mark.parametrize("zipfile", [True, False])
def test_official_checkpoint_loads_without_running_code(tmp_path: Path, zipfile: bool) -> None:
    model = small_model(seed=3)
    path = _official_file(tmp_path / "official.pt", model, _use_new_zipfile_serialization=zipfile)
    with pytest.raises(ck.CheckpointError, match="asks to run code"):
        ck.load(path)
    loaded, meta = of.load_official(path, SMALL)
    assert_same_state(model, loaded)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(batch()), model(batch()))
    assert FLIPPED == []
    assert meta["epoch"] == 3 and meta["best_acc"] == 0.5
    assert meta["format"] == "official" and meta["unpickler"] == "restricted"
    assert meta["ignored"] == ["scheduler", "optimizer"]
    assert "FlipScheduler" in meta["ignored_detail"]["scheduler"]
    assert "holding tensors" in meta["ignored_detail"]["optimizer"]
    assert any(g.endswith("FlipScheduler") for g in meta["placeholders"])
    assert meta["stripped_prefix"] == "module." and meta["stripped_keys"] == list(model.state_dict())
    assert meta["arch"] == {"name": "robnet_large", "num_classes": 10, "C": 8, "layers": 5}
    # load_any takes the same file given an arch; detect_format calls it official.
    assert of.detect_format(path) == "official"
    loaded2, meta2 = of.load_any(path, arch=SMALL)
    assert_same_state(model, loaded2)
    assert meta2 == meta
    assert FLIPPED == []


def test_official_bare_state_dict_and_inferred_classes(tmp_path: Path) -> None:
    model = small_model(seed=4, num_classes=100)
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, tmp_path / "bare.pt")
    loaded, meta = of.load_official(tmp_path / "bare.pt", SMALL)
    assert meta["unpickler"] == "weights_only" and meta["ignored"] == [] and meta["placeholders"] == []
    assert meta["arch"]["num_classes"] == 100  # read from classifier.weight
    assert_same_state(model, loaded)


def test_official_extras_become_plain_meta(tmp_path: Path, small: nn.Module) -> None:
    torch.save({"state_dict": small.state_dict(), "best_acc": torch.tensor(0.25), "epoch": np.int64(7),
                "arch": "robnet", "ignored": 1, "lr": [0.1, 0.01], "input": torch.zeros(2, 3)},
               tmp_path / "o.pt", pickle_protocol=4)
    _, meta = of.load_official(tmp_path / "o.pt", SMALL)
    assert meta["best_acc"] == 0.25 and meta["epoch"] == 7 and type(meta["epoch"]) is int
    assert meta["lr"] == [0.1, 0.01]
    assert meta["checkpoint.arch"] == "robnet" and meta["checkpoint.ignored"] == 1  # renamed, not lost
    assert meta["ignored"] == ["input"] and meta["ignored_detail"]["input"] == "tensor of shape (2, 3)"


def test_whole_pickled_model_is_not_loaded(tmp_path: Path, small: nn.Module) -> None:
    torch.save(small, tmp_path / "whole.pt")
    with pytest.raises(ck.CheckpointError, match=r"holds a pickled robnet\.models\.network\.RobNet object, not a "
                                                 r"state_dict: .*Hint: .*torch\.save\(model\.state_dict\(\)"):
        of.load_official(tmp_path / "whole.pt", SMALL)


@pytest.mark.parametrize(("name", "arch"), [
    ("ref_robnet_large_C8_L5.pt", SMALL),
    ("ref_robnet_free_first5_C8_L5.pt", {"genotype": str(Genotype.free(ROBNET_FREE.cells[:5])), "C": 8,
                                         "layers": 5}),
])
def test_reference_checkpoint_reproduces_official_logits(name: str, arch: dict[str, Any]) -> None:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"reference file {path} is absent (copy it from shared/reference)")
    model, meta = of.load_official(path, arch)
    ref = torch.load(path, weights_only=True)
    assert meta["unpickler"] == "weights_only" and meta["ignored"] == ["input", "logits"]
    assert not model.training
    with torch.no_grad():
        torch.testing.assert_close(model(ref["input"]), ref["logits"], rtol=0, atol=1e-5)


def test_load_any_prefers_recorded_arch(tmp_path: Path, small: nn.Module,
                                        caplog: pytest.LogCaptureFixture) -> None:
    path = ck.save(tmp_path / "m.pt", small, arch=SMALL, meta={"k": 1})
    with caplog.at_level(logging.WARNING, logger="robnet.io.official"):
        model, meta = of.load_any(path, arch="robnet_free")
    assert meta == {"k": 1}
    assert_same_state(small, model)
    assert "ignoring arch robnet_free" in caplog.text


def test_foreign_global_in_official_checkpoint_is_a_named_warning(tmp_path: Path, small: nn.Module,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    torch.save({"state_dict": small.state_dict(), "scheduler": FlipScheduler(),
                "opt": torch.optim.lr_scheduler.LambdaLR}, tmp_path / "o.pt")
    with caplog.at_level(logging.INFO, logger="robnet.io.official"):
        _, meta = of.load_official(tmp_path / "o.pt", SMALL)
    warnings_ = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings_) == 1
    assert warnings_[0].getMessage() == (
        f"checkpoint {tmp_path / 'o.pt'} pickles a global outside torch's tensor types: "
        f"{FlipScheduler.__module__}.FlipScheduler; "
        "not imported (inert placeholders: nothing ran) and whatever they built is dropped")
    # a pickled optimizer / lr-scheduler class is expected in a training checkpoint: INFO only
    assert any(r.levelno == logging.INFO and "torch.optim.lr_scheduler.LambdaLR" in r.getMessage()
               for r in caplog.records)
    assert FLIPPED == [] and sorted(meta["ignored"]) == ["opt", "scheduler"]


def test_official_reexports_nothing_it_does_not_own() -> None:
    assert set(of.__all__) == {"detect_format", "load_any", "load_official"}

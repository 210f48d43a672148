"""Normalize / with_normalization: the normalization is inside the model, recorded as plain data."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from robnet.attacks.gradient import fgsm
from robnet.models.normalize import (
    DATASET_STATS,
    Normalize,
    NormalizedModel,
    parse_normalization,
    with_normalization,
)

CIFAR10 = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10)).eval()


def _x(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(3))


def test_a_model_trained_on_normalized_inputs_gives_identical_logits():
    net = _net()
    mean = torch.tensor(CIFAR10[0]).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10[1]).view(1, 3, 1, 1)
    x = _x()
    with torch.no_grad():
        expected = net((x - mean) / std)  # how the model was trained and evaluated before
        wrapped = with_normalization(net, "cifar10")
        assert torch.equal(wrapped(x), expected)
    assert wrapped.model is net and isinstance(wrapped.normalize, Normalize)


@pytest.mark.parametrize("spec", [
    "cifar10", "CIFAR10", "0.4914,0.4822,0.4465,0.2470,0.2435,0.2616", CIFAR10, [list(CIFAR10[0]), list(CIFAR10[1])],
    {"mean": CIFAR10[0], "std": CIFAR10[1]},
])
def test_every_form_gives_the_same_setting(spec):
    record = parse_normalization(spec)
    assert record["mean"] == list(CIFAR10[0]) and record["std"] == list(CIFAR10[1])
    assert record["name"] == ("cifar10" if isinstance(spec, str) and "," not in spec else None)
    assert parse_normalization(record) == record  # the recorded dict round-trips
    json.dumps(record)


def test_presets_and_scalar_statistics():
    assert set(DATASET_STATS) == {"cifar10", "cifar100", "svhn", "imagenet"}
    assert parse_normalization("imagenet")["std"] == [0.229, 0.224, 0.225]
    one = with_normalization(_net(), "0.5,0.25")  # one mean / std for every channel
    x = _x()
    with torch.no_grad():
        assert torch.equal(one(x), one.model((x - 0.5) / 0.25))
    assert one.normalization == {"name": None, "mean": [0.5], "std": [0.25]}


@pytest.mark.parametrize(("spec", "error", "match"), [
    ("cifar", ValueError, r"normalization 'cifar' is neither a known dataset nor numbers; expected a dataset name "
                          r"\(cifar10, cifar100, svhn, imagenet\)"),
    ("0.5,0.5,0.5", ValueError, r"has 3 numbers; expected an even count: k means then k stds"),
    ("0.5,0.5,0,0", ValueError, r"std must be > 0 everywhere, got \[0\.0, 0\.0\]"),
    (((0.5, 0.5), (0.2,)), ValueError, r"has 2 means but 1 stds"),
    (((0.5,), (float("nan"),)), ValueError, r"normalization std must be finite"),
    (({"mean": [0.5]}), ValueError, r"needs 'mean' and 'std'"),
    (3, TypeError, r"normalization must be a dataset name"),
    ((("a",), (1.0,)), TypeError, r"normalization mean must hold numbers, got 'a'"),
])
def test_bad_settings(spec, error, match):
    with pytest.raises(error, match=match):
        parse_normalization(spec)


def test_channel_count_is_checked_at_forward():
    layer = Normalize(*CIFAR10)
    with pytest.raises(ValueError, match=r"Normalize has 3 per-channel values but got input of shape \(2, 1, 4, 4\)"):
        layer(torch.rand(2, 1, 4, 4))


def test_state_dict_is_the_networks_under_model_and_buffers_follow_the_device():
    net = _net()
    wrapped = with_normalization(net, "cifar10")
    assert list(wrapped.state_dict()) == [f"model.{k}" for k in net.state_dict()]  # mean/std not persistent
    fresh = with_normalization(_net(seed=1), "cifar10")
    fresh.load_state_dict(wrapped.state_dict())
    x = _x()
    with torch.no_grad():
        assert torch.equal(fresh(x), wrapped(x))
    meta = wrapped.to("meta")
    assert meta.normalize.mean.device.type == "meta" and meta.normalize.std.device.type == "meta"
    assert wrapped.normalization == {"name": "cifar10", "mean": list(CIFAR10[0]), "std": list(CIFAR10[1])}
    assert "Normalize(cifar10: mean=[0.4914, 0.4822, 0.4465], std=[0.247, 0.2435, 0.2616])" in repr(wrapped)


def test_modes_are_kept():
    net = _net().train()
    net[1].eval()  # a frozen BN inside a training model
    wrapped = with_normalization(net, "svhn")
    assert wrapped.training and wrapped.normalize.training and net.training and not net[1].training
    assert isinstance(wrapped, NormalizedModel)


def test_attacks_stay_in_pixel_space():
    wrapped = with_normalization(_net(), "cifar10")
    x = _x()
    y = torch.arange(4)
    x_adv = fgsm(wrapped, x, y, eps=8 / 255)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6

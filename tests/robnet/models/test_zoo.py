"""robnet.models.zoo: parameter counts and state_dict layout of the RobNets, the registry and its errors."""

import json

import pytest
import torch
from torch import nn

import robnet
from robnet.models import zoo
from tests._paths import DATA

BUILTIN = ["robnet_large", "robnet_large_v2", "robnet_free", "robnet_large_imagenet",
           "resnet18", "resnet50", "wrn28_10", "densenet121"]


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# (name, params at 10 classes, params at 100 classes) from docs/design.md §1
ROBNETS = [
    ("robnet_large", 6_842_710, 6_894_640),
    ("robnet_large_v2", 33_326_666, 33_418_916),
    ("robnet_free", 5_439_790, 5_491_720),
]


@pytest.mark.parametrize(("name", "p10", "p100"), ROBNETS)
def test_robnet_parameter_counts_and_manifest(name, p10, p100):
    manifest = json.loads((DATA / "robnets_state_dict_manifest.json").read_text())
    for classes, expected in ((10, p10), (100, p100)):
        model = robnet.build_model(name, num_classes=classes)
        assert n_params(model) == expected
        ref = manifest[f"{name}@{classes}"]
        assert ref["num_parameters"] == expected
        ours = {k: list(v.shape) for k, v in model.state_dict().items()}
        assert list(ours) == list(ref["state_dict"])  # same keys, same order
        assert ours == ref["state_dict"]


def test_imagenet_robnet():
    model = robnet.build_model("robnet_large_imagenet")
    assert round(n_params(model) / 1e6, 2) == 12.76
    assert model.classifier.out_features == 1000
    small = robnet.build_model("robnet_large_imagenet", C=8, layers=3, num_classes=5).eval()
    assert small(torch.rand(1, 3, 224, 224)).shape == (1, 5)


def test_zoo_registry_and_errors():
    # the RobNets, then the baselines, in this order (other built-ins and models registered by other
    # tests may sit between or after them)
    assert [n for n in robnet.list_models() if n in BUILTIN] == BUILTIN
    with pytest.raises(ValueError, match=r"never published.*`robnet search sample --preset small` "
                                         r"\(or `--budget 7`: 7 sep-convs per cell at C=36, L=20\)"):
        robnet.build_model("robnet_small")
    with pytest.raises(ValueError, match=r"robnet_medium \(5\.66M params in the paper\) was never published.*"
                                         r"--preset medium` \(or `--budget 10`"):
        robnet.build_model("robnet_medium")
    with pytest.raises(ValueError, match=r"unknown model 'robnet_lage'\. Did you mean robnet_large"):
        robnet.build_model("robnet_lage")
    with pytest.raises(ValueError, match=r"unknown model 'robnet_lage'"):
        zoo.default_num_classes("robnet_lage")


def test_defaults_macros_and_override_keys():
    assert zoo.default_num_classes("robnet_large_imagenet") == 1000 and zoo.default_num_classes("resnet18") == 10
    assert zoo.robnet_macro("robnet_large_v2") == {"genotype": "11 11 11 11 11 01 11 01 10 11 01 01 01 11",
                                                   "C": 64, "layers": 33}
    assert zoo.robnet_macro("robnet_large_imagenet")["imagenet_stem"] is True
    assert zoo.robnet_macro("wrn28_10") is None
    assert zoo.override_keys("robnet_free") == {"genotype", "C", "layers", "in_channels", "imagenet_stem", "denoise"}
    assert zoo.override_keys("resnet18") == {"in_channels", "denoise"}
    assert zoo.override_keys("wrn28_10") == {"in_channels", "denoise", "depth", "widen_factor", "dropout"}


class TinyNet(nn.Module):
    def __init__(self, *, num_classes: int = 10, width: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


@pytest.fixture
def tiny_registered():
    zoo.register("tiny_net_for_tests", TinyNet, num_classes=3)
    yield "tiny_net_for_tests"
    zoo.unregister("tiny_net_for_tests")


def test_register_builds_lists_and_unregisters(tiny_registered):
    name = tiny_registered
    assert robnet.list_models()[-1] == name and [n for n in robnet.list_models() if n in BUILTIN] == BUILTIN
    assert zoo.default_num_classes(name) == 3 and zoo.override_keys(name) == {"width"}
    model = robnet.build_model(name, width=6)
    assert isinstance(model, TinyNet) and model.fc.out_features == 3 and model.conv.out_channels == 6
    assert robnet.build_model(name, num_classes=7).fc.out_features == 7
    with pytest.raises(ValueError, match=rf"zoo.register: '{name}' is already in the zoo\. Hint: pass "
                                         "replace=True"):
        zoo.register(name, TinyNet)
    zoo.register(name, lambda **kw: TinyNet(width=2, **kw), replace=True)
    assert robnet.build_model(name).conv.out_channels == 2 and zoo.default_num_classes(name) == 10
    assert zoo.override_keys(name) is None  # a **kwargs builder accepts anything


def test_register_and_unregister_errors():
    with pytest.raises(ValueError, match="'robnet_large' is a built-in RobNets name and cannot be registered"):
        zoo.register("robnet_large", TinyNet, replace=True)
    with pytest.raises(ValueError, match="'robnet_small' is a built-in RobNets name"):
        zoo.register("robnet_small", TinyNet)
    with pytest.raises(ValueError, match=r"name must be an identifier-like string, got 'my net'"):
        zoo.register("my net", TinyNet)
    with pytest.raises(TypeError, match="builder must be callable, got int"):
        zoo.register("x_net", 3)
    with pytest.raises(TypeError, match="num_classes must be a positive int, got 0"):
        zoo.register("x_net", TinyNet, num_classes=0)
    with pytest.raises(ValueError, match="'robnet_free' is a built-in RobNet and cannot be removed"):
        zoo.unregister("robnet_free")
    with pytest.raises(ValueError, match="'x_net' is not in the zoo"):
        zoo.unregister("x_net")
    assert "x_net" not in robnet.list_models()

"""robnet.models.arch: architectures as plain data (normalize, describe), built from data with a size guard,
read back from a model through its public properties."""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

import robnet
from robnet.models import arch as A
from robnet.models.genotype import ROBNET_FREE, Genotype, sample
from robnet.models.network import RobNet

SMALL = {"name": "robnet_large", "C": 8, "layers": 5}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_normalize_arch_forms() -> None:
    assert A.normalize_arch("robnet_large_imagenet") == {"name": "robnet_large_imagenet",
                                                          "num_classes": 1000}
    assert A.normalize_arch({"name": "resnet18", "denoise": 2}) == {"name": "resnet18", "num_classes": 10,
                                                                     "denoise": [2]}
    g = sample(random.Random(0))
    assert A.normalize_arch({"genotype": g}) == {"genotype": str(g), "C": 36, "layers": 20,
                                                  "num_classes": 10, "in_channels": 3, "imagenet_stem": False}
    assert A.describe_arch(SMALL) == "robnet_large (num_classes=10, C=8, layers=5)"
    assert A.describe_arch("robnet_free") == "robnet_free"
    with pytest.raises(ValueError, match=r"needs a 'name' .* or a 'genotype'"):
        A.normalize_arch({"C": 8})
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['depth'\] in a genotype arch"):
        A.normalize_arch({"genotype": str(g), "depth": 3})
    with pytest.raises(ValueError, match="arch\\['genotype'\\] is not a valid genotype"):
        A.normalize_arch({"genotype": "11 11"})
    with pytest.raises(TypeError, match=r"arch\['C'\] must be an int, got float"):
        A.normalize_arch({"genotype": str(g), "C": 8.0})
    with pytest.raises(ValueError, match=r"unknown architecture '11 01'.*for a custom genotype pass"):
        A.normalize_arch("11 01")


@pytest.mark.parametrize(("arch", "exc", "match"), [
    ({"name": "robnet_large", "bogus": 1}, ValueError,
     r"unknown key\(s\) \['bogus'\] for zoo model 'robnet_large'; it accepts num_classes, C, denoise, genotype"),
    ({"name": "resnet18", "C": 8}, ValueError, r"unknown key\(s\) \['C'\] for zoo model 'resnet18'; it accepts "
                                               r"num_classes, denoise, in_channels$"),
    ({"name": "robnet_large", "C": "8"}, TypeError, r"arch\['C'\] must be an int, got str \('8'\)"),
    ({"name": "robnet_large", "layers": 0}, ValueError, r"arch\['layers'\] must be >= 1, got 0"),
    ({"name": "robnet_large", "num_classes": True}, TypeError, r"arch\['num_classes'\] must be an int, got bool"),
    ({"name": "robnet_large", "imagenet_stem": 1}, TypeError, r"arch\['imagenet_stem'\] must be a bool, got int"),
    ({"name": "robnet_large", "denoise": [[1]]}, TypeError, r"arch\['denoise'\] must be an int, a str or a list"),
    ({"name": "robnet_large", "denoise": {1: 2}}, TypeError, r"arch\['denoise'\] must be an int, a str or a list"),
    ({"genotype": " ".join(ROBNET_FREE.cells[0]), "C": -2}, ValueError, r"arch\['C'\] must be >= 1, got -2"),
    (["robnet_large"], TypeError, "arch must be a zoo name or a dict, got list"),
    ({"name": 3}, TypeError, r"arch\['name'\] must be a str, got int"),
])
def test_normalize_arch_refuses_bad_keys_and_types(arch, exc, match) -> None:
    with pytest.raises(exc, match=match):
        A.normalize_arch(arch)


def test_normalize_arch_is_idempotent_and_plain() -> None:
    forms = ["robnet_free", {"name": "wrn28_10", "depth": 16, "denoise": ["block3", "block1"]},
             {"name": "robnet_large", "denoise": [2, 1, 2], "genotype": Genotype.shared(ROBNET_FREE.cells[0])},
             {"genotype": sample(random.Random(3), cell_free=True, layers=3), "layers": 3, "imagenet_stem": True}]
    for form in forms:
        norm = A.normalize_arch(form)
        assert A.normalize_arch(norm) == norm
        A.check_data(norm, "arch")
    assert A.normalize_arch(forms[1])["denoise"] == ["block3", "block1"]  # stage names keep their order
    assert A.normalize_arch(forms[2])["denoise"] == [1, 2]  # cell indices: sorted, once each
    assert A.normalize_arch(forms[2])["genotype"] == " ".join(ROBNET_FREE.cells[0])


def test_check_data_names_the_path() -> None:
    A.check_data({"a": [1, 2.5, None, {"b": (True, "x")}]}, "meta")
    A.check_data({"state": {0: torch.zeros(2)}}, "extra", tensors=True)
    with pytest.raises(TypeError, match=r"meta\['a'\]\[1\] is Tensor .*Hint: convert it with \.item\(\)"):
        A.check_data({"a": [1, torch.zeros(2)]}, "meta")
    with pytest.raises(TypeError, match=r"extra has key 1\.5 of type float; expected str or int keys"):
        A.check_data({1.5: 0}, "extra", tensors=True)


# ----------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("arch", [
    "robnet_large", "robnet_free", {"name": "robnet_large_imagenet", "C": 8, "layers": 4, "num_classes": 5},
    {"name": "robnet_large", "C": 6, "layers": 4, "in_channels": 1, "denoise": [0, 3]},
    {"name": "resnet18", "num_classes": 7, "denoise": 2}, {"name": "wrn28_10", "depth": 16},
    {"genotype": str(Genotype.free(ROBNET_FREE.cells[:4])), "C": 4, "layers": 4, "num_classes": 3},
])
def test_estimate_params_equals_the_built_model(arch) -> None:
    with torch.device("meta"):
        model = A.build_from_arch(arch)
    assert A.estimate_params(arch) == n_params(model)


def test_absurd_size_is_refused_before_anything_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args, **kwargs):
        raise AssertionError("a module was built")

    monkeypatch.setattr(RobNet, "__init__", never)
    monkeypatch.setattr(robnet.models.zoo, "build_model", never)
    huge = {"name": "robnet_large", "C": 4096, "layers": 10_000}
    assert A.estimate_params(huge) == 39_957_224_345_610
    with pytest.raises(ValueError, match=r"^arch robnet_large \(num_classes=10, C=4096, layers=10000\) would have "
                                         r"39,957,224,345,610 parameters \(1\.6e\+05 GB as float32\), more than the "
                                         r"limit of 1,000,000,000; refusing to build it\. Hint: check C, layers"):
        A.build_from_arch(huge)
    with pytest.raises(ValueError, match=r"genotype '11 11 .*' \(C=8, .*num_classes=100000000, .*\) would have "):
        A.build_from_arch({"genotype": "11 " * 13 + "11", "C": 8, "layers": 3, "num_classes": 10**8})
    with pytest.raises(ValueError, match=r"would have 115,282 parameters .* more than the limit of 1,000"):
        A.build_from_arch(SMALL, max_params=1000)


def test_max_params_none_lifts_the_limit() -> None:
    with torch.device("meta"):
        model = A.build_from_arch({"name": "resnet18", "num_classes": 3_000_000}, max_params=None)
    assert n_params(model) == 11_173_962 - 5130 + 513 * 3_000_000


# ----------------------------------------------------------------------------- reading back


def test_arch_from_model_reads_the_public_properties(tiny_robnet) -> None:
    model = tiny_robnet(C=6, layers=4, in_channels=1, num_classes=7, denoise=[3])
    arch = A.arch_from_model(model)
    assert arch == {"genotype": "11 11 11 11 11 01 11 01 10 11 01 01 01 11", "C": 6, "layers": 4, "num_classes": 7,
                    "in_channels": 1, "imagenet_stem": False, "denoise": [3]}
    assert A.normalize_arch(arch) == arch
    rebuilt = A.build_from_arch(arch)
    assert [(k, v.shape) for k, v in rebuilt.state_dict().items()] == \
        [(k, v.shape) for k, v in model.state_dict().items()]
    assert A.arch_from_model(nn.DataParallel(model)) == arch  # wrappers are looked through
    assert A.unwrap_model(nn.DataParallel(model)) is model
    assert A.arch_from_model(tiny_robnet(imagenet_stem=True, C=8))["imagenet_stem"] is True
    with pytest.raises(TypeError, match=r"cannot describe a Sequential as data; only RobNet instances"):
        A.arch_from_model(nn.Sequential())
    odd = RobNet("11 " * 13 + "11", C=4, layers=3, stem_multiplier=2)
    with pytest.raises(ValueError, match=r"RobNet with stem width 8 != 3\*C=12 cannot be described"):
        A.arch_from_model(odd)


def test_estimate_params_of_a_zoo_name_with_a_genotype_override():
    """Before: the named arch's 'name' reached robnet_num_params (TypeError), so `robnet train --model
    robnet_large --genotype ...` failed when it saved its first checkpoint."""
    from robnet import build_model
    from robnet.models.arch import estimate_params

    arch = {"name": "robnet_large", "genotype": "01 10 10 10 01 10 01 01 11 10 10 00 11 01", "C": 4, "layers": 3,
            "in_channels": 1}
    model = build_model("robnet_large", genotype=arch["genotype"], C=4, layers=3, in_channels=1)
    assert estimate_params(arch) == sum(p.numel() for p in model.parameters())

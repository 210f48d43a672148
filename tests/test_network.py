import json
from pathlib import Path

import pytest
import torch

import robnet
from robnet.genotype import ROBNET_FREE, ROBNET_LARGE, Genotype
from robnet.network import RobNet
from robnet.ops import OPS, ChosenOperation, NonLocalDenoise

DATA = Path(__file__).parent / "data"


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("code", ["00", "01", "10", "11"])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_builds_and_keeps_shapes(code, stride):
    op = ChosenOperation(8, stride, code)
    x = torch.rand(2, 8, 16, 16)
    out = op(x)
    assert out.shape == (2, 8, 16 // stride, 16 // stride)
    if code == "00":
        assert torch.count_nonzero(out) == 0
    if code == "10" and stride == 1:
        assert torch.equal(out, x)


def test_unknown_op_code():
    with pytest.raises(ValueError, match="unknown edge code '2'"):
        ChosenOperation(8, 1, "2")
    assert set(OPS) == {"00", "01", "10", "11"}


# (name, params at 10 classes, params at 100 classes) from SPEC §1
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


@pytest.mark.parametrize(
    ("stem", "genotype"),
    [
        ("ref_robnet_large_C8_L5", ROBNET_LARGE),
        ("ref_robnet_free_first5_C8_L5", Genotype.free(ROBNET_FREE.cells[:5])),
    ],
)
def test_reference_logits(stem, genotype):
    ref = torch.load(DATA / f"{stem}.pt", weights_only=True)
    meta = json.loads((DATA / f"{stem}.json").read_text())
    model = robnet.build_robnet(genotype, C=meta["C"], layers=meta["layers"], num_classes=meta["num_classes"])
    model.load_state_dict(ref["state_dict"], strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(ref["input"])
    torch.testing.assert_close(logits, ref["logits"], atol=1e-5, rtol=0)


def test_build_robnet_accepts_official_lists_and_strings():
    a = robnet.build_robnet(ROBNET_LARGE.to_official(), C=4, layers=3)
    b = robnet.build_robnet(str(ROBNET_LARGE), C=4, layers=3)
    assert a.genotype == b.genotype == ROBNET_LARGE
    free = robnet.build_robnet(ROBNET_FREE.to_official()[:3], C=4, layers=3)
    assert free.genotype.cell_free


def test_network_errors():
    with pytest.raises(ValueError, match="cell-free genotype has 20 cells but the network has 5"):
        robnet.build_robnet(ROBNET_FREE, C=8, layers=5)
    with pytest.raises(ValueError, match="C must be a positive even number"):
        robnet.build_robnet(ROBNET_LARGE, C=7, layers=5)
    with pytest.raises(ValueError, match="denoise cell index 9 out of range"):
        robnet.build_robnet(ROBNET_LARGE, C=4, layers=3, denoise=[9])


def test_forward_features_reference_path():
    torch.manual_seed(0)
    model = robnet.build_robnet(ROBNET_LARGE, C=4, layers=5).eval()
    x = torch.rand(2, 3, 16, 16)
    feats = model.forward_features(x)
    assert len(feats) == 5
    # s1 of cell k is the output of cell k-1; cell 0 sees the stem output
    for k in range(1, 5):
        assert feats[k][0] is feats[k - 1][1]
    assert [tuple(f[1].shape[1:]) for f in feats] == [(16, 16, 16), (32, 8, 8), (32, 8, 8), (64, 4, 4), (64, 4, 4)]
    assert [c for c in model.cell_channels] == [(12, 16), (16, 32), (32, 32), (32, 64), (64, 64)]
    with torch.no_grad():
        assert torch.equal(model.classifier(feats[-1][1].mean((2, 3))), model(x))


def test_zoo_registry_and_errors():
    assert robnet.list_models() == [
        "robnet_large", "robnet_large_v2", "robnet_free", "robnet_large_imagenet",
        "resnet18", "resnet50", "wrn28_10", "densenet121",
    ]
    with pytest.raises(ValueError, match=r"never published.*--budget 7"):
        robnet.build_model("robnet_small")
    with pytest.raises(ValueError, match="never published"):
        robnet.build_model("robnet_medium")
    with pytest.raises(ValueError, match=r"unknown model 'robnet_lage'\. Did you mean robnet_large"):
        robnet.build_model("robnet_lage")


def test_robnet_denoise_block_starts_as_identity():
    torch.manual_seed(0)
    plain = robnet.build_model("robnet_large", C=4, layers=3).eval()
    den = robnet.build_model("robnet_large", C=4, layers=3, denoise=[1, 2]).eval()
    missing, unexpected = den.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and all(k.startswith("denoise.") for k in missing)
    extra = n_params(den) - n_params(plain)
    assert extra == n_params(NonLocalDenoise(32)) + n_params(NonLocalDenoise(64))  # cells 1, 2 are reductions
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(den(x), plain(x))
    assert isinstance(den, RobNet) and sorted(den.denoise.keys()) == ["1", "2"]


@pytest.mark.parametrize("mode", ["gaussian", "dot"])
def test_nonlocal_denoise_math(mode):
    torch.manual_seed(0)
    block = NonLocalDenoise(4, mode=mode).eval()
    torch.nn.init.ones_(block.bn.weight)
    x = torch.randn(2, 4, 3, 3)
    v = x.flatten(2)  # (N, C, HW)
    if mode == "gaussian":
        q = block.theta(x).flatten(2)
        k = block.phi(x).flatten(2)
        w = torch.softmax(q.transpose(1, 2) @ k / q.shape[1] ** 0.5, dim=-1)  # (N, HW, HW)
    else:
        w = v.transpose(1, 2) @ v / 9
    y = (v @ w.transpose(1, 2)).reshape(2, 4, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.bn(block.conv(y)), atol=1e-5, rtol=1e-5)

"""robnet.models.network: the official layout and logits, the macro, read-only architecture properties, exact sizes."""

import json
import random

import pytest
import torch

import robnet
from robnet.models.genotype import ROBNET_FREE, ROBNET_LARGE, Genotype, sample
from robnet.models.network import RobNet, robnet_num_params
from robnet.models.ops import NonLocalDenoise
from tests._paths import DATA


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


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
    with pytest.raises(TypeError, match=r"denoise must hold cell indices \(int\), got \[1, 'a'\]"):
        robnet.build_robnet(ROBNET_LARGE, C=4, layers=3, denoise=[1, "a"])


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




def test_architecture_properties_are_read_only(tiny_robnet):
    model = tiny_robnet(ROBNET_FREE.to_official()[:4], C=6, layers=4, in_channels=1, num_classes=7, denoise=[3, 1])
    assert model.genotype == Genotype.free(ROBNET_FREE.cells[:4]) and model.genotype.cell_free
    assert (model.C, model.layers, model.num_classes, model.in_channels) == (6, 4, 7, 1)
    assert model.imagenet_stem is False and model.stem_multiplier == 3 and model.denoise_cells == (1, 3)
    assert tiny_robnet().denoise_cells == () and tiny_robnet(imagenet_stem=True, C=8).imagenet_stem is True
    for name in ("genotype", "C", "layers", "num_classes", "in_channels", "imagenet_stem", "denoise_cells"):
        with pytest.raises(AttributeError):
            setattr(model, name, None)


@pytest.mark.parametrize("seed", range(6))
def test_robnet_num_params_is_exact(seed):
    rng = random.Random(seed)
    layers = rng.choice([3, 4, 5, 7])
    kwargs = {"C": rng.choice([4, 6, 8]), "layers": layers, "num_classes": rng.choice([3, 10]),
              "in_channels": rng.choice([1, 3]), "imagenet_stem": seed % 3 == 0,
              "denoise": [0, layers - 1] if seed % 2 else ()}
    genotype = sample(rng, cell_free=seed % 2 == 1, layers=layers, budget=rng.choice([None, 0, 14]))
    with torch.device("meta"):
        model = RobNet(genotype, **kwargs)
    assert robnet_num_params(genotype, **kwargs) == n_params(model)


def test_robnet_num_params_of_the_zoo_and_of_absurd_sizes():
    assert robnet_num_params(ROBNET_LARGE) == 6_842_710  # docs/design.md §1
    assert robnet_num_params(ROBNET_FREE, num_classes=100) == 5_491_720
    assert robnet_num_params(ROBNET_LARGE, C=64, layers=33) == 33_326_666
    # never built: about 4e13 parameters, counted in a single pass over the cells
    assert robnet_num_params(ROBNET_LARGE, C=4096, layers=10_000) == 39_957_224_345_610
    with pytest.raises(ValueError, match="C must be a positive even number"):
        robnet_num_params(ROBNET_LARGE, C=5)
    with pytest.raises(TypeError, match=r"RobNet: layers must be an int, got float \(3\.0\)"):
        robnet_num_params(ROBNET_LARGE, layers=3.0)

"""CIFAR baselines: exact parameter counts, shapes, FSP cell flags, feature-denoising stages."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robnet
from robnet.models import baselines
from robnet.models.ops import NonLocalDenoise

# docs/design.md §1, 10 classes.
EXPECTED_PARAMS = {
    "resnet18": 11_173_962,
    "resnet50": 23_520_842,
    "wrn28_10": 36_479_194,
    "densenet121": 6_956_298,
}
# (classifier attribute, its input width)
CLASSIFIER = {
    "resnet18": ("linear", 512),
    "resnet50": ("linear", 2048),
    "wrn28_10": ("fc", 640),
    "densenet121": ("linear", 1024),
}
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "resnet18": baselines.resnet18,
    "resnet50": baselines.resnet50,
    "wrn28_10": baselines.wrn28_10,
    "densenet121": baselines.densenet121,
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: build() for name, build in BUILDERS.items()}


@pytest.mark.parametrize("name", list(BUILDERS))
def test_exact_parameter_counts(models: dict[str, nn.Module], name: str) -> None:
    assert n_params(models[name]) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_num_classes_changes_only_the_classifier(models: dict[str, nn.Module], name: str) -> None:
    base = models[name]
    other = BUILDERS[name](num_classes=100)
    head, width = CLASSIFIER[name]
    assert n_params(other) == EXPECTED_PARAMS[name] + 90 * (width + 1)
    a = {k: v.shape for k, v in base.state_dict().items()}
    b = {k: v.shape for k, v in other.state_dict().items()}
    assert a.keys() == b.keys()
    differing = {k for k in a if a[k] != b[k]}
    assert differing == {f"{head}.weight", f"{head}.bias"}
    assert b[f"{head}.weight"] == (100, width)


def test_top_level_module_names(models: dict[str, nn.Module]) -> None:
    def top(m: nn.Module) -> list[str]:
        return [n for n, _ in m.named_children()]

    assert top(models["resnet18"]) == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "linear"]
    assert top(models["resnet50"]) == ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "linear"]
    assert top(models["wrn28_10"]) == ["conv1", "block1", "block2", "block3", "bn1", "fc"]
    assert top(models["densenet121"]) == ["conv1", "dense1", "trans1", "dense2", "trans2", "dense3", "trans3",
                                          "dense4", "bn", "linear"]
    # No normalization layer and no denoise container in the plain models.
    for m in models.values():
        assert not hasattr(m, "denoise")
        assert not any("denoise" in k for k in m.state_dict())


@pytest.mark.parametrize(("name", "batch"), [("resnet18", 2), ("resnet50", 2), ("densenet121", 2),
                                              ("wrn28_10", 1)])
def test_output_shape(models: dict[str, nn.Module], name: str, batch: int) -> None:
    model = models[name].eval()
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (batch, 10)
    assert torch.isfinite(out).all()
    if batch == 2:
        # Eval mode is per-sample: the first row does not depend on the second sample.
        with torch.no_grad():
            single = model(x[:1])
        torch.testing.assert_close(single, out[:1], rtol=1e-4, atol=1e-5)


def test_in_channels_changes_only_the_stem() -> None:
    model = baselines.resnet18(in_channels=1)
    assert n_params(model) == EXPECTED_PARAMS["resnet18"] - 2 * 64 * 9
    small = baselines.densenet121(growth_rate=4, in_channels=1).eval()
    with torch.no_grad():
        assert small(torch.rand(2, 1, 16, 16)).shape == (2, 10)


# ----------------------------------------------------------------------------- FSP cells


@pytest.mark.parametrize(
    ("name", "count", "cell_type"),
    [
        ("resnet18", 8, baselines.BasicBlock),
        ("resnet50", 16, baselines.Bottleneck),
        ("wrn28_10", 12, baselines.WideBasicBlock),
        ("densenet121", 4, baselines.DenseBlock),
    ],
)
def test_is_cell_flags(models: dict[str, nn.Module], name: str, count: int, cell_type: type) -> None:
    cells = [(n, m) for n, m in models[name].named_modules() if getattr(m, "is_cell", False)]
    assert len(cells) == count
    assert all(type(m) is cell_type and m.fsp_input_index == 0 for _, m in cells)
    stages = models[name].stage_names
    # Every cell sits directly in a stage, in forward order.
    order = [stages.index(n.split(".")[0]) for n, _ in cells]
    assert order == sorted(order)
    if name == "densenet121":
        assert [n for n, _ in cells] == ["dense1", "dense2", "dense3", "dense4"]
        assert [len(m) for _, m in cells] == [6, 12, 24, 16]
    if name == "resnet18":
        assert [n for n, _ in cells] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]


def test_stages_helper(models: dict[str, nn.Module]) -> None:
    for model in models.values():
        assert isinstance(model, baselines.StagedNet)
        stages = model.stages()
        assert tuple(stages) == model.stage_names
        assert all(stages[n] is getattr(model, n) for n in stages)
    assert tuple(models["wrn28_10"].stages()) == ("block1", "block2", "block3")


def test_dense_block_keeps_resolution_and_appends_channels() -> None:
    block = baselines.DenseBlock(8, 3, growth_rate=4).eval()
    x = torch.rand(2, 8, 6, 6)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 8 + 3 * 4, 6, 6)
    # Concatenation order: the block input comes first, unchanged.
    torch.testing.assert_close(out[:, :8], x, rtol=0, atol=0)


def test_wide_block_matches_the_preactivation_formula() -> None:
    torch.manual_seed(0)
    block = baselines.WideBasicBlock(4, 6, stride=2).eval()
    for bn in (block.bn1, block.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 4, 8, 8)

    def bn(m: nn.BatchNorm2d, t: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, 1, 1)
        return ((t - m.running_mean.view(shape)) / torch.sqrt(m.running_var.view(shape) + m.eps)
                * m.weight.view(shape) + m.bias.view(shape))

    assert block.shortcut is not None
    pre = torch.relu(bn(block.bn1, x))
    h = F.conv2d(pre, block.conv1.weight, stride=2, padding=1)
    h = F.conv2d(torch.relu(bn(block.bn2, h)), block.conv2.weight, padding=1)
    expected = h + F.conv2d(pre, block.shortcut.weight, stride=2)
    with torch.no_grad():
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- denoise

# NonLocalDenoise(256): theta, phi 256 -> 128, conv 256 -> 256, BN(256) weight + bias.
DENOISE_256 = 2 * 256 * 128 + 256 * 256 + 2 * 256


def test_denoise_adds_exactly_the_block_and_starts_as_identity(models: dict[str, nn.Module]) -> None:
    plain = models["resnet18"].eval()
    denoised = baselines.resnet18(denoise=[2]).eval()
    assert DENOISE_256 == n_params(NonLocalDenoise(256)) == 131_584
    assert n_params(denoised) == EXPECTED_PARAMS["resnet18"] + DENOISE_256
    assert list(denoised.denoise) == ["layer3"]
    assert isinstance(denoised.denoise["layer3"], NonLocalDenoise)

    result = denoised.load_state_dict(plain.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith("denoise.layer3.") for k in result.missing_keys)

    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(denoised(x), plain(x), rtol=0, atol=0)
        # The block is on the forward path: a nonzero BN scale changes the logits.
        denoised.denoise["layer3"].bn.weight.fill_(1.0)
        assert not torch.allclose(denoised(x), plain(x))


def test_denoise_by_name_equals_by_index() -> None:
    by_index = baselines.resnet18(denoise=[2])
    by_name = baselines.resnet18(denoise=["layer3"])
    bare = baselines.resnet18(denoise="layer3")
    assert by_index.state_dict().keys() == by_name.state_dict().keys() == bare.state_dict().keys()
    mixed = baselines.resnet18(denoise=[3, "layer1", 0])
    assert list(mixed.denoise) == ["layer1", "layer4"]
    assert mixed.denoise["layer1"].conv.weight.shape == (64, 64, 1, 1)
    assert mixed.denoise["layer4"].conv.weight.shape == (512, 512, 1, 1)


def test_denoise_on_small_wrn_and_densenet() -> None:
    wrn = baselines.wrn28_10(depth=10, widen_factor=2, denoise=["block3", 0]).eval()
    assert list(wrn.denoise) == ["block1", "block3"]
    assert wrn.denoise["block1"].conv.weight.shape[0] == 32
    assert wrn.denoise["block3"].conv.weight.shape[0] == 128
    # growth 4: 8 -> 32 (dense1) -> 16 -> 64 -> 32 -> 128 -> 64 -> 128 (dense4)
    dense = baselines.densenet121(growth_rate=4, denoise=[0, "dense4"]).eval()
    assert list(dense.denoise) == ["dense1", "dense4"]
    assert dense.denoise["dense1"].conv.weight.shape[0] == 32
    assert dense.denoise["dense4"].conv.weight.shape[0] == 128
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        assert wrn(x).shape == dense(x).shape == (2, 10)


@pytest.mark.parametrize(
    ("build", "denoise", "error", "match"),
    [
        (baselines.resnet18, [4], ValueError,
         r"resnet18: denoise stage index 4 is out of range; valid: indices "
         r"0\.\.3 or names 'layer1', 'layer2', 'layer3', 'layer4'"),
        (baselines.resnet50, [-1], ValueError, r"resnet50: denoise stage index -1 is out of range"),
        (baselines.resnet18, ["layer5"], ValueError,
         r"unknown denoise stage 'layer5'; valid: indices 0\.\.3 .*Did you mean 'layer\d'\?"),
        (baselines.resnet18, ["block1"], ValueError, r"unknown denoise stage 'block1'.*'layer4'"),
        (baselines.densenet121, ["trans1"], ValueError,
         r"densenet: unknown denoise stage 'trans1'; valid: indices 0\.\.3 or names 'dense1'"),
        (baselines.resnet18, [1.0], TypeError,
         r"denoise entries must be stage indices \(int\) or names \(str\), got 1\.0 of type float"),
        (baselines.resnet18, [True], TypeError, r"got True of type bool"),
    ],
)
def test_bad_denoise_stage(build: Callable[..., nn.Module], denoise: list[object], error: type[Exception],
                           match: str) -> None:
    with pytest.raises(error, match=match):
        build(denoise=denoise)


def test_bad_wrn_denoise_index_lists_three_stages() -> None:
    with pytest.raises(ValueError, match=r"wrn: denoise stage index 3 is out of range; valid: indices 0\.\.2 "
                                         r"or names 'block1', 'block2', 'block3'"):
        baselines.wrn28_10(depth=10, widen_factor=1, denoise=[3])


@pytest.mark.parametrize(
    ("build", "kwargs", "error", "match"),
    [
        (baselines.resnet18, {"num_classes": 0}, ValueError, r"resnet18: num_classes must be >= 1, got 0"),
        (baselines.resnet50, {"in_channels": 2.0}, TypeError,
         r"resnet50: in_channels must be an int, got float"),
        (baselines.wrn28_10, {"depth": 27}, ValueError, r"depth must be 6n \+ 4 .*got 27"),
        (baselines.wrn28_10, {"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\), got 1\.0"),
        (baselines.densenet121, {"reduction": 0.0}, ValueError,
         r"reduction .* must be in \(0, 1\], got 0\.0"),
        (baselines.densenet121, {"growth_rate": 0}, ValueError, r"growth_rate must be >= 1, got 0"),
    ],
)
def test_bad_hyperparameters(build: Callable[..., nn.Module], kwargs: dict[str, object],
                             error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        build(**kwargs)


# ----------------------------------------------------------------------------- zoo


def test_build_model_through_the_zoo() -> None:
    model = robnet.build_model("resnet18", denoise=[1])
    assert isinstance(model, baselines.CifarResNet)
    assert list(model.denoise) == ["layer2"]
    # NonLocalDenoise(128): 2 * 128 * 64 + 128 * 128 + 2 * 128
    assert n_params(model) == EXPECTED_PARAMS["resnet18"] + 33_024
    dense = robnet.build_model("densenet121", num_classes=100)
    assert n_params(dense) == EXPECTED_PARAMS["densenet121"] + 90 * 1025

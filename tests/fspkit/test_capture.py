"""Hook capture: equals the explicit forward_features path, clones, hook removal, selection, errors, DDP."""

import itertools
import json
import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robnet
import robnet.models.genotype
from fspkit.capture import capture_cells, choose_cells, find_cells, resolve_cells
from fspkit.fsp import fsp_matrix, fsp_pair_distance
from robnet.utils import unwrap_model

LAYERS = 5
CELL_NAMES = [f"cells.{i}" for i in range(LAYERS)]


def _tiny(kind: str) -> robnet.RobNet:
    torch.manual_seed(0)
    genotype = (robnet.ROBNET_LARGE if kind == "large"
                else robnet.models.genotype.sample(0, cell_free=True, layers=LAYERS))
    return robnet.build_robnet(genotype, C=8, layers=LAYERS).eval()


def _x(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._forward_hooks_with_kwargs
               and not m._forward_pre_hooks_with_kwargs for m in model.modules())


class Block(nn.Module):
    is_cell = True

    def __init__(self, c: int, *, relu_input: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.relu_input = relu_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu_input:
            x = F.relu_(x)  # modifies the caller's tensor in place
        return self.conv(x)


class InplaceNet(nn.Module):
    """block -> ReLU(inplace=True) -> block2; ``unused`` is flagged but never called."""

    def __init__(self, c: int = 4, *, relu_input: bool = False) -> None:
        super().__init__()
        self.block = Block(c, relu_input=relu_input)
        self.relu = nn.ReLU(inplace=True)
        self.block2 = Block(c)
        self.unused = Block(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.relu(self.block(x)))


class SuperCell(nn.Module):
    """Supernet-style cell: forward(s0, s1, genotype_cell) with a non-tensor architecture argument."""

    is_cell = True
    fsp_input_index = 1

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(c, c, 1)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, genotype_cell: tuple[str, ...]) -> torch.Tensor:
        out = self.conv0(s0)
        if "01" in genotype_cell:
            out = out + self.conv1(s1)
        return out


class SuperNet(nn.Module):
    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.cells = nn.ModuleList([SuperCell(c) for _ in range(3)])

    def forward(self, x: torch.Tensor, genotype: list[tuple[str, ...]], *,
                by_keyword: bool = False) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell, g in zip(self.cells, genotype, strict=True):
            out = cell(s0, s1=s1, genotype_cell=g) if by_keyword else cell(s0, s1, g)
            s0, s1 = s1, out
        return s1


@pytest.mark.parametrize("kind", ["large", "free"])
def test_capture_equals_forward_features(kind):
    model = _tiny(kind)
    x = _x()
    with torch.no_grad():
        ref = model.forward_features(x)
        plain = model(x)
        with capture_cells(model) as cap:
            out = model(x)
    assert cap.names == CELL_NAMES
    assert cap.modules == list(model.cells)
    assert torch.equal(out, plain)  # hooks change nothing
    assert [name for name, _, _ in cap.features] == CELL_NAMES
    for (_, f_in, f_out), (r_in, r_out) in zip(cap.features, ref, strict=True):
        assert torch.equal(f_in, r_in)
        assert torch.equal(f_out, r_out)
    # reduction cells halve the spatial size: the input is the s1 argument (3C or 4C channels)
    assert [tuple(f.shape) for _, f, _ in cap.features][:2] == [(2, 24, 16, 16), (2, 32, 16, 16)]
    assert cap.features[1][2].shape == (2, 64, 8, 8)
    assert cap.counts == dict.fromkeys(CELL_NAMES, 1)
    assert _no_hooks(model)


def test_find_and_resolve_cells():
    model = _tiny("large")
    assert [n for n, _ in find_cells(model)] == CELL_NAMES
    assert [n for n, _ in resolve_cells(model, "cells.[0-2]")] == CELL_NAMES[:3]
    # network order, no duplicates
    assert [n for n, _ in resolve_cells(model, ["cells.3", "cells.1"])] == ["cells.1", "cells.3"]
    assert [n for n, _ in resolve_cells(model, ["cells.1", "cells.[0-1]"])] == ["cells.0", "cells.1"]
    assert [n for n, _ in resolve_cells(model, "cells.0.preprocess?")] == ["cells.0.preprocess0",
                                                                          "cells.0.preprocess1"]
    # fnmatch semantics: '*' also crosses dots, so it reaches submodules
    assert "cells.0.preprocess0.op" in [n for n, _ in resolve_cells(model, "cells.0.preprocess*")]


def test_glob_and_name_selection_capture_only_those():
    model = _tiny("large")
    x = _x()
    with torch.no_grad():
        ref = model.forward_features(x)
        with capture_cells(model, cells="cells.[0-2]") as cap:
            model(x)
        with capture_cells(model, cells=["cells.4", "cells.0.preprocess1"]) as cap2:
            model(x)
    assert [n for n, _, _ in cap.features] == CELL_NAMES[:3]
    assert torch.equal(cap.features[2][2], ref[2][1])
    assert cap2.names == ["cells.0.preprocess1", "cells.4"]
    # a generic module's input is its first argument: preprocess1 sees the cell's s1
    name, f_in, _ = cap2.features[0]
    assert name == "cells.0.preprocess1" and torch.equal(f_in, ref[0][0])
    assert torch.equal(cap2.features[1][1], ref[4][0])


def test_unknown_names_raise_with_suggestions():
    model = _tiny("large")
    with pytest.raises(ValueError, match=r"'cells\.99' matches no module of RobNet; did you mean 'cells"):
        capture_cells(model, cells="cells.99")
    with pytest.raises(ValueError, match=r"'cell.1' matches no module.*did you mean 'cells.1'"):
        capture_cells(model, cells=["cells.0", "cell.1"])
    with pytest.raises(ValueError, match=r"'blocks\.\*' matches no module"):
        capture_cells(model, cells="blocks.*")
    with pytest.raises(ValueError, match="empty list"):
        capture_cells(model, cells=[])
    with pytest.raises(TypeError, match="cells must be None, a glob string or a list"):
        capture_cells(model, cells=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_pair must be callable"):
        capture_cells(model, on_pair="fsp")  # type: ignore[arg-type]
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"no cell found in Sequential.*Hint: pass cells=GLOB.*'0', '1'"):
        capture_cells(plain)
    assert _no_hooks(model)


def test_inplace_relu_after_the_cell_does_not_change_the_capture():
    torch.manual_seed(0)
    net = InplaceNet().eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        expected = net.block(x)
        assert (expected < 0).any()
        with capture_cells(net, cells=["block", "block2"]) as cap:
            net(x)
    (n1, in1, out1), (n2, in2, _) = cap.features
    assert (n1, n2) == ("block", "block2")
    assert torch.equal(in1, x)
    assert torch.equal(out1, expected)  # negatives survive the in-place ReLU that followed
    assert torch.equal(in2, expected.relu())


def test_cell_modifying_its_input_in_place():
    torch.manual_seed(0)
    net = InplaceNet(relu_input=True).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad(), capture_cells(net, cells="block") as cap:
        net(x.clone())
    assert torch.equal(cap.features[0][1], x)  # storing mode cloned the input before the cell ran
    with pytest.raises(ValueError, match=r"'block' \(Block\) modified its input in place.*storing mode"), \
            torch.no_grad(), capture_cells(net, cells="block", on_pair=lambda *a: None):
        net(x.clone())
    assert _no_hooks(net)


def test_hooks_removed_after_normal_exit_and_after_exceptions():
    model = _tiny("large")
    with capture_cells(model) as cap:
        assert not _no_hooks(model)
        assert len(model.cells[0]._forward_pre_hooks) == 1 and len(model.cells[0]._forward_hooks) == 1
        with torch.no_grad():
            model(_x())
    assert _no_hooks(model)
    # an exception in the block: hooks removed, the original error propagates (no never-fired error)
    with pytest.raises(RuntimeError, match="boom"), capture_cells(model):
        raise RuntimeError("boom")
    assert _no_hooks(model)
    # an exception inside a cell's forward (wrong channel count) leaves nothing behind either
    with pytest.raises(RuntimeError, match="channels"), torch.no_grad(), capture_cells(model):
        model(torch.rand(1, 4, 16, 16))
    assert _no_hooks(model)
    # the capture object can be reused; each with block starts afresh
    with torch.no_grad(), cap:
        model(_x())
    assert len(cap.features) == LAYERS and _no_hooks(model)


def test_never_fired_cell_raises_naming_it():
    net = InplaceNet().eval()
    x = torch.randn(1, 4, 6, 6)
    with pytest.raises(ValueError, match=r"cell 'unused' never ran during the capture"), capture_cells(net):
        net(x)
    assert _no_hooks(net)
    with pytest.raises(ValueError, match=r"cell 'block' never ran during the capture \(nor did 'block2'\)"), \
            capture_cells(net, cells=["block", "block2"]):
        pass
    with capture_cells(net, check_fired=False) as cap:
        net(x)
    assert cap.counts == {"block": 1, "block2": 1, "unused": 0}


def test_callback_mode_streams_without_storing():
    model = _tiny("large")
    x = torch.cat([_x(3, seed=0), _x(3, seed=1)])  # clean rows then "adversarial" rows
    calls: list[tuple[str, int, tuple[int, ...], tuple[int, ...]]] = []
    fused: dict[str, torch.Tensor] = {}

    def on_pair(name: str, index: int, f_in: torch.Tensor, f_out: torch.Tensor) -> None:
        assert not f_in.requires_grad and not f_out.requires_grad
        calls.append((name, index, tuple(f_in.shape), tuple(f_out.shape)))
        fused[name] = fsp_pair_distance(f_in, f_out, split=3)

    with capture_cells(model, on_pair=on_pair) as cap:
        model(x)  # with grad enabled: the maps are detached
        model(x)
    assert cap.features == []
    assert [(n, i) for n, i, _, _ in calls] == [(n, i) for i, n in enumerate(CELL_NAMES)] * 2
    assert cap.counts == dict.fromkeys(CELL_NAMES, 2)
    with torch.no_grad():
        ref = model.forward_features(x)
    for (name, _, in_shape, out_shape), (r_in, r_out) in zip(calls[:LAYERS], ref, strict=True):
        assert in_shape == tuple(r_in.shape) and out_shape == tuple(r_out.shape)
        two_pass = ((fsp_matrix(r_in[:3], r_out[:3]) - fsp_matrix(r_in[3:], r_out[3:])) ** 2).sum(dim=(1, 2))
        torch.testing.assert_close(fused[name], two_pass, rtol=1e-5, atol=1e-7)
        assert fused[name].shape == (3,) and bool((fused[name] > 0).all())


def test_supernet_style_cells_with_a_genotype_argument():
    torch.manual_seed(0)
    net = SuperNet().eval()
    x = _x()
    genotype = [("01",), ("10",), ("01", "11")]
    with torch.no_grad():
        s = net.stem(x)
        c0 = net.cells[0](s, s, genotype[0])
        c1 = net.cells[1](s, c0, genotype[1])
        with capture_cells(net) as cap:
            net(x, genotype)
        with capture_cells(net, cells="cells.1") as cap_kw:
            net(x, genotype, by_keyword=True)
    assert cap.names == ["cells.0", "cells.1", "cells.2"]
    assert torch.equal(cap.features[1][1], c0)  # input = s1 (fsp_input_index = 1)
    assert torch.equal(cap.features[2][1], c1)
    assert torch.equal(cap_kw.features[0][1], c0)  # s1 passed by keyword is found via the signature


def test_model_mode_is_not_changed():
    model = _tiny("large").train()
    model.cells[1].eval()
    modes = {n: m.training for n, m in model.named_modules()}
    with torch.no_grad(), capture_cells(model):
        model(_x())
    assert {n: m.training for n, m in model.named_modules()} == modes
    model.eval()
    with torch.no_grad(), capture_cells(model, cells="cells.0"):
        model(_x())
    assert not any(m.training for m in model.modules())


def test_autocast_maps_are_bf16_and_fsp_is_float32():
    model = _tiny("large")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), capture_cells(model) as cap:
        model(_x())
        g = fsp_matrix(cap.features[-1][1], cap.features[-1][2])
    assert cap.features[-1][2].dtype == torch.bfloat16
    assert g.dtype == torch.float32
    assert torch.equal(g, fsp_matrix(cap.features[-1][1].float(), cap.features[-1][2].float()))


def test_non_tensor_output_raises():
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pair(x)[0]

    net = Net()
    with pytest.raises(TypeError, match=r"cell 'pair' \(Pair\) returned tuple, expected a Tensor"), \
            capture_cells(net, cells="pair"):
        net(torch.zeros(1, 1, 2, 2))
    assert _no_hooks(net)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_wrapped_model():
    import torch.distributed as dist

    model = _tiny("free")
    x = _x()
    with torch.no_grad(), capture_cells(model) as plain:
        model(x)
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{_free_port()}")
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        assert unwrap_model(ddp) is model
        assert [n for n, _ in find_cells(ddp)] == CELL_NAMES
        assert [n for n, _ in resolve_cells(ddp, "cells.[0-1]")] == ["cells.0", "cells.1"]
        with pytest.raises(ValueError, match=r"'module\.cells\.0' matches no module of RobNet"):
            capture_cells(ddp, cells="module.cells.0")
        with torch.no_grad(), capture_cells(ddp) as cap:
            ddp(x)
        assert cap.names == CELL_NAMES
        for (n, a_in, a_out), (m, b_in, b_out) in zip(cap.features, plain.features, strict=True):
            assert n == m and torch.equal(a_in, b_in) and torch.equal(a_out, b_out)
        assert _no_hooks(ddp)
    finally:
        dist.destroy_process_group()


def test_inference_mode_storing_and_callback():
    model = _tiny("large")
    x = _x()
    seen: list[str] = []
    with torch.inference_mode():
        with capture_cells(model) as cap:
            model(x)
        with capture_cells(model, on_pair=lambda name, i, a, b: seen.append(name)):
            model(x)
        ref = model.forward_features(x)
    assert seen == CELL_NAMES
    assert all(torch.equal(a, r_out) for (_, _, a), (_, r_out) in zip(cap.features, ref, strict=True))


# ----------------------------------------------------------------------------- cells="auto"


@pytest.fixture
def no_flags(monkeypatch):
    """The zoo's block classes without their is_cell flags, as a network from elsewhere would be."""
    from robnet.models import baselines

    for cls in (baselines.BasicBlock, baselines.Bottleneck, baselines.WideBasicBlock, baselines.DenseBlock):
        monkeypatch.setattr(cls, "is_cell", False)


def _stage_names(stages: dict[str, int]) -> list[str]:
    return [f"{stage}.{i}" for stage, n in stages.items() for i in range(n)]


@pytest.mark.parametrize(("name", "expected", "kind"), [
    ("resnet18", _stage_names({"layer1": 2, "layer2": 2, "layer3": 2, "layer4": 2}), "BasicBlock"),
    ("wrn28_10", _stage_names({"block1": 4, "block2": 4, "block3": 4}), "WideBasicBlock"),
    ("densenet121", _stage_names({"dense1": 6, "dense2": 12, "dense3": 24, "dense4": 16}), "DenseLayer"),
])
def test_auto_cells_of_the_zoo_baselines_without_flags(name, expected, kind, no_flags):
    torch.manual_seed(0)
    model = robnet.build_model(name).train()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    stats = bn.running_mean.clone()
    assert find_cells(model) == []
    choice = choose_cells(model)
    assert list(choice.names) == expected and choice.method == "repeated"
    assert [g.kind for g in choice.groups] == [kind]
    assert choice.groups[0].reason.startswith(f"{len(expected)} x {kind} ({expected[0]}, ")
    assert "each mapping (N, C, H, W) -> (N, C, H, W)" in choice.groups[0].reason
    assert choice.notes[0].startswith(f"nesting level 0 has the most such blocks ({len(expected)}")
    assert [n for n, _ in resolve_cells(model, "auto")] == expected
    # the probe ran in eval mode (BN statistics untouched) and left the flags as they were
    assert model.training and all(m.training for m in model.modules()) and torch.equal(bn.running_mean, stats)
    assert _no_hooks(model)
    json.dumps(choice.to_dict())


def test_auto_uses_the_flags_when_present():
    model = _tiny("large")
    choice = choose_cells(model)
    assert choice.method == "is_cell" and list(choice.names) == CELL_NAMES
    assert choice.lines() == ["5 x RobNetCell (cells.0, cells.1, cells.2, cells.3, cells.4): flagged is_cell = True "
                              "by the model's own class"]
    flagged = robnet.build_model("resnet18")
    assert list(choose_cells(flagged).names) == [n for n, _ in find_cells(flagged)]  # same as without the flags


class TVBasicBlock(nn.Module):
    """torchvision's BasicBlock: conv-bn-relu-conv-bn + (downsample) shortcut, no is_cell flag."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TVResNet(nn.Module):
    """torchvision's ResNet layout (7x7 stem, max-pool, layer1..layer4 of _make_layer, avgpool, fc), tiny widths."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), width: int = 4, num_classes: int = 10) -> None:
        super().__init__()
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(width, layers[0])
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [TVBasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [TVBasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def test_auto_cells_of_a_torchvision_style_resnet():
    model = TVResNet().eval()
    expected = _stage_names({"layer1": 2, "layer2": 2, "layer3": 2, "layer4": 2})
    choice = choose_cells(model)
    assert list(choice.names) == expected
    assert choice.groups[0].reason == (
        "8 x TVBasicBlock (layer1.0, layer1.1, layer2.0, layer2.1, ... layer4.1): repeated blocks in Sequential "
        "layer1, layer2, layer3, layer4, each mapping (N, C, H, W) -> (N, C, H, W) (probe: (2, 4, 8, 8) -> "
        "(2, 4, 8, 8) at layer1.0)")
    # the in-place ReLU at the end of each block does not corrupt the capture: the next block's input is this output
    x = _x(seed=4)
    with torch.no_grad(), capture_cells(model, "auto") as cap:
        model(x)
    assert cap.names == expected and cap.choice == choice
    for (_, _, out), (_, nxt, _) in itertools.pairwise(cap.features):
        assert torch.equal(out, nxt)
    assert _no_hooks(model)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class UserCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(ConvBlock(3, 4), ConvBlock(4, 4), nn.MaxPool2d(2), ConvBlock(4, 8))
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def test_auto_cells_of_a_plain_user_cnn_and_of_nested_stages():
    choice = choose_cells(UserCNN())
    assert list(choice.names) == ["features.0", "features.1", "features.3"]
    assert choice.groups[0].reason.startswith("3 x ConvBlock (features.0, features.1, features.3): repeated blocks "
                                              "in Sequential features")
    # stages of blocks inside a Sequential: the level with the most blocks wins (blocks, not stages)
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
                           nn.Sequential(ConvBlock(4, 4), ConvBlock(4, 4)),
                           nn.Sequential(ConvBlock(4, 8), ConvBlock(8, 8)),
                           nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    choice = choose_cells(nested)
    assert list(choice.names) == ["1.0", "1.1", "2.0", "2.1"]
    assert choice.notes == ("nesting level 1 has the most such blocks (4; level 0: 3)",)
    # wrapped for normalization: the same blocks under the prefix 'model.'
    wrapped = robnet.models.with_normalization(UserCNN(), "cifar10")
    assert list(choose_cells(wrapped).names) == ["model.features.0", "model.features.1", "model.features.3"]
    with torch.no_grad(), capture_cells(wrapped, "auto") as cap:
        wrapped(_x())
    assert [n for n, _, _ in cap.features] == ["model.features.0", "model.features.1", "model.features.3"]


class TokenBlock(nn.Module):
    """A transformer-style block on (N, L, D) tokens."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class TinyViT(nn.Module):
    def __init__(self, d: int = 8, conv_blocks: int = 0) -> None:
        super().__init__()
        self.convs = nn.ModuleList(ConvBlock(3, 3) for _ in range(conv_blocks))
        self.patch = nn.Conv2d(3, d, 4, stride=4)
        self.blocks = nn.ModuleList(TokenBlock(d) for _ in range(3))
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(x)
        tokens = self.patch(x).flatten(2).transpose(1, 2)  # (N, L, D)
        for block in self.blocks:
            tokens = block(tokens)
        return self.head(tokens.mean(1))


def test_auto_cells_refuse_token_blocks_and_models_without_repeated_blocks():
    with pytest.raises(ValueError, match=r"cells='auto': no repeated block of TinyViT takes and returns \(N, C, H, W\) "
                                         r"feature maps \(3 x TokenBlock; blocks\.0: its input is 3-D \(2, 64, 8\), "
                                         r"e\.g\. \(N, L, D\) tokens, not an \(N, C, H, W\) map\)\. FSP matrices "
                                         r"\(docs/design\.md §5\) need 4-D maps"):
        choose_cells(TinyViT())
    hybrid = choose_cells(TinyViT(conv_blocks=2))  # the conv blocks are chosen, the token blocks left out
    assert list(hybrid.names) == ["convs.0", "convs.1"]
    assert hybrid.notes[1] == ("left out 3 block(s) at that level (blocks.0, blocks.1, blocks.2): blocks.0 its input "
                               "is 3-D (2, 64, 8), e.g. (N, L, D) tokens, not an (N, C, H, W) map")
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(ValueError, match=r"cells='auto' found no repeated block in Sequential: no nn\.Sequential / "
                                         r"ModuleList / ModuleDict holds two or more sub-networks of one class "
                                         r"\(single layers such as Conv2d do not count\)\. Hint: pass cells=GLOB "
                                         ".*is_cell"):
        capture_cells(flat, "auto")


def test_auto_probe_input_and_its_errors():
    class Fixed(UserCNN):
        """Needs 16x16 inputs: the default 32x32 probe fails."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x).flatten(1)[:, :8] if x.shape[-1] == 16 else self.features(x).flatten(1))

    with pytest.raises(ValueError, match=r"cells='auto': the probe forward of Fixed on an input of shape "
                                         r"\(2, 3, 32, 32\) failed \(RuntimeError: .*\)\. Hint: pass example="):
        choose_cells(Fixed())
    assert list(choose_cells(Fixed(), example=torch.rand(5, 3, 16, 16)).names) == ["features.0", "features.1",
                                                                                  "features.3"]
    no_conv = nn.Sequential(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
    with pytest.raises(ValueError, match=r"has no Conv2d to guess its input channels from\. Hint: pass example="):
        choose_cells(no_conv)
    with pytest.raises(ValueError, match=r"its input is 2-D \(2, 4\), not an \(N, C, H, W\) map"):
        choose_cells(no_conv, example=torch.rand(3, 4))

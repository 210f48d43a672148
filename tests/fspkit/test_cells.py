"""Cell selection: flagged cells, names and globs, their errors, and cells="auto" with its reasons."""

import itertools
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import robnet
from fspkit.capture import capture_cells
from fspkit.cells import cell_input, choose_cells, find_cells, resolve_cells
from tests.fspkit._cell_nets import CELL_NAMES, images, no_hooks, tiny_net


def test_find_and_resolve_cells():
    model = tiny_net("large")
    assert [n for n, _ in find_cells(model)] == CELL_NAMES
    assert [n for n, _ in resolve_cells(model, "cells.[0-2]")] == CELL_NAMES[:3]
    # network order, no duplicates
    assert [n for n, _ in resolve_cells(model, ["cells.3", "cells.1"])] == ["cells.1", "cells.3"]
    assert [n for n, _ in resolve_cells(model, ["cells.1", "cells.[0-1]"])] == ["cells.0", "cells.1"]
    assert [n for n, _ in resolve_cells(model, "cells.0.preprocess?")] == ["cells.0.preprocess0",
                                                                          "cells.0.preprocess1"]
    # fnmatch semantics: '*' also crosses dots, so it reaches submodules
    assert "cells.0.preprocess0.op" in [n for n, _ in resolve_cells(model, "cells.0.preprocess*")]


def test_unknown_names_raise_with_suggestions():
    model = tiny_net("large")
    with pytest.raises(ValueError, match=r"'cells\.99' matches no module of RobNet; did you mean 'cells"):
        resolve_cells(model, "cells.99")
    with pytest.raises(ValueError, match=r"'cell.1' matches no module.*did you mean 'cells.1'"):
        resolve_cells(model, ["cells.0", "cell.1"])
    with pytest.raises(ValueError, match=r"'blocks\.\*' matches no module"):
        resolve_cells(model, "blocks.*")
    with pytest.raises(ValueError, match="empty list"):
        resolve_cells(model, [])
    with pytest.raises(TypeError, match="cells must be None, a glob string or a list"):
        resolve_cells(model, 3)  # type: ignore[arg-type]
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"no cell found in Sequential.*Hint: pass cells=GLOB.*'0', '1'"):
        resolve_cells(plain)


def test_cell_input_is_the_argument_at_fsp_input_index():
    class TwoInputs(nn.Module):
        fsp_input_index = 1

        def forward(self, s0: torch.Tensor, s1: torch.Tensor, tag: str = "") -> torch.Tensor:
            return s0 + s1

    a, b = torch.zeros(1), torch.ones(1)
    cell = TwoInputs()
    assert cell_input(cell, (a, b, "x"), {}) is b
    assert cell_input(cell, (a,), {"s1": b}) is b  # passed by keyword: found through the signature
    assert cell_input(cell, (a,), {}) is None
    assert cell_input(nn.Conv2d(1, 1, 1), (a,), {}) is a  # no fsp_input_index: the first argument


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
    assert no_hooks(model)
    json.dumps(choice.to_dict())


def test_auto_uses_the_flags_when_present():
    model = tiny_net("large")
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
    x = images(seed=4)
    with torch.no_grad(), capture_cells(model, "auto") as cap:
        model(x)
    assert cap.names == expected and cap.choice == choice
    for (_, _, out), (_, nxt, _) in itertools.pairwise(cap.features):
        assert torch.equal(out, nxt)
    assert no_hooks(model)


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
        wrapped(images())
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

"""CIFAR baseline networks of the paper's Table 1: ResNet-18/50, WRN-28-10, DenseNet-121.

All four are the CIFAR variants (3x3 stem at stride 1, no max-pool, global average pool before
the classifier) with the exact parameter counts of docs/design.md §1 at 10 classes:

==============  ==========  ==============================================================
resnet18        11,173,962  BasicBlock [2, 2, 2, 2], widths 64..512, conv+BN shortcuts
resnet50        23,520,842  Bottleneck [3, 4, 6, 3], expansion 4, conv+BN shortcuts
wrn28_10        36,479,194  pre-activation wide ResNet (Zagoruyko & Komodakis 2016), 1x1
                            shortcut conv where the shape changes, final BN+ReLU
densenet121      6,956,298  growth 32, compression 0.5, blocks [6, 12, 24, 16], BN-ReLU-1x1-
                            BN-ReLU-3x3 bottlenecks, BN-ReLU-1x1-avgpool transitions
==============  ==========  ==============================================================

Inputs are images in [0, 1]; there is no normalization layer (the official RobNets setting).
ReLUs are never in-place, so hook captures of block inputs stay intact.

Cells for the FSP toolkit (class attribute ``is_cell = True``; the cell's input is its first
tensor argument, ``fsp_input_index = 0``): every residual block for the ResNets and the WRN; for
DenseNet each of the four dense *blocks* (not each dense layer, whose output is its input with
32 channels appended, nor the transitions, which change the resolution). A dense block keeps
the spatial size, so its input and output give a well-defined FSP matrix.

Feature denoising (Xie et al., CVPR 2019): ``denoise`` selects stages after which a
:class:`~robnet.models.ops.NonLocalDenoise` block is applied to the stage output. Stages are named
``layer1..layer4`` (ResNets), ``block1..block3`` (WRN), ``dense1..dense4`` (DenseNet) and may be
given by 0-based index or by name. The blocks live in ``model.denoise`` (an ``nn.ModuleDict``
keyed by stage name), which exists only when some stage is selected, so the plain model keeps
its exact parameter count and state_dict keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robnet.models.ops import NonLocalDenoise

DenoiseSpec = Iterable[int | str]

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "CifarDenseNet",
    "CifarResNet",
    "DenseBlock",
    "DenseLayer",
    "StagedNet",
    "Transition",
    "WideBasicBlock",
    "WideResNet",
    "densenet121",
    "resnet18",
    "resnet50",
    "wrn28_10",
]


def _check_positive(name: str, value: int, model: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{model}: {name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{model}: {name} must be >= 1, got {value}")


class StagedNet(nn.Module):
    """Base of the baselines: named stages, optional denoise blocks after chosen stages.

    Subclasses set ``stage_names`` (in forward order) and call :meth:`_init_denoise` once the
    stage output widths are known.
    """

    stage_names: ClassVar[tuple[str, ...]] = ()
    arch_name: str = "model"  # used in error messages

    def stages(self) -> dict[str, nn.Module]:
        """The stages in forward order, by name (the keys accepted by ``denoise``)."""
        return {name: self.get_submodule(name) for name in self.stage_names}

    def _resolve_denoise(self, denoise: DenoiseSpec) -> list[str]:
        """Map stage indices/names to stage names, in forward order; raise on anything else."""
        items: Iterable[int | str] = [denoise] if isinstance(denoise, str | int) else denoise
        names = self.stage_names
        valid = f"indices 0..{len(names) - 1} or names {', '.join(repr(n) for n in names)}"
        chosen: set[str] = set()
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise TypeError(
                    f"{self.arch_name}: denoise entries must be stage indices (int) or names (str), "
                    f"got {item!r} of type {type(item).__name__}; valid: {valid}"
                )
            if isinstance(item, int):
                if not 0 <= item < len(names):
                    raise ValueError(f"{self.arch_name}: denoise stage index {item} is out of range; "
                                     f"valid: {valid}")
                chosen.add(names[item])
            elif item in names:
                chosen.add(item)
            else:
                close = difflib.get_close_matches(item, names, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"{self.arch_name}: unknown denoise stage {item!r}; valid: {valid}.{hint}")
        return [n for n in names if n in chosen]

    def _init_denoise(self, denoise: DenoiseSpec, channels: dict[str, int]) -> None:
        """Create ``self.denoise`` for the chosen stages; ``channels`` maps stage -> output width."""
        chosen = self._resolve_denoise(denoise)
        self._denoised: frozenset[str] = frozenset(chosen)
        if chosen:
            self.denoise = nn.ModuleDict({n: NonLocalDenoise(channels[n]) for n in chosen})

    def _after_stage(self, name: str, out: torch.Tensor) -> torch.Tensor:
        if name in self._denoised:
            block = self.denoise[name]
            return block(out)
        return out


# ----------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """ResNet basic block: relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x)).

    The shortcut is the identity, or conv1x1(stride) + BN where the shape changes.
    """

    is_cell = True
    fsp_input_index = 0
    expansion: ClassVar[int] = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 (planes) -> 3x3 (planes, stride) -> 1x1 (4 * planes), each + BN."""

    is_cell = True
    fsp_input_index = 0
    expansion: ClassVar[int] = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Sequential:
    # An empty Sequential is the identity and keeps the state_dict key set of the usual layout.
    if stride == 1 and in_planes == out_planes:
        return nn.Sequential()
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False),
        nn.BatchNorm2d(out_planes),
    )


class CifarResNet(StagedNet):
    """CIFAR ResNet: conv3x3 (in -> 64) + BN + ReLU, four stages (64, 128, 256, 512 planes;
    stride 1, 2, 2, 2), global average pool, ``linear``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        num_blocks: blocks per stage.
        num_classes: classifier outputs.
        in_channels: image channels.
        denoise: stages (0..3 or ``"layer1".."layer4"``) followed by a denoise block.
    """

    stage_names = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], num_blocks: tuple[int, int, int, int], *,
                 num_classes: int = 10, in_channels: int = 3, denoise: DenoiseSpec = (),
                 arch_name: str = "resnet") -> None:
        super().__init__()
        self.arch_name = arch_name
        _check_positive("num_classes", num_classes, arch_name)
        _check_positive("in_channels", in_channels, arch_name)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        channels: dict[str, int] = {}
        for name, planes, n, stride in zip(self.stage_names, (64, 128, 256, 512), num_blocks, (1, 2, 2, 2),
                                           strict=True):
            blocks = []
            for s in [stride] + [1] * (n - 1):
                blocks.append(block(in_planes, planes, s))
                in_planes = planes * block.expansion
            setattr(self, name, nn.Sequential(*blocks))
            channels[name] = in_planes
        self.linear = nn.Linear(in_planes, num_classes)
        self._init_denoise(denoise, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        for name in self.stage_names:
            out = self._after_stage(name, self.get_submodule(name)(out))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet18(*, num_classes: int = 10, in_channels: int = 3, denoise: DenoiseSpec = ()) -> CifarResNet:
    """CIFAR ResNet-18 (BasicBlock [2, 2, 2, 2]): 11,173,962 parameters at 10 classes."""
    return CifarResNet(BasicBlock, (2, 2, 2, 2), num_classes=num_classes, in_channels=in_channels,
                       denoise=denoise, arch_name="resnet18")


def resnet50(*, num_classes: int = 10, in_channels: int = 3, denoise: DenoiseSpec = ()) -> CifarResNet:
    """CIFAR ResNet-50 (Bottleneck [3, 4, 6, 3]): 23,520,842 parameters at 10 classes."""
    return CifarResNet(Bottleneck, (3, 4, 6, 3), num_classes=num_classes, in_channels=in_channels,
                       denoise=denoise, arch_name="resnet50")


# ----------------------------------------------------------------------------- Wide ResNet


class WideBasicBlock(nn.Module):
    """Pre-activation wide block: conv3x3(relu(BN(conv3x3(relu(BN(x)))))) + shortcut.

    Where the shape changes, the shortcut is a 1x1 conv (stride, no BN) applied to the
    pre-activated input ``relu(BN(x))``, as in Zagoruyko & Komodakis (2016); otherwise it is ``x``.
    """

    is_cell = True
    fsp_input_index = 0

    def __init__(self, in_planes: int, out_planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.equal_in_out = stride == 1 and in_planes == out_planes
        self.shortcut: nn.Module | None = (
            None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(StagedNet):
    """WRN-depth-k for CIFAR: conv3x3 (in -> 16), three groups of (depth - 4) / 6 blocks with
    16k, 32k, 64k channels (stride 1, 2, 2), BN + ReLU, global average pool, ``fc``.

    Args:
        depth: 6n + 4.
        widen_factor: k.
        dropout: dropout probability between the two convs of each block.
        num_classes: classifier outputs.
        in_channels: image channels.
        denoise: stages (0..2 or ``"block1".."block3"``) followed by a denoise block.
    """

    stage_names = ("block1", "block2", "block3")
    arch_name = "wrn"

    def __init__(self, *, depth: int = 28, widen_factor: int = 10, dropout: float = 0.0,
                 num_classes: int = 10, in_channels: int = 3, denoise: DenoiseSpec = ()) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes, self.arch_name)
        _check_positive("in_channels", in_channels, self.arch_name)
        _check_positive("widen_factor", widen_factor, self.arch_name)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"wrn: depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"wrn: dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        widths = (16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, 16, 3, stride=1, padding=1, bias=False)
        in_planes = 16
        channels: dict[str, int] = {}
        for name, width, stride in zip(self.stage_names, widths, (1, 2, 2), strict=True):
            blocks = [WideBasicBlock(in_planes if i == 0 else width, width, stride if i == 0 else 1, dropout)
                      for i in range(n)]
            setattr(self, name, nn.Sequential(*blocks))
            channels[name] = in_planes = width
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        self._init_denoise(denoise, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for name in self.stage_names:
            out = self._after_stage(name, self.get_submodule(name)(out))
        out = F.relu(self.bn1(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def wrn28_10(*, num_classes: int = 10, in_channels: int = 3, denoise: DenoiseSpec = (), depth: int = 28,
             widen_factor: int = 10, dropout: float = 0.0) -> WideResNet:
    """WRN-28-10 (pre-activation): 36,479,194 parameters at 10 classes."""
    return WideResNet(depth=depth, widen_factor=widen_factor, dropout=dropout, num_classes=num_classes,
                      in_channels=in_channels, denoise=denoise)


# ----------------------------------------------------------------------------- DenseNet


class DenseLayer(nn.Module):
    """Dense bottleneck: cat(x, conv3x3(relu(BN(conv1x1(relu(BN(x))))))), adding ``growth`` channels.

    The 1x1 conv has ``4 * growth`` outputs (Huang et al. 2017, DenseNet-BC).
    """

    def __init__(self, in_planes: int, growth_rate: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, 4 * growth_rate, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth_rate)
        self.conv2 = nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)  # (N, C + growth, H, W)


class DenseBlock(nn.Sequential):
    """A dense block: ``n`` :class:`DenseLayer` in sequence (C -> C + n * growth channels).

    This is the DenseNet cell for the FSP toolkit: same resolution in and out.
    """

    is_cell = True
    fsp_input_index = 0

    def __init__(self, in_planes: int, num_layers: int, growth_rate: int) -> None:
        super().__init__(*(DenseLayer(in_planes + i * growth_rate, growth_rate) for i in range(num_layers)))


class Transition(nn.Module):
    """avg_pool2(conv1x1(relu(BN(x)))): compresses channels and halves the resolution."""

    def __init__(self, in_planes: int, out_planes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_planes)
        self.conv = nn.Conv2d(in_planes, out_planes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)


class CifarDenseNet(StagedNet):
    """CIFAR DenseNet-BC: conv3x3 (in -> 2 * growth), dense blocks separated by transitions that
    keep ``floor(reduction * C)`` channels, final BN + ReLU, global average pool, ``linear``.

    Args:
        num_layers: dense layers per block.
        growth_rate: channels each dense layer adds.
        reduction: compression factor of the transitions, in (0, 1].
        num_classes: classifier outputs.
        in_channels: image channels.
        denoise: stages (0..3 or ``"dense1".."dense4"``) followed by a denoise block.
    """

    stage_names = ("dense1", "dense2", "dense3", "dense4")
    arch_name = "densenet"

    def __init__(self, num_layers: tuple[int, int, int, int] = (6, 12, 24, 16), *, growth_rate: int = 32,
                 reduction: float = 0.5, num_classes: int = 10, in_channels: int = 3,
                 denoise: DenoiseSpec = ()) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes, self.arch_name)
        _check_positive("in_channels", in_channels, self.arch_name)
        _check_positive("growth_rate", growth_rate, self.arch_name)
        if not 0.0 < reduction <= 1.0:
            raise ValueError(f"densenet: reduction (transition compression) must be in (0, 1], "
                             f"got {reduction}")
        planes = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_channels, planes, 3, padding=1, bias=False)
        channels: dict[str, int] = {}
        for i, (name, n) in enumerate(zip(self.stage_names, num_layers, strict=True)):
            setattr(self, name, DenseBlock(planes, n, growth_rate))
            planes += n * growth_rate
            channels[name] = planes
            if i < len(self.stage_names) - 1:
                out_planes = int(planes * reduction)
                setattr(self, f"trans{i + 1}", Transition(planes, out_planes))
                planes = out_planes
        self.bn = nn.BatchNorm2d(planes)
        self.linear = nn.Linear(planes, num_classes)
        self._init_denoise(denoise, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for i, name in enumerate(self.stage_names):
            out = self._after_stage(name, self.get_submodule(name)(out))
            if i < len(self.stage_names) - 1:
                out = self.get_submodule(f"trans{i + 1}")(out)
        out = F.relu(self.bn(out))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def densenet121(*, num_classes: int = 10, in_channels: int = 3, denoise: DenoiseSpec = (),
                growth_rate: int = 32, reduction: float = 0.5) -> CifarDenseNet:
    """CIFAR DenseNet-121 (blocks [6, 12, 24, 16]): 6,956,298 parameters at 10 classes."""
    return CifarDenseNet((6, 12, 24, 16), growth_rate=growth_rate, reduction=reduction,
                         num_classes=num_classes, in_channels=in_channels, denoise=denoise)

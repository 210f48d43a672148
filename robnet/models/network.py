"""RobNet cells and networks with the official module names and state_dict layout.

Macro (docs/design.md §1): stem conv3x3 (3 -> 3C) + BN; L cells with reductions at L//3 and 2L//3 (channels
double, edges leaving s0/s1 at stride 2); global average pool -> Linear(4 * C_last, classes).
Each cell sees s0 = output of cell k-2 and s1 = output of cell k-1.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
from torch import nn

from robnet.models.genotype import EDGES, NUM_NODES, Cell, Genotype, reduction_cells
from robnet.models.ops import ChosenOperation, FactorizedReduce, NonLocalDenoise, ReLUConvBN

GenotypeLike = Genotype | str | Sequence[Sequence[str]]


def as_genotype(genotype: GenotypeLike) -> Genotype:
    """Accept a :class:`Genotype`, its string form, or the official nested lists."""
    if isinstance(genotype, Genotype):
        return genotype
    if isinstance(genotype, str):
        return Genotype.parse(genotype)
    return Genotype.from_official(genotype)


class RobNetCell(nn.Module):
    """One cell: preprocess s0/s1 to C channels, 4 nodes each summing its incoming edges, concat."""

    # Marks the unit fspkit captures by default (fspkit looks for this flag; it never imports robnet).
    is_cell = True
    # The FSP input of a cell is its s1 argument (docs/design.md §5 decision).
    fsp_input_index = 1

    def __init__(self, c_prev_prev: int, c_prev: int, c: int, *, reduction: bool, reduction_prev: bool,
                 cell: Cell) -> None:
        super().__init__()
        self.reduction = reduction
        self.codes = tuple(cell)
        self.preprocess0: nn.Module = (FactorizedReduce(c_prev_prev, c) if reduction_prev
                                       else ReLUConvBN(c_prev_prev, c, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self._ops = nn.ModuleList()
        for node in range(NUM_NODES):
            for src in range(node + 2):
                stride = 2 if reduction and src < 2 else 1
                self._ops.append(ChosenOperation(c, stride, cell[len(self._ops)]))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(NUM_NODES):
            # '00' edges contribute exactly zero: skip them (validation guarantees one live edge).
            terms = [self._ops[offset + j](h) for j, h in enumerate(states) if self.codes[offset + j] != "00"]
            offset += len(states)
            node = terms[0]
            for t in terms[1:]:
                node = node + t
            states.append(node)
        return torch.cat(states[-NUM_NODES:], dim=1)


class _CellSpec(NamedTuple):
    """Channels and strides of one cell of the macro (see :func:`_macro_plan`)."""

    c_prev_prev: int
    c_prev: int
    c: int  # channels per node
    reduction: bool
    reduction_prev: bool


def _macro_plan(C: int, layers: int, *, imagenet_stem: bool, stem_multiplier: int) -> list[_CellSpec]:
    """The cells of the macro in order: reductions at ``layers // 3`` and ``2 * layers // 3``."""
    if imagenet_stem:
        c_prev_prev, c_prev, c_curr, reduction_prev = C, C, C, True
    else:
        c_prev_prev = c_prev = stem_multiplier * C
        c_curr, reduction_prev = C, False
    plan = []
    for i in range(layers):
        reduction = i in RobNet.reduction_indices(layers)
        if reduction:
            c_curr *= 2
        plan.append(_CellSpec(c_prev_prev, c_prev, c_curr, reduction, reduction_prev))
        reduction_prev = reduction
        c_prev_prev, c_prev = c_prev, NUM_NODES * c_curr
    return plan


def _check_macro(genotype: Genotype, C: int, layers: int, denoise: Iterable[int]) -> list[int]:
    for name, value in (("C", C), ("layers", layers)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"RobNet: {name} must be an int, got {type(value).__name__} ({value!r})")
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    if C < 2 or C % 2:
        raise ValueError(f"C must be a positive even number (FactorizedReduce halves it), got {C}")
    genotype.check_layers(layers)
    indices = set(denoise)
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        raise TypeError(f"denoise must hold cell indices (int), got {sorted(indices, key=str)!r}")
    chosen = sorted(indices)
    for i in chosen:
        if not 0 <= i < layers:
            raise ValueError(f"denoise cell index {i} out of range 0..{layers - 1}")
    return chosen


def robnet_num_params(genotype: GenotypeLike, *, C: int = 36, layers: int = 20, num_classes: int = 10,
                      in_channels: int = 3, imagenet_stem: bool = False, stem_multiplier: int = 3,
                      denoise: Iterable[int] = ()) -> int:
    """The exact number of parameters of ``RobNet(genotype, ...)``, computed without building it.

    Cheap for any size (one pass over the cells' edge codes), so an absurd architecture read from
    a file can be refused before anything is allocated. Counts parameters only (BatchNorm running
    statistics are buffers). Arguments are those of :class:`RobNet`.
    """
    g = as_genotype(genotype)
    chosen = _check_macro(g, C, layers, denoise)
    if imagenet_stem:
        half = C // 2
        total = in_channels * half * 9 + 2 * half + half * C * 9 + 2 * C + C * C * 9 + 2 * C
    else:
        stem = stem_multiplier * C
        total = in_channels * stem * 9 + 2 * stem
    plan = _macro_plan(C, layers, imagenet_stem=imagenet_stem, stem_multiplier=stem_multiplier)
    for i, spec in enumerate(plan):
        c = spec.c
        # preprocess0 (1x1 ReLUConvBN or FactorizedReduce) and preprocess1: 1x1 convs, BN affine=False
        total += (spec.c_prev_prev + spec.c_prev) * c
        for edge, code in enumerate(g.cell(i)):
            strided = spec.reduction and EDGES[edge][0] < 2
            if code[1] == "1":  # sep-conv: two (depthwise 3x3 + pointwise 1x1)
                total += 2 * (9 * c + c * c)
            if code[0] == "1" and strided:  # identity at stride 2: FactorizedReduce(c, c)
                total += c * c
    for i in chosen:
        ch = NUM_NODES * plan[i].c
        total += 2 * ch * max(ch // 2, 1) + ch * ch + 2 * ch  # theta, phi, conv, BN
    c_last = NUM_NODES * plan[-1].c
    return total + c_last * num_classes + num_classes


class RobNet(nn.Module):
    """A RobNets network (cell-based or cell-free).

    The architecture is readable back through read-only properties (:attr:`genotype`, :attr:`C`,
    :attr:`layers`, :attr:`num_classes`, :attr:`in_channels`, :attr:`imagenet_stem`,
    :attr:`stem_multiplier`, :attr:`denoise_cells`), which :func:`robnet.models.arch.arch_from_model` uses.

    Args:
        genotype: the architecture; a cell-based genotype is shared by all layers.
        C: initial channels per node.
        layers: number of cells.
        num_classes: classifier outputs.
        in_channels: image channels.
        imagenet_stem: the official ImageNet stem (three stride-2 convs, AvgPool(7) head).
        stem_multiplier: stem width = stem_multiplier * C (CIFAR stem only).
        denoise: cell indices after which a :class:`NonLocalDenoise` block is inserted.
    """

    def __init__(self, genotype: GenotypeLike, *, C: int = 36, layers: int = 20, num_classes: int = 10,
                 in_channels: int = 3, imagenet_stem: bool = False, stem_multiplier: int = 3,
                 denoise: Iterable[int] = ()) -> None:
        super().__init__()
        genotype = as_genotype(genotype)
        chosen = _check_macro(genotype, C, layers, denoise)
        self._genotype = genotype
        self._C = C
        self._layers = layers
        self._in_channels = in_channels
        self._imagenet_stem = bool(imagenet_stem)
        self._stem_multiplier = stem_multiplier
        if imagenet_stem:
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C // 2),
                nn.ReLU(inplace=False),
                nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=False),
                nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(C),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, stem_multiplier * C, 3, padding=1, bias=False),
                nn.BatchNorm2d(stem_multiplier * C),
            )

        self.cells = nn.ModuleList()
        self.cell_channels: list[tuple[int, int]] = []  # (channels of s1 in, channels out) per cell
        plan = _macro_plan(C, layers, imagenet_stem=imagenet_stem, stem_multiplier=stem_multiplier)
        for i, spec in enumerate(plan):
            self.cells.append(RobNetCell(spec.c_prev_prev, spec.c_prev, spec.c, reduction=spec.reduction,
                                         reduction_prev=spec.reduction_prev, cell=genotype.cell(i)))
            self.cell_channels.append((spec.c_prev, NUM_NODES * spec.c))
        # Only present when requested, so the plain network keeps the official key set.
        if chosen:
            self.denoise = nn.ModuleDict({str(i): NonLocalDenoise(self.cell_channels[i][1]) for i in chosen})
        self.global_pooling: nn.Module = nn.AvgPool2d(7) if imagenet_stem else nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(NUM_NODES * plan[-1].c, num_classes)

    # ------------------------------------------------------------------ the architecture, read back
    @property
    def genotype(self) -> Genotype:
        """The architecture's genotype."""
        return self._genotype

    @property
    def C(self) -> int:
        """Initial channels per node."""
        return self._C

    @property
    def layers(self) -> int:
        """Number of cells."""
        return self._layers

    @property
    def num_classes(self) -> int:
        """Classifier outputs."""
        return self.classifier.out_features

    @property
    def in_channels(self) -> int:
        """Image channels the stem expects."""
        return self._in_channels

    @property
    def imagenet_stem(self) -> bool:
        """Whether the official ImageNet stem is used."""
        return self._imagenet_stem

    @property
    def stem_multiplier(self) -> int:
        """Stem width / C (CIFAR stem)."""
        return self._stem_multiplier

    @property
    def denoise_cells(self) -> tuple[int, ...]:
        """Cell indices followed by a denoise block, ascending (empty without denoising)."""
        return tuple(sorted(int(k) for k in self.denoise)) if hasattr(self, "denoise") else ()

    @staticmethod
    def reduction_indices(layers: int) -> tuple[int, int]:
        """The cells that halve the resolution and double the channels (``genotype.reduction_cells``)."""
        return reduction_cells(layers)

    def _stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._imagenet_stem:
            s0 = self.stem0(x)
            return s0, self.stem1(s0)
        s = self.stem(x)
        return s, s

    def _after_cell(self, i: int, out: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "denoise") and str(i) in self.denoise:
            return self.denoise[str(i)](out)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0, s1 = self._stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, self._after_cell(i, cell(s0, s1))
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    def forward_features(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Reference path for the FSP work: per cell, (its s1 input, its output), in network order.

        The input is the s1 argument as it enters the cell (before preprocessing); the output is
        the cell's concatenated node outputs (before any denoise block).
        """
        feats = []
        s0, s1 = self._stem(x)
        for i, cell in enumerate(self.cells):
            out = cell(s0, s1)
            feats.append((s1, out))
            s0, s1 = s1, self._after_cell(i, out)
        return feats


def build_robnet(genotype: GenotypeLike, *, C: int = 36, layers: int = 20, num_classes: int = 10,
                 in_channels: int = 3, imagenet_stem: bool = False, denoise: Iterable[int] = ()) -> RobNet:
    """Build a RobNet from a genotype (a :class:`Genotype`, its string, or the official nested lists)."""
    return RobNet(genotype, C=C, layers=layers, num_classes=num_classes, in_channels=in_channels,
                  imagenet_stem=imagenet_stem, denoise=denoise)

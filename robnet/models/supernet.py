"""The weight-sharing supernet of the one-shot search (Guo et al., CVPR 2020, §3.2 and docs/design.md §4).

Every edge of every cell holds both candidate ops: one 3x3 sep-conv and the identity
(FactorizedReduce on the stride-2 edges of a reduction cell). A genotype selects, per edge,

    ``00`` nothing, ``01`` sep-conv, ``10`` identity / FactorizedReduce, ``11`` sep-conv + identity,

and ``supernet(x, genotype)`` runs exactly that sub-network: the architecture is an argument of
every call (no hidden "current architecture"), and a branch the genotype does not name is never
called (not multiplied by zero), so it gets no gradient. One sep-conv (and one FactorizedReduce)
per edge serves both codes that use it (``01`` and ``11``; ``10`` and ``11``).

Layout: the supernet *is* the all-``11`` RobNet of the same macro, re-wired. Its state_dict keys
and shapes equal ``build_robnet("11 11 ... 11", C=..., layers=...)``'s, so each edge's sep-conv is
``cells.{i}._ops.{j}.op.conv`` and its identity branch ``cells.{i}._ops.{j}.op.res``. A zoo network
of genotype g has, per edge, ``op.conv.*`` / ``op.res.*`` for ``11`` and ``op.*`` for ``01`` (the
sep-conv) and ``10`` (the FactorizedReduce): :meth:`SuperNet.extract` maps the keys that way and
returns a standalone :class:`robnet.models.network.RobNet` holding copies of the inherited weights, so
that in eval mode ``supernet(x, g) == supernet.extract(g)(x)``.

BatchNorm: every BN inside a cell is ``affine=False`` (docs/design.md §1), so the shared parameters are the
convolutions only. Running statistics are shared too: they average over every architecture the
supernet was trained on, so a candidate's statistics are recalibrated before it is evaluated
(:func:`robnet.search.candidate.recalibrate_bn` on ``supernet.bind(g)`` or on the extracted network).

Genotypes: a cell-based supernet (``cell_free=False``) takes shared genotypes (one cell used by
every layer) only. A cell-free supernet takes cell-free genotypes with one cell per layer and also
shared ones (a shared genotype is the cell-free genotype that repeats its cell). The parameters are
the same in both cases (every layer has its own weights, as in the zoo); the flag only says which
search space the supernet is trained over.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from robnet.models.genotype import NUM_EDGES, NUM_NODES, Cell, Genotype, edge_name
from robnet.models.network import GenotypeLike, RobNet, RobNetCell
from robnet.models.ops import ResSepConv

__all__ = ["FULL_GENOTYPE", "SubNet", "SuperCell", "SuperNet", "SuperNetConfig", "build_supernet"]

log = logging.getLogger(__name__)

#: The genotype whose RobNet has exactly the supernet's parameters: every edge ``11``.
FULL_GENOTYPE = Genotype.shared(("11",) * NUM_EDGES)
_OPS_KEY = "_ops"  # ModuleList of edges inside a cell (official key)


def _check_int(name: str, value: object, minimum: int, hint: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"SuperNetConfig: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"SuperNetConfig: {name} must be >= {minimum}, got {value}{hint}")


@dataclass(frozen=True, kw_only=True)
class SuperNetConfig:
    """The supernet's macro structure (docs/design.md §1); goes verbatim (``asdict``) into checkpoints.

    Attributes:
        C: channels per node in the first cells (doubled at each reduction); even.
        layers: number of cells L; reductions at L//3 and 2L//3.
        num_classes: classifier outputs.
        in_channels: image channels.
        cell_free: the search space has one cell per layer (else one shared cell).
        imagenet_stem: the official ImageNet stem (three stride-2 convs, AvgPool(7) head).
    """

    C: int
    layers: int
    num_classes: int = 10
    in_channels: int = 3
    cell_free: bool = False
    imagenet_stem: bool = False

    def __post_init__(self) -> None:
        _check_int("C", self.C, 2)
        if self.C % 2:
            raise ValueError(f"SuperNetConfig: C must be even (FactorizedReduce halves it), got {self.C}. "
                             f"Hint: use C={self.C + 1}.")
        _check_int("layers", self.layers, 1)
        _check_int("num_classes", self.num_classes, 1)
        _check_int("in_channels", self.in_channels, 1)
        for name in ("cell_free", "imagenet_stem"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"SuperNetConfig: {name} must be a bool, got {type(value).__name__} {value!r}")


class SuperCell(nn.Module):
    """One supernet cell: preprocess s0/s1, then the edges the given cell names; concat of f1..f4.

    ``forward(s0, s1, cell)`` takes the 14 edge codes of the architecture to run. It is flagged
    ``is_cell`` with ``fsp_input_index = 1`` like :class:`robnet.models.network.RobNetCell`, so fspkit
    captures (s1, output) for it; the extra ``cell`` argument is not a tensor and is ignored there.

    Args:
        template: a RobNet cell with every edge ``11`` whose modules this cell takes over.
    """

    is_cell = True
    fsp_input_index = 1

    def __init__(self, template: RobNetCell) -> None:
        super().__init__()
        if template.codes != FULL_GENOTYPE.cells[0]:
            raise ValueError(f"SuperCell needs a template cell with every edge '11', got {' '.join(template.codes)}")
        self.reduction = template.reduction
        self.preprocess0 = template.preprocess0
        self.preprocess1 = template.preprocess1
        self._ops = template._ops  # edge k: ChosenOperation('11') whose .op has .conv (SepConv) and .res

    def _edge(self, k: int, code: str, h: torch.Tensor) -> torch.Tensor:
        op = cast(ResSepConv, self._ops[k].op)
        # Same association as ops.ResSepConv (conv(x) + res(x)), so outputs match the zoo bit for bit.
        if code == "01":
            return op.conv(h)
        if code == "10":
            return op.res(h)
        if code == "11":
            return op.conv(h) + op.res(h)
        raise ValueError(f"SuperCell: {edge_name(k)} has code {code!r}; expected one of 00, 01, 10, 11")

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, cell: Sequence[str]) -> torch.Tensor:
        if len(cell) != NUM_EDGES:
            raise ValueError(f"SuperCell: expected {NUM_EDGES} edge codes, got {len(cell)}")
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for node in range(NUM_NODES):
            out: torch.Tensor | None = None
            for j, h in enumerate(states):
                code = cell[offset + j]
                if code == "00":
                    continue  # skipped, not multiplied by zero
                term = self._edge(offset + j, code, h)
                # Left to right, as RobNetCell sums its terms.
                out = term if out is None else out + term
            if out is None:
                raise ValueError(f"SuperCell: node f{node + 1} has no input (edges {offset}..{offset + node + 1} "
                                 "are all '00')")
            offset += len(states)
            states.append(out)
        return torch.cat(states[-NUM_NODES:], dim=1)


class SuperNet(nn.Module):
    """Weight-sharing RobNets supernet; build it with :func:`build_supernet`.

    ``supernet(x, genotype)`` runs the sub-network ``genotype`` names; ``extract(genotype)`` returns
    it as a standalone zoo network with copied weights; ``bind(genotype)`` returns a module
    ``m`` with ``m(x) == supernet(x, genotype)`` sharing the parameters (for attacks and hooks).

    Args:
        config: the macro structure.
    """

    def __init__(self, config: SuperNetConfig) -> None:
        super().__init__()
        if not isinstance(config, SuperNetConfig):
            raise TypeError(f"SuperNet: config must be a SuperNetConfig, got {type(config).__name__}. "
                            "Hint: use build_supernet(C=..., layers=...).")
        self.config = config
        # The all-'11' RobNet has exactly the supernet's modules under the zoo's names; take them over.
        template = RobNet(FULL_GENOTYPE, C=config.C, layers=config.layers, num_classes=config.num_classes,
                          in_channels=config.in_channels, imagenet_stem=config.imagenet_stem)
        if config.imagenet_stem:
            self.stem0 = template.stem0
            self.stem1 = template.stem1
        else:
            self.stem = template.stem
        self.cells = nn.ModuleList(SuperCell(cast(RobNetCell, cell)) for cell in template.cells)
        self.global_pooling = template.global_pooling
        self.classifier = template.classifier

    # ------------------------------------------------------------------ genotypes
    def check_genotype(self, genotype: GenotypeLike) -> Genotype:
        """Normalise ``genotype`` and check that this supernet can run it.

        Args:
            genotype: a :class:`~robnet.models.genotype.Genotype`, its string form, or the official nested
                lists (one list means shared).

        Returns:
            The genotype as a :class:`~robnet.models.genotype.Genotype`.

        Raises:
            TypeError: not one of the accepted forms.
            ValueError: an invalid genotype (bad codes, a node without input); a cell-free genotype
                for a cell-based supernet; a cell-free genotype whose cell count is not ``layers``.
        """
        if isinstance(genotype, Genotype):
            g = genotype
        elif isinstance(genotype, str):
            g = Genotype.parse(genotype)
        elif isinstance(genotype, list | tuple):
            g = Genotype.from_official(genotype)
        else:
            raise TypeError(f"SuperNet: genotype must be a Genotype, its string form or the official nested "
                            f"lists of edge codes, got {type(genotype).__name__}. "
                            "Hint: robnet.models.genotype.sample(rng) draws one.")
        if g.cell_free:
            if not self.config.cell_free:
                raise ValueError(f"SuperNet: this supernet is cell-based and takes a shared genotype (one cell), "
                                 f"got a cell-free genotype of {len(g.cells)} cells. Hint: "
                                 "build_supernet(..., cell_free=True) for the cell-free space.")
            if len(g.cells) != self.config.layers:
                raise ValueError(f"SuperNet: cell-free genotype has {len(g.cells)} cells, expected "
                                 f"{self.config.layers} (one per layer of this supernet)")
        return g

    def _layer_cells(self, genotype: Genotype) -> tuple[Cell, ...]:
        return tuple(genotype.cell(i) for i in range(self.config.layers))

    # ------------------------------------------------------------------ forward
    def _stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.imagenet_stem:
            s0 = self.stem0(x)
            return s0, self.stem1(s0)
        s = self.stem(x)
        return s, s

    def _run(self, x: torch.Tensor, layer_cells: tuple[Cell, ...]) -> torch.Tensor:
        s0, s1 = self._stem(x)
        for cell, codes in zip(self.cells, layer_cells, strict=True):
            s0, s1 = s1, cell(s0, s1, codes)
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    def forward(self, x: torch.Tensor, genotype: GenotypeLike | None = None) -> torch.Tensor:
        """Logits of the sub-network ``genotype`` on ``x``.

        Args:
            x: images, shape (N, in_channels, H, W).
            genotype: the architecture to run (see :meth:`check_genotype`); required.

        Returns:
            Logits, shape (N, num_classes).

        Raises:
            TypeError: no genotype given (a plain ``model(x)`` call, e.g. from an attack: use
                :meth:`bind`), or one of an unsupported type.
            ValueError: see :meth:`check_genotype`.
        """
        if genotype is None:
            raise TypeError("SuperNet: forward needs the architecture, supernet(x, genotype); got no genotype. "
                            "Hint: for code that calls model(x) (attacks, FSP capture) pass supernet.bind(genotype).")
        return self._run(x, self._layer_cells(self.check_genotype(genotype)))

    # ------------------------------------------------------------------ sub-networks
    def bind(self, genotype: GenotypeLike) -> SubNet:
        """A module ``m`` with ``m(x) == self(x, genotype)`` that shares this supernet's parameters.

        Args:
            genotype: the architecture (see :meth:`check_genotype`).

        Returns:
            A :class:`SubNet` (cheap: no copy of any tensor).
        """
        return SubNet(self, self.check_genotype(genotype))

    def inherited_state_dict(self, genotype: GenotypeLike) -> dict[str, torch.Tensor]:
        """The zoo-layout state_dict of the sub-network ``genotype`` (references, not copies).

        Keys are those of ``build_robnet(genotype, ...)``: an edge ``11`` keeps ``op.conv.*`` and
        ``op.res.*``; ``01`` maps ``op.conv.X`` to ``op.X``; ``10`` maps ``op.res.X`` to ``op.X``
        (only at stride 2, where the identity is a FactorizedReduce); ``00`` has no key.

        Args:
            genotype: the architecture (see :meth:`check_genotype`).

        Returns:
            key -> tensor; the tensors are the supernet's own (detached): copy before changing them.
        """
        layer_cells = self._layer_cells(self.check_genotype(genotype))
        out: dict[str, torch.Tensor] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            # cells.{i}._ops.{j}.op.{conv|res}.rest
            if len(parts) < 7 or parts[0] != "cells" or parts[2] != _OPS_KEY:
                out[key] = value
                continue
            code = layer_cells[int(parts[1])][int(parts[3])]
            branch = parts[5]
            if code == "11":
                out[key] = value
            elif (code, branch) in (("01", "conv"), ("10", "res")):
                out[".".join([*parts[:5], *parts[6:]])] = value
        return out

    def extract(self, genotype: GenotypeLike) -> RobNet:
        """A standalone zoo network of ``genotype`` holding copies of the inherited weights.

        Built like ``build_robnet(genotype, C=..., layers=..., num_classes=..., in_channels=...,
        imagenet_stem=...)`` (same state_dict keys and shapes) on the supernet's device, dtype and
        memory format, with every parameter and BN buffer copied from the supernet (so training
        it leaves the supernet untouched). It is returned in the supernet's train/eval mode.
        Building it draws nothing from the global RNG (the modules are created on the meta device).

        Args:
            genotype: the architecture (see :meth:`check_genotype`).

        Returns:
            The :class:`robnet.models.network.RobNet`.
        """
        g = self.check_genotype(genotype)
        cfg = self.config
        with torch.device("meta"):
            net = RobNet(g, C=cfg.C, layers=cfg.layers, num_classes=cfg.num_classes,
                         in_channels=cfg.in_channels, imagenet_stem=cfg.imagenet_stem)
        # Clones keep the supernet's device, dtype and memory format; assign=True adopts them as the
        # network's tensors (no second allocation); strict: every key must come from the supernet.
        state = {k: v.clone() for k, v in self.inherited_state_dict(g).items()}
        net.load_state_dict(state, strict=True, assign=True)
        net.train(self.training)
        return net


class SubNet(nn.Module):
    """A supernet bound to one genotype: ``forward(x)`` is ``supernet(x, genotype)``.

    It registers the supernet's own child modules under the same names (``stem``, ``cells``,
    ``classifier``, ...), so its parameters *are* the supernet's (an optimizer, ``frozen_params``
    or ``eval_mode`` on it acts on them), its state_dict keys are the supernet's, and fspkit finds
    the same cells (``cells.0``, ``cells.1``, ...) with the same FSP input (their s1 argument).
    Binding changes no module's train/eval mode; ``bound.train()`` / ``bound.eval()`` set the
    shared children's modes (the supernet root's own flag is left alone).

    Args:
        supernet: the supernet.
        genotype: an already checked genotype (use :meth:`SuperNet.bind`).
    """

    _supernet: SuperNet

    def __init__(self, supernet: SuperNet, genotype: Genotype) -> None:
        super().__init__()
        # A plain attribute, not a registered submodule: the children below are registered instead.
        object.__setattr__(self, "_supernet", supernet)
        for name, child in supernet.named_children():
            self.add_module(name, child)
        self.genotype = genotype
        self._layer_cells = supernet._layer_cells(genotype)  # the execution plan, resolved once
        # Only the root's own flag: the children's modes are the supernet's and stay as they are.
        self.training = supernet.training

    @property
    def supernet(self) -> SuperNet:
        """The supernet whose parameters this module shares."""
        return self._supernet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._supernet._run(x, self._layer_cells)

    def extra_repr(self) -> str:
        return f"genotype={self.genotype}"


def build_supernet(*, C: int, layers: int, num_classes: int = 10, in_channels: int = 3, cell_free: bool = False,
                   imagenet_stem: bool = False) -> SuperNet:
    """Build the weight-sharing supernet of the RobNets search space (see the module docstring).

    Args:
        C: channels per node in the first cells (even).
        layers: number of cells.
        num_classes: classifier outputs.
        in_channels: image channels.
        cell_free: search over one cell per layer (accepts cell-free and shared genotypes);
            otherwise over one shared cell (accepts shared genotypes only).
        imagenet_stem: the official ImageNet stem.

    Returns:
        The :class:`SuperNet`, in train mode, initialised like a freshly built zoo network (from
        torch's global RNG, as every module constructor is).

    Raises:
        TypeError: a non-int size or non-bool flag.
        ValueError: C odd or < 2, layers / num_classes / in_channels < 1.
    """
    config = SuperNetConfig(C=C, layers=layers, num_classes=num_classes, in_channels=in_channels,
                            cell_free=cell_free, imagenet_stem=imagenet_stem)
    net = SuperNet(config)
    log.debug("built supernet %s (%d parameters)", config, sum(p.numel() for p in net.parameters()))
    return net

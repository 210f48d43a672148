"""The RobNets search space as a plain value (no torch).

A cell has two input nodes (s0, s1) and four intermediate nodes f1..f4. Node f_i sums one edge
from every earlier node, which gives 14 edges in the order

    f1 <- s0, s1                 edges 0, 1
    f2 <- s0, s1, f1             edges 2, 3, 4
    f3 <- s0, s1, f1, f2         edges 5, 6, 7, 8
    f4 <- s0, s1, f1, f2, f3     edges 9, 10, 11, 12, 13

and each edge carries a 2-bit code (first bit = identity, second bit = 3x3 sep-conv):
``00`` zero, ``01`` sep-conv, ``10`` identity, ``11`` sep-conv + identity (residual).

A cell-based genotype shares one cell across all layers; a cell-free genotype has one cell per
layer (Guo et al., "When NAS Meets Robustness", CVPR 2020, section 3).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

CODES: tuple[str, ...] = ("00", "01", "10", "11")
NUM_NODES = 4
NUM_EDGES = 14
# (source, target) per edge; sources 0/1 are s0/s1, 2.. are f1..; targets 0..3 are f1..f4.
EDGES: tuple[tuple[int, int], ...] = tuple((src, node) for node in range(NUM_NODES) for src in range(node + 2))
# Decision (docs/design.md §2): edges between consecutive nodes s1->f1, f1->f2, f2->f3, f3->f4.
DIRECT_EDGES: tuple[int, ...] = (1, 4, 8, 13)
SKIP_EDGES: tuple[int, ...] = tuple(i for i in range(NUM_EDGES) if i not in DIRECT_EDGES)
# Edges leaving s0/s1: the ones that run at stride 2 in a reduction cell.
INPUT_EDGES: tuple[int, ...] = tuple(i for i, (src, _) in enumerate(EDGES) if src < 2)
_SOURCE_NAMES = ("s0", "s1", "f1", "f2", "f3")
FREE_PREFIX = "free:"

Cell = tuple[str, ...]


def edge_name(index: int) -> str:
    """Human name of edge ``index``, e.g. ``"edge 4 (f1->f2)"``."""
    src, node = EDGES[index]
    return f"edge {index} ({_SOURCE_NAMES[src]}->f{node + 1})"


def _validate_cell(cell: Sequence[Any], where: str) -> Cell:
    if isinstance(cell, str):
        raise TypeError(f"{where}: expected a sequence of 14 edge codes, got the string {cell!r}. "
                        "Hint: use Genotype.parse for the string form.")
    codes = tuple(cell)
    if len(codes) != NUM_EDGES:
        raise ValueError(f"{where}: expected {NUM_EDGES} edge codes, got {len(codes)}")
    for i, code in enumerate(codes):
        if code not in CODES:
            raise ValueError(f"{where}, {edge_name(i)}: bad code {code!r}; expected one of {', '.join(CODES)}")
    node = _dead_node(codes)
    if node is not None:
        first = EDGES.index((0, node))
        raise ValueError(f"{where}: node f{node + 1} has no input (edges {first}..{first + node + 1} "
                         "are all '00'); every intermediate node needs at least one non-zero edge")
    return codes


def _dead_node(cell: Sequence[str]) -> int | None:
    """The first intermediate node (0-based) whose incoming edges are all ``00``, or None."""
    offset = 0
    for node in range(NUM_NODES):
        if all(c == "00" for c in cell[offset:offset + node + 2]):
            return node
        offset += node + 2
    return None


@dataclass(frozen=True)
class Genotype:
    """A RobNets architecture: one shared cell (cell-based) or one cell per layer (cell-free).

    Attributes:
        cells: the 14-code cells; one cell when ``cell_free`` is False.
        cell_free: True when every layer has its own cell.
    """

    cells: tuple[Cell, ...]
    cell_free: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.cells, tuple):
            object.__setattr__(self, "cells", tuple(self.cells))
        if len(self.cells) == 0:
            raise ValueError("Genotype needs at least one cell")
        if not self.cell_free and len(self.cells) != 1:
            raise ValueError(f"a cell-based (shared) genotype has exactly one cell, got {len(self.cells)}; "
                             "pass cell_free=True for one cell per layer")
        cells = tuple(_validate_cell(c, f"cell {i}") for i, c in enumerate(self.cells))
        object.__setattr__(self, "cells", cells)

    # ----------------------------------------------------------------- construction
    @classmethod
    def shared(cls, cell: Sequence[str]) -> Genotype:
        """A cell-based genotype from one cell's 14 codes."""
        return cls((cell,), cell_free=False)  # type: ignore[arg-type]  # validated in __post_init__

    @classmethod
    def free(cls, cells: Sequence[Sequence[str]]) -> Genotype:
        """A cell-free genotype from one cell per layer."""
        return cls(tuple(cells), cell_free=True)  # type: ignore[arg-type]

    @classmethod
    def from_official(cls, cells: Sequence[Sequence[str]]) -> Genotype:
        """From the official nested lists (``architecture_code.py``): one cell means shared."""
        if isinstance(cells, str) or not isinstance(cells, Sequence) or len(cells) == 0:
            raise TypeError(f"expected a non-empty list of cells (lists of 14 codes), got {type(cells).__name__}")
        cells_t = tuple(tuple(c) for c in cells)
        return cls(cells_t, cell_free=len(cells_t) > 1)

    @classmethod
    def from_bits(cls, bits: Sequence[int], *, cell_free: bool = False) -> Genotype:
        """Inverse of :meth:`bits`: 28 bits per cell, edge by edge (identity bit first)."""
        bits = [int(b) for b in bits]
        if len(bits) == 0 or len(bits) % (2 * NUM_EDGES):
            raise ValueError(f"expected a multiple of {2 * NUM_EDGES} bits, got {len(bits)}")
        if any(b not in (0, 1) for b in bits):
            raise ValueError("bits must be 0 or 1")
        codes = [f"{bits[i]}{bits[i + 1]}" for i in range(0, len(bits), 2)]
        cells = tuple(tuple(codes[i:i + NUM_EDGES]) for i in range(0, len(codes), NUM_EDGES))
        return cls(cells, cell_free=cell_free)

    @classmethod
    def parse(cls, text: str) -> Genotype:
        """Parse the canonical string form (see :meth:`__str__`).

        Shared: ``"11 11 11 11 11 01 11 01 10 11 01 01 01 11"``; cell-free: ``"free: <cell> | <cell> ..."``.
        A cell may also be written as 28 bits without spaces.
        """
        if not isinstance(text, str):
            raise TypeError(f"expected a genotype string, got {type(text).__name__}")
        body = text.strip()
        cell_free = body.startswith(FREE_PREFIX)
        if cell_free:
            body = body[len(FREE_PREFIX):]
        parts = [p.strip() for p in body.split("|")]
        if not cell_free and len(parts) != 1:
            raise ValueError(f"a shared genotype string has one cell; for one cell per layer start with "
                             f"{FREE_PREFIX!r}: got {len(parts)} cells")
        cells = []
        for i, part in enumerate(parts):
            tokens = part.replace(",", " ").split()
            if len(tokens) == 1 and len(tokens[0]) == 2 * NUM_EDGES:
                tokens = [tokens[0][j:j + 2] for j in range(0, 2 * NUM_EDGES, 2)]
            cells.append(_validate_cell(tokens, f"cell {i}"))
        return cls(tuple(cells), cell_free=cell_free)

    # ----------------------------------------------------------------- views
    def __str__(self) -> str:
        text = " | ".join(" ".join(c) for c in self.cells)
        return FREE_PREFIX + " " + text if self.cell_free else text

    def to_official(self) -> list[list[str]]:
        """The official nested-list form (one list per cell)."""
        return [list(c) for c in self.cells]

    def cell(self, layer: int) -> Cell:
        """The cell used at ``layer`` (the shared one for a cell-based genotype)."""
        if not self.cell_free:
            return self.cells[0]
        if not 0 <= layer < len(self.cells):
            raise IndexError(f"layer {layer} out of range for a cell-free genotype of {len(self.cells)} cells")
        return self.cells[layer]

    def check_layers(self, layers: int) -> None:
        """Raise unless this genotype can build a network of ``layers`` cells."""
        if self.cell_free and len(self.cells) != layers:
            raise ValueError(f"cell-free genotype has {len(self.cells)} cells but the network has {layers} "
                             "layers; they must match")

    def bits(self) -> list[int]:
        """Bit-vector view: 28 bits per cell, edge by edge, identity bit first."""
        return [int(b) for cell in self.cells for code in cell for b in code]

    def density(self) -> float:
        """Architecture density (paper Eq. 2): connected bits / all bits; mean over cells."""
        return sum(cell_density(c) for c in self.cells) / len(self.cells)

    def num_convs(self) -> list[int]:
        """Budget: number of sep-convs (conv bits) in each cell."""
        return [cell_num_convs(c) for c in self.cells]

    def direct_edge_convs(self) -> list[int]:
        """Number of sep-convs on direct edges (s1->f1, f1->f2, f2->f3, f3->f4) in each cell."""
        return [sum(c[i][1] == "1" for i in DIRECT_EDGES) for c in self.cells]


def reduction_cells(layers: int) -> tuple[int, int]:
    """The cells of an ``layers``-cell network that halve the resolution and double the channels:
    ``layers // 3`` and ``2 * layers // 3`` (docs/design.md §1)."""
    return (layers // 3, 2 * layers // 3)


def deep_cells(layers: int) -> range:
    """The deep cells of an ``layers``-cell network (docs/design.md §5, Finding #3): its deepest stage,
    from the second reduction cell on, ``range(2 * layers // 3, layers)``: the last ``ceil(layers / 3)``
    cells. For a network that is not a RobNet, ``layers`` is the number of cells captured and the
    rule is the same: the last third. The FSP filter, ``fspkit score``, the study's Finding #3
    verdict and its figures all use this one rule."""
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise ValueError(f"deep_cells: expected a number of cells >= 1, got {layers!r}")
    return range(2 * layers // 3, layers)


def cell_density(cell: Sequence[str]) -> float:
    """Fraction of the 28 bits of one cell that are 1."""
    return sum(code.count("1") for code in cell) / (2 * NUM_EDGES)


def cell_num_convs(cell: Sequence[str]) -> int:
    """Number of sep-convs in one cell."""
    return sum(code[1] == "1" for code in cell)


def _is_valid(cell: Sequence[str]) -> bool:
    return _dead_node(cell) is None


def sample_cell(rng: random.Random, *, budget: int | None = None) -> Cell:
    """One random valid cell: uniform bits, or exactly ``budget`` sep-convs (rejection sampling)."""
    if budget is not None and not 0 <= budget <= NUM_EDGES:
        raise ValueError(f"budget must be in 0..{NUM_EDGES} sep-convs per cell, got {budget}")
    while True:
        if budget is None:
            cell = tuple(rng.choice(CODES) for _ in range(NUM_EDGES))
        else:
            conv_edges = set(rng.sample(range(NUM_EDGES), budget))
            cell = tuple(f"{rng.getrandbits(1)}{int(i in conv_edges)}" for i in range(NUM_EDGES))
        if _is_valid(cell):
            return cell


def sample(rng: random.Random | int, *, cell_free: bool = False, layers: int = 20,
           budget: int | None = None) -> Genotype:
    """Sample a random architecture.

    Args:
        rng: a ``random.Random`` (or an int seed for a fresh one).
        cell_free: one cell per layer instead of one shared cell.
        layers: number of cells for a cell-free genotype.
        budget: exact number of sep-convs per cell (None: unconstrained).
    """
    if isinstance(rng, int):
        rng = random.Random(rng)
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    n = layers if cell_free else 1
    return Genotype(tuple(sample_cell(rng, budget=budget) for _ in range(n)), cell_free=cell_free)


def iter_cells(*, budget: int | None = None) -> Iterator[Cell]:
    """Enumerate every valid cell (4^14 of them, minus invalid ones), optionally with a fixed budget.

    This is a generator: the full space is large, take what you need with ``itertools.islice``.
    """
    if budget is None:
        for cell in itertools.product(CODES, repeat=NUM_EDGES):
            if _is_valid(cell):
                yield cell
        return
    for conv_edges in itertools.combinations(range(NUM_EDGES), budget):
        conv = set(conv_edges)
        for id_bits in itertools.product("01", repeat=NUM_EDGES):
            cell = tuple(id_bits[i] + ("1" if i in conv else "0") for i in range(NUM_EDGES))
            if _is_valid(cell):
                yield cell


def count_cells(*, budget: int | None = None) -> int:
    """Number of valid cells (with exactly ``budget`` sep-convs when given), computed in closed form."""
    # Node f_i with k = i+2 incoming edges is invalid only when all its edges are '00'.
    # Per edge: weight polynomial over conv count; count assignments by dynamic programming.
    dist = {0: 1}
    for node in range(NUM_NODES):
        k = node + 2
        node_dist: dict[int, int] = {}
        # each edge: '00' (0 convs), '10' (0 convs), '01' (1 conv), '11' (1 conv)
        for convs in range(k + 1):
            ways = math.comb(k, convs) * 2 ** k  # choose conv edges, identity bit free
            if convs == 0:
                ways -= 1  # all-'00' assignment
            node_dist[convs] = ways
        new: dict[int, int] = {}
        for a, wa in dist.items():
            for b, wb in node_dist.items():
                new[a + b] = new.get(a + b, 0) + wa * wb
        dist = new
    if budget is None:
        return sum(dist.values())
    return dist.get(budget, 0)


ROBNET_LARGE = Genotype.parse("11 11 11 11 11 01 11 01 10 11 01 01 01 11")
ROBNET_FREE = Genotype.parse(
    "free: "
    "11 10 11 11 10 11 01 01 10 11 11 00 11 01 | 11 00 01 10 01 00 10 10 00 01 11 10 11 00 | "
    "11 11 11 01 01 11 01 00 10 00 10 10 00 11 | 10 11 10 01 01 10 10 01 10 11 00 00 01 10 | "
    "11 11 01 00 10 10 10 01 10 01 00 10 01 11 | 11 10 11 11 11 01 10 11 00 10 01 11 01 11 | "
    "11 11 11 10 10 01 11 10 01 10 10 10 01 10 | 01 11 11 11 01 11 11 11 01 11 01 11 10 00 | "
    "11 11 11 11 11 01 01 11 10 01 00 10 01 11 | 10 11 01 00 11 11 10 11 01 11 11 11 11 00 | "
    "11 10 11 00 00 00 11 00 01 10 00 01 10 11 | 01 11 01 11 11 10 10 11 10 11 01 11 10 00 | "
    "11 11 10 10 01 00 10 11 11 01 10 10 00 01 | 01 11 11 11 01 01 11 01 01 11 11 01 10 10 | "
    "01 11 11 11 11 01 00 01 10 10 11 10 10 11 | 11 11 00 11 11 01 00 01 10 00 11 01 11 11 | "
    "11 11 01 11 11 10 11 10 10 10 10 10 11 11 | 10 11 01 11 11 01 11 00 11 11 00 10 00 01 | "
    "11 10 11 11 11 11 11 10 11 00 11 01 11 11 | 11 11 01 01 11 11 01 00 00 10 00 01 01 11"
)

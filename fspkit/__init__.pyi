"""fspkit: FSP-based robustness analysis on top of robnet (hook capture, fused FSP distance, scoring)."""

from ._version import __version__
from .capture import capture_cells
from .cells import find_cells, resolve_cells
from .fsp import fsp_distance, fsp_matrix, fsp_pair_distance
from .score import CellScore, FSPReport, score

__all__ = [
    "CellScore",
    "FSPReport",
    "__version__",
    "capture_cells",
    "find_cells",
    "fsp_distance",
    "fsp_matrix",
    "fsp_pair_distance",
    "resolve_cells",
    "score",
]

"""Statistics of a robust architecture search (numpy, scipy, scikit-learn; no torch).

Correlations with bootstrap intervals, regressions, the paper's Findings #1-#3, how well a cheap
score filters candidates, and the study (:func:`analyze`) that states each claim's verdict.
"""

from .findings import (
    BITS_PER_CELL,
    METHODS,
    PROXIES,
    STAGES,
    BudgetGroup,
    CellCorrelations,
    Correlation,
    DirectConvs,
    FilterQuality,
    Finding1,
    Finding2,
    PerCell,
    ProxyRow,
    ProxyTable,
    Regression,
    bit_names,
    column,
    correlate,
    deep_mean,
    direct_convs_by_budget,
    filter_quality,
    finding1,
    finding2,
    has_column,
    list_column,
    partial_correlation,
    per_cell,
    proxy_table,
    regress,
)
from .study import Claim, StudyReport, analyze

__all__ = [
    "BITS_PER_CELL", "METHODS", "PROXIES", "STAGES", "BudgetGroup", "CellCorrelations", "Claim", "Correlation",
    "DirectConvs", "FilterQuality", "Finding1", "Finding2", "PerCell", "ProxyRow", "ProxyTable", "Regression",
    "StudyReport", "analyze", "bit_names", "column", "correlate", "deep_mean", "direct_convs_by_budget",
    "filter_quality", "finding1", "finding2", "has_column", "list_column", "partial_correlation", "per_cell",
    "proxy_table", "regress",
]

"""Statistics of a robust architecture search (numpy, scipy, scikit-learn; no torch).

Correlations with their p-values and intervals (plain, partial, within strata of equal capacity),
permutation tests, bootstrap and BCa intervals, Holm's correction, the measurement's noise, the
paper's Findings #1-#3 as claims with verdicts, how well a cheap score filters candidates, and the
study (:func:`analyze`) that runs them all. docs/study.md states each claim's test.
"""

from .architecture import (
    CONV_BINS,
    BudgetGroup,
    DirectConvs,
    Finding2,
    conv_bins,
    direct_conv_counts,
    direct_convs_by_budget,
    finding2,
)
from .claims import CLAIM_IDS, PAPER, Claim, Evidence
from .classifier import BITS_PER_CELL, BitShare, Finding1, bit_names, finding1
from .controls import Strata, capacity_strata, stratified_correlation
from .core import ALPHA, LEVEL, METHODS, N_BOOT, N_PERM, RESAMPLE_MAX_N, column, has_column, list_column
from .correlation import Correlation, Difference, compare_correlations, correlate, partial_correlation
from .depth import (
    FSP_STRIDED,
    STAGES,
    CellCorrelations,
    DepthProfile,
    PerCell,
    PoolingCheck,
    TypeCorrelation,
    cell_kinds,
    deep_mean,
    per_cell,
)
from .filtering import FilterQuality, filter_quality, keep_mask, score_column, top_mask
from .inference import detectable_correlation, fisher_interval, holm, recall_pvalue, wilson_interval
from .noise import REFERENCE_EFFECT, Noise, measurement_noise
from .proxies import BASELINES, PROXIES, ProxyRow, ProxyTable, proxy_table
from .regression import Regression, regress
from .resampling import bca_interval, distinct_resamples, median_interval, percentile_interval, permutation_pvalue
from .study import Selection, StudyReport, analyze
from .text import ci_text, corr_text, fmt, fmt_p, p_text

__all__ = [
    "ALPHA",
    "BASELINES",
    "BITS_PER_CELL",
    "CLAIM_IDS",
    "CONV_BINS",
    "FSP_STRIDED",
    "LEVEL",
    "METHODS",
    "N_BOOT",
    "N_PERM",
    "PAPER",
    "PROXIES",
    "REFERENCE_EFFECT",
    "RESAMPLE_MAX_N",
    "STAGES",
    "BitShare",
    "BudgetGroup",
    "CellCorrelations",
    "Claim",
    "Correlation",
    "DepthProfile",
    "Difference",
    "DirectConvs",
    "Evidence",
    "FilterQuality",
    "Finding1",
    "Finding2",
    "Noise",
    "PerCell",
    "PoolingCheck",
    "ProxyRow",
    "ProxyTable",
    "Regression",
    "Selection",
    "Strata",
    "StudyReport",
    "TypeCorrelation",
    "analyze",
    "bca_interval",
    "bit_names",
    "capacity_strata",
    "cell_kinds",
    "ci_text",
    "column",
    "compare_correlations",
    "conv_bins",
    "corr_text",
    "correlate",
    "deep_mean",
    "detectable_correlation",
    "direct_conv_counts",
    "direct_convs_by_budget",
    "distinct_resamples",
    "filter_quality",
    "finding1",
    "finding2",
    "fisher_interval",
    "fmt",
    "fmt_p",
    "has_column",
    "holm",
    "keep_mask",
    "list_column",
    "measurement_noise",
    "median_interval",
    "p_text",
    "partial_correlation",
    "per_cell",
    "percentile_interval",
    "permutation_pvalue",
    "proxy_table",
    "recall_pvalue",
    "regress",
    "score_column",
    "stratified_correlation",
    "top_mask",
    "wilson_interval",
]

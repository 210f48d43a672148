"""Architecture statistics against PGD accuracy, as the paper's figures show them: density (paper
Eq. 2, Fig. 5) with its least-squares line and band, and direct-edge convs per conv budget (Fig. 6)
with the mean accuracy per count and its interval. These are descriptions; the verdicts come from the
tests of :mod:`fspkit.stats.claims` (docs/study.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from fspkit.stats.core import (
    LEVEL,
    N_BOOT,
    RESAMPLE_MAX_N,
    RngLike,
    _fraction,
    _generator,
    _method,
    _vector,
)
from fspkit.stats.correlation import Correlation, correlate
from robnet.search import records as R

__all__ = [
    "CONV_BINS", "BudgetGroup", "DirectConvs", "Finding2", "conv_bins", "direct_conv_counts", "direct_convs_by_budget",
    "finding2",
]


@dataclass(frozen=True, kw_only=True, eq=False)
class Finding2:
    """Density against PGD accuracy (paper Eq. 2, Fig. 5): a least-squares line with its confidence
    band, and the (marginal) Spearman correlation. The name ``finding2`` is this API's; the paper
    discusses density under its Finding #1.

    Attributes:
        n: candidates; level: coverage of the intervals.
        slope, intercept, slope_stderr, slope_ci, slope_pvalue, r2: the fit ``pgd = intercept + slope * density``.
        x_grid: ``grid`` densities from the smallest to the largest; y_fit: the line there.
        band_low, band_high: pointwise confidence band of the mean, ``y_fit -/+ t * s *
            sqrt(1/n + (x - mean x)^2 / Sxx)`` with t at ``level`` and n - 2 degrees of freedom.
        spearman: rank correlation with its interval and p-value.
    """

    n: int
    level: float
    slope: float
    intercept: float
    slope_stderr: float
    slope_ci: tuple[float, float]
    slope_pvalue: float
    r2: float
    x_grid: np.ndarray
    y_fit: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    spearman: Correlation


def finding2(density: Any, pgd_acc: Any, *, level: float = LEVEL, grid: int = 50, n_boot: int = N_BOOT,
             n_perm: int = 0, rng: RngLike = None, names: tuple[str, str] = (R.DENSITY, R.PGD_ACC),
             resample_max_n: int | None = RESAMPLE_MAX_N) -> Finding2:
    """Is a denser architecture more robust? Linear fit, band and Spearman (see :class:`Finding2`).

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a constant variable, grid < 2.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid: expected an int >= 2 (points of the plotted band), got {grid!r}")
    _fraction(level, "level")
    x = _vector(density, names[0])
    y = _vector(pgd_acc, names[1], n=len(x), other=names[0])
    spear = correlate(x, y, n_boot=n_boot, n_perm=n_perm, rng=rng, names=names, level=level,
                      resample_max_n=resample_max_n)
    n = len(x)
    fit = sps.linregress(x, y)
    resid = y - (fit.intercept + fit.slope * x)
    s = math.sqrt(float(resid @ resid) / (n - 2)) if n > 2 else math.nan
    t = float(sps.t.ppf(0.5 + level / 2, n - 2))
    sxx = float(((x - x.mean()) ** 2).sum())
    xg = np.linspace(x.min(), x.max(), grid)
    yg = fit.intercept + fit.slope * xg
    half = t * s * np.sqrt(1 / n + (xg - x.mean()) ** 2 / sxx)
    return Finding2(n=n, level=level, slope=float(fit.slope), intercept=float(fit.intercept),
                    slope_stderr=float(fit.stderr), slope_ci=(float(fit.slope - t * fit.stderr),
                                                              float(fit.slope + t * fit.stderr)),
                    slope_pvalue=float(fit.pvalue), r2=float(fit.rvalue**2), x_grid=xg, y_fit=yg,
                    band_low=yg - half, band_high=yg + half, spearman=spear)


@dataclass(frozen=True, kw_only=True)
class BudgetGroup:
    """Candidates of one conv budget (Finding #2, Fig. 6).

    Attributes:
        budget: sep-convs per cell (None: sampled without a budget), or the index of a conv-count bin.
        label: how figures and tables name the group (``budget 7``, ``5-9 convs``, ``unconstrained``).
        n: candidates in the group.
        counts: the distinct direct-edge conv counts, ascending; ``mean_pgd`` and ``n_per_count`` give
            the PGD accuracy at each, ``ci_low``/``ci_high`` the t interval of each mean (NaN for a
            count held by fewer than 3 candidates: no interval).
        correlation: direct-edge convs vs PGD accuracy within the group; None when undefined.
        note: why ``correlation`` is None ("" otherwise).
    """

    budget: int | None
    label: str
    n: int
    counts: tuple[float, ...]
    mean_pgd: tuple[float, ...]
    ci_low: tuple[float, ...]
    ci_high: tuple[float, ...]
    n_per_count: tuple[int, ...]
    correlation: Correlation | None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class DirectConvs:
    """Direct-edge convs against PGD accuracy, one :class:`BudgetGroup` per budget (ascending, None last)."""

    groups: tuple[BudgetGroup, ...]
    method: str
    level: float = LEVEL


# Conv-count bins of an unconstrained search (sep-convs per cell of the 14 edges): Fig. 1 and Fig. 6 group by
# them when no candidate has a budget.
CONV_BINS: tuple[tuple[float, float, str], ...] = ((0, 4, "0-4 convs"), (4, 9, "5-9 convs"), (9, 14, "10-14 convs"))


def conv_bins(convs: Any) -> np.ndarray:
    """The :data:`CONV_BINS` index of each conv count (per cell; a cell-free mean falls in the bin whose
    upper end it does not exceed).  (n,) int."""
    return np.searchsorted([hi for _, hi, _ in CONV_BINS[:-1]], np.asarray(convs, dtype=float), side="left")


def direct_conv_counts(values: Any) -> np.ndarray:
    """Direct-edge convs as Fig. 6 groups them: whole numbers as they are; the means over cells of a
    cell-free genotype rounded to the nearest 0.5, so candidates share a handful of counts.  (n,)"""
    v = np.asarray(values, dtype=float)
    return v if np.all(v == np.round(v)) else np.round(2 * v) / 2


def _budgets(budget: Any, n: int) -> list[int | None]:
    values = list(budget)
    if len(values) != n:
        raise ValueError(f"budget has {len(values)} values but direct_convs has {n}: they must be paired")
    out: list[int | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, int | np.integer | float) and not isinstance(v, bool) and float(v).is_integer():
            out.append(int(v))
        else:
            raise ValueError(f"budget: expected whole numbers of sep-convs per cell or None, got {v!r}")
    return out


def mean_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float, float]:
    """Mean and t interval ``mean -/+ t_{n-1} s / sqrt(n)`` (s with ddof 1); NaN ends for n < 3 (with
    one degree of freedom the interval spans most of the scale and says nothing)."""
    m = float(np.mean(values))
    if len(values) < 3:
        return m, math.nan, math.nan
    half = float(sps.t.ppf(0.5 + level / 2, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))
    return m, m - half, m + half


def _group(b: int | None, label: str, x: np.ndarray, y: np.ndarray, method: str, n_boot: int, n_perm: int,
           gen: np.random.Generator, level: float, resample_max_n: int | None) -> BudgetGroup:
    counts = np.unique(x)
    stats = [mean_interval(y[x == c], level) for c in counts]
    corr, note = None, ""
    if len(x) < 3 or len(counts) < 2 or np.ptp(y) == 0:
        note = (f"only {len(x)} candidate(s)" if len(x) < 3 else
                "one direct-conv count only" if len(counts) < 2 else "constant PGD accuracy")
    else:
        corr = correlate(x, y, method=method, n_boot=n_boot, n_perm=n_perm if method != "kendall" else 0,
                         rng=gen, names=(R.DIRECT_CONVS, R.PGD_ACC), level=level, resample_max_n=resample_max_n)
    return BudgetGroup(budget=b, label=label, n=len(x), counts=tuple(float(c) for c in counts),
                       mean_pgd=tuple(s[0] for s in stats), ci_low=tuple(s[1] for s in stats),
                       ci_high=tuple(s[2] for s in stats), n_per_count=tuple(int(np.sum(x == c)) for c in counts),
                       correlation=corr, note=note)


def direct_convs_by_budget(direct_convs: Any, budget: Any, pgd_acc: Any, *, method: str = "spearman",
                           n_boot: int = N_BOOT, n_perm: int = 0, rng: RngLike = None, level: float = LEVEL,
                           resample_max_n: int | None = RESAMPLE_MAX_N,
                           labels: Mapping[int | None, str] | None = None) -> DirectConvs:
    """Finding #2 as Fig. 6 shows it: PGD accuracy against the number of convs on direct edges, per
    conv budget: the mean accuracy per direct-conv count with its t interval, and the correlation of
    the two within the budget (the paper: direct-edge convs help under small budgets). Groups where
    the correlation is undefined (fewer than 3 candidates, or one count only) keep their means and
    say why. ``labels`` names the groups (default ``budget 7`` / ``unconstrained``), e.g. when the keys are
    :func:`conv_bins` of an unconstrained search.

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a budget that is not a whole number.
    """
    _method(method)
    gen = _generator(rng)
    dc = _vector(direct_convs, R.DIRECT_CONVS, constant_ok=True)
    pgd = _vector(pgd_acc, R.PGD_ACC, n=len(dc), other=R.DIRECT_CONVS, constant_ok=True)
    budgets = _budgets(budget, len(dc))
    keys = sorted({b for b in budgets if b is not None}) + ([None] if None in budgets else [])
    groups = []
    for b in keys:
        mask = np.array([v == b for v in budgets])
        label = (labels or {}).get(b) or ("unconstrained" if b is None else f"budget {b}")
        groups.append(_group(b, label, dc[mask], pgd[mask], method, n_boot, n_perm, gen, level, resample_max_n))
    return DirectConvs(groups=tuple(groups), method=method, level=level)

"""Capacity control: the strata of equal capacity, and correlations measured within them.

Identity edges cost no parameters, so among architectures with the same number of sep-convs density
varies only through them: comparing candidates within a conv count holds capacity fixed without a
model of how accuracy depends on it. A rank partial correlation given the parameter count does not:
with clustered capacity (conv budgets) the residual ranks keep part of the capacity effect (on
records where PGD accuracy depends on parameters alone it reports about +0.13, p near 0.04), so it is
reported only as a secondary control (docs/study.md).

The stratified statistic is the weighted mean of the within-stratum Spearman correlations,
``T = sum_s w_s rho_s / sum_s w_s`` with ``w_s = n_s - 1`` (the inverse of the null variance
``1 / (n_s - 1)`` of rho_s), over the strata with at least 3 candidates where both variables vary. Its
permutation test shuffles y within each stratum; its interval resamples within each stratum.
Above ``resample_max_n``: ``z = T sqrt(sum_s w_s)`` under the null, and the interval
``T -/+ z se`` with ``se^2 = sum_s w_s^2 se_s^2 / (sum_s w_s)^2``, ``se_s`` the delta-method error of
rho_s from the Bonett-Wright standard error of its Fisher z.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from fspkit.stats import resampling as rs
from fspkit.stats.core import (
    LEVEL,
    N_BOOT,
    RESAMPLE_MAX_N,
    Records,
    RngLike,
    _generator,
    _max_n,
    _n_boot,
    _n_perm,
    _sign,
    _vector,
    column,
    has_column,
)
from fspkit.stats.correlation import NO_INTERVAL, Correlation, perm_test
from fspkit.stats.inference import normal_pvalue
from robnet.search.records import BUDGET, CONVS

__all__ = ["Strata", "capacity_strata", "stratified_correlation"]

MIN_STRATUM = 3


@dataclass(frozen=True, kw_only=True)
class Strata:
    """Groups of equal capacity: ``keys`` (one per record, NaN: no stratum), named by ``column``.

    Attributes:
        column: ``convs`` (exact conv count per cell), ``budget``, or ``convs (quintiles)`` (approximate).
        note: how the strata were chosen, for the report.
    """

    keys: np.ndarray
    column: str
    note: str


def _share_in_strata(keys: np.ndarray) -> float:
    ok = keys[np.isfinite(keys)]
    if len(ok) == 0:
        return 0.0
    _, counts = np.unique(ok, return_counts=True)
    return float(counts[counts >= MIN_STRATUM].sum()) / len(keys)


def capacity_strata(records: Records) -> Strata:
    """The strata of equal capacity of the records (docs/study.md): the exact conv count per cell
    when at least half of the candidates share theirs with two others; else the sampling budget
    when every record has one; else conv-count quintiles (an approximate control, said in ``note``).

    Raises:
        ValueError: records with neither ``convs`` nor ``budget``.
    """
    if has_column(records, CONVS):
        convs = column(records, CONVS)
        if _share_in_strata(convs) >= 0.5:
            return Strata(keys=convs, column=CONVS, note="strata: candidates with the same sep-conv count per cell")
    if has_column(records, BUDGET) and all(r.get(BUDGET) is not None for r in records):
        budget = column(records, BUDGET)
        return Strata(keys=budget, column=BUDGET, note="strata: candidates sampled with the same conv budget")
    if not has_column(records, CONVS):
        raise ValueError("capacity_strata: the records hold neither 'convs' nor 'budget'; capacity cannot be held "
                         "fixed")
    edges = np.unique(np.quantile(convs[np.isfinite(convs)], [0.2, 0.4, 0.6, 0.8]))
    keys = np.where(np.isfinite(convs), np.searchsorted(edges, convs, side="left").astype(float), np.nan)
    return Strata(keys=keys, column=f"{CONVS} (quintiles)",
                  note="strata: conv-count quintiles (too few candidates share an exact conv count: the control "
                       "is approximate)")


def _groups(xa: np.ndarray, ya: np.ndarray, keys: np.ndarray) -> list[np.ndarray]:
    """Index arrays of the usable strata: at least MIN_STRATUM members, x and y varying."""
    out = []
    for k in np.unique(keys[np.isfinite(keys)]):
        idx = np.flatnonzero(keys == k)
        if len(idx) >= MIN_STRATUM and np.ptp(xa[idx]) > 0 and np.ptp(ya[idx]) > 0:
            out.append(idx)
    return out


def _boot_stratified(xa: np.ndarray, ya: np.ndarray, groups: list[np.ndarray], n_boot: int,
                     gen: np.random.Generator, level: float) -> tuple[tuple[float, float], int, str]:
    sizes = [len(g) for g in groups]
    if not rs.enough_resamples(sizes):
        return NO_INTERVAL, 0, "none: too few distinct stratified bootstrap resamples"
    weights = np.array(sizes, dtype=float) - 1
    num = np.zeros(n_boot)
    den = np.zeros(n_boot)
    for g, w in zip(groups, weights, strict=True):
        coefs = np.concatenate([rs.rowwise_pearson(rs.resample_ranks(xa[g], idx), rs.resample_ranks(ya[g], idx))
                                for idx in rs.index_chunks(gen, len(g), n_boot)])
        ok = np.isfinite(coefs)
        num += np.where(ok, w * coefs, 0.0)
        den += np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = num / den
    ci, valid = rs.percentile_interval(boot, level)
    return ci, valid, f"stratified bootstrap percentile ({n_boot})"


def _large_sample(rhos: np.ndarray, sizes: np.ndarray, level: float) -> tuple[float, tuple[float, float]]:
    """p-value and interval of T from the normal approximations (module docstring)."""
    w = sizes - 1.0
    t = float((w * rhos).sum() / w.sum())
    df = np.maximum(sizes - 3.0, 1.0)
    se_s = (1 - rhos**2) * np.sqrt((1 + rhos**2 / 2) / df)
    se = math.sqrt(float((w**2 * se_s**2).sum())) / float(w.sum())
    z = float(sps.norm.ppf(0.5 + level / 2))
    return normal_pvalue(t * math.sqrt(float(w.sum()))), (max(-1.0, t - z * se), min(1.0, t + z * se))


def stratified_correlation(x: Any, y: Any, strata: Any, *, n_boot: int = N_BOOT, n_perm: int = 0,
                           rng: RngLike = None, names: tuple[str, str, str] = ("x", "y", "stratum"),
                           level: float = LEVEL, sign: int = 1,
                           resample_max_n: int | None = RESAMPLE_MAX_N) -> Correlation:
    """Spearman correlation of ``sign * x`` with y within strata (module docstring).

    Args:
        x, y: paired observations.
        strata: one key per point (NaN: in no stratum).
        n_boot, n_perm, rng, names, level, sign, resample_max_n: as :func:`fspkit.stats.correlate`.

    Raises:
        ValueError: unequal lengths, NaN in x or y, no stratum with 3 points where x and y vary.
    """
    _n_boot(n_boot)
    _n_perm(n_perm)
    _max_n(resample_max_n)
    xa = _sign(sign) * _vector(x, names[0], constant_ok=True)
    ya = _vector(y, names[1], n=len(xa), other=names[0], constant_ok=True)
    keys = np.asarray(strata, dtype=float)
    if keys.shape != xa.shape:
        raise ValueError(f"{names[2]} has {len(keys)} values but {names[0]} has {len(xa)}: one stratum per point")
    groups = _groups(xa, ya, keys)
    if not groups:
        raise ValueError(f"no stratum of {names[2]} holds {MIN_STRATUM} candidates where {names[0]} and {names[1]} "
                         "both vary: the within-stratum correlation is undefined")
    sizes = [len(g) for g in groups]
    a_parts, b_parts, rhos = [], [], []
    for g, w in zip(groups, np.array(sizes) - 1.0, strict=True):
        a, b = sps.rankdata(xa[g]), sps.rankdata(ya[g])
        a, b = a - a.mean(), b - b.mean()
        scale = math.sqrt(float(a @ a) * float(b @ b))
        rhos.append(float(a @ b) / scale)
        a_parts.append(a * w / (scale * (sum(sizes) - len(sizes))))
        b_parts.append(b)
    a_all, b_all, rho = np.concatenate(a_parts), np.concatenate(b_parts), np.array(rhos)
    t = float(b_all @ a_all)
    n, gen = sum(sizes), _generator(rng)
    small = resample_max_n is None or n <= resample_max_n
    p_large, ci_large = _large_sample(rho, np.array(sizes, dtype=float), level)
    ci, valid, ci_method = (ci_large, 0, "normal approximation (Fisher z per stratum)") if n_boot else (
        NO_INTERVAL, 0, "none")
    if n_boot and small:
        ci, valid, ci_method = _boot_stratified(xa, ya, groups, n_boot, gen, level)
    pvalue, p_method, min_p = p_large, "normal approximation", 0.0
    if n_perm and small:
        pvalue, p_method, min_p = perm_test(a_all, b_all, sizes, n_perm, gen)
        p_method = "stratified " + p_method
    return Correlation(method="spearman", coef=t, pvalue=pvalue, p_method=p_method, min_pvalue=min_p, ci=ci,
                       ci_method=ci_method, n=n, n_eff=n - len(sizes) + 1, n_boot=n_boot, n_boot_valid=valid,
                       level=level, names=(names[0], names[1]), sign=sign, control=names[2], stratified=True,
                       strata=len(sizes))


def strata_sizes(keys: Sequence[float]) -> list[int]:
    """Sizes of the strata of these keys (NaN keys left out), ascending by key."""
    arr = np.asarray(keys, dtype=float)
    return [int(c) for c in np.unique(arr[np.isfinite(arr)], return_counts=True)[1]]

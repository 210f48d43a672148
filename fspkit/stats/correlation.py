"""Rank and linear correlations with their uncertainty: plain, partial (one control) and stratified
(within strata of a control), and the difference of two correlations with the same variable.

One sign convention everywhere: ``sign=-1`` correlates ``-x`` (a score where lower predicts more
robust, like an FSP distance), so a positive coefficient always means "predicts robustness".

p-values and intervals (docs/study.md):

* n <= ``resample_max_n``: permutation p-values (exact enumeration when there are at most ``n_perm``
  distinct permutations) and bootstrap intervals: percentile for plain and stratified correlations,
  BCa for partial ones, whose permutation test permutes the residuals of y given the control
  (Freedman & Lane 1983). No interval when the sample has fewer than ``MIN_DISTINCT_RESAMPLES``
  distinct resamples.
* larger n: the t approximation of scipy and Fisher-z intervals with the Bonett-Wright standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from fspkit.stats import resampling as rs
from fspkit.stats.core import (
    LEVEL,
    N_BOOT,
    RESAMPLE_MAX_N,
    RngLike,
    _fraction,
    _generator,
    _max_n,
    _method,
    _n_boot,
    _n_perm,
    _sign,
    _vector,
)
from fspkit.stats.inference import fisher_interval, fisher_se, normal_pvalue

__all__ = ["Correlation", "Difference", "compare_correlations", "correlate", "partial_correlation"]


@dataclass(frozen=True, kw_only=True)
class Correlation:
    """A correlation with its p-value and interval, and how each was computed.

    Attributes:
        method: ``spearman``, ``pearson`` or ``kendall`` (tau-b).
        coef: the coefficient of ``sign * x`` with y (positive: predicts robustness).
        pvalue: two-sided p-value of no association; ``p_method`` says how (``permutation (999)``,
            ``exact permutation (120)``, ``t approximation``, ...).
        min_pvalue: the smallest p-value the sample allows the test (``2 / distinct permutations``; 0 for
            a large-sample test); a Monte Carlo test's own floor is ``1 / (n_perm + 1)`` on top.
        ci: interval at ``level`` (NaN ends: not reported, ``ci_method`` says why).
        n: points; n_eff: the effective n of the test's power (n; stratified: n - strata + 1).
        n_boot: resamples drawn; ``n_boot_valid`` of them had a defined coefficient.
        names: the two variables; sign: +1, or -1 when the coefficient is of ``-x``.
        control: the variable partialled out, or the stratum variable (``stratified``), if any.
        strata: strata used by a stratified correlation (None otherwise).
    """

    method: str
    coef: float
    pvalue: float
    p_method: str
    min_pvalue: float
    ci: tuple[float, float]
    ci_method: str
    n: int
    n_eff: float
    n_boot: int
    n_boot_valid: int
    level: float
    names: tuple[str, str]
    sign: int = 1
    control: str | None = None
    stratified: bool = False
    strata: int | None = None


NO_INTERVAL = (math.nan, math.nan)
_ASYMPTOTIC_P = {"spearman": "t approximation", "pearson": "t-test", "kendall": "normal approximation"}


def _coef(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    res: Any
    if method == "spearman":
        res = sps.spearmanr(x, y)
    elif method == "pearson":
        res = sps.pearsonr(x, y)
    else:
        res = sps.kendalltau(x, y)
    return float(res.statistic), float(res.pvalue)


def _small(n: int, resample_max_n: int | None) -> bool:
    return resample_max_n is None or n <= resample_max_n


def _scores(v: np.ndarray, method: str) -> np.ndarray:
    """What a rank or linear correlation correlates: average ranks (Spearman) or the values."""
    return sps.rankdata(v) if method == "spearman" else v


# ---------------------------------------------------------------------------------- plain


def _boot_coefs(x: np.ndarray, y: np.ndarray, method: str, idx: np.ndarray) -> np.ndarray:
    """The coefficient on each resample ``x[idx[b]], y[idx[b]]``; idx (B, n) -> (B,)."""
    if method == "spearman":  # rank within each resample (average ranks for ties), then Pearson
        return rs.rowwise_pearson(rs.resample_ranks(x, idx), rs.resample_ranks(y, idx))
    xs, ys = x[idx], y[idx]  # (B, n)
    if method == "pearson":
        return rs.rowwise_pearson(xs, ys)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array([sps.kendalltau(a, b).statistic for a, b in zip(xs, ys, strict=True)])


def _too_few_resamples(n: int) -> str:
    return (f"none: n = {n} has only {rs.distinct_resamples(n)} distinct bootstrap resamples "
            f"(< {rs.MIN_DISTINCT_RESAMPLES})")


def _boot_interval(x: np.ndarray, y: np.ndarray, method: str, n_boot: int, gen: np.random.Generator,
                   level: float) -> tuple[tuple[float, float], int, str]:
    n = len(x)
    if not rs.enough_resamples([n]):
        return NO_INTERVAL, 0, _too_few_resamples(n)
    boot = np.concatenate([_boot_coefs(x, y, method, idx) for idx in rs.index_chunks(gen, n, n_boot)])
    ci, valid = rs.percentile_interval(boot, level)
    return ci, valid, f"bootstrap percentile ({n_boot})"


def perm_test(a: np.ndarray, b: np.ndarray, sizes: list[int], n_perm: int,
              gen: np.random.Generator) -> tuple[float, str, float]:
    """p-value of ``b @ a`` over the permutations of b within consecutive groups of ``sizes``; also the
    p-method text and the smallest p-value the sample allows (``2 / distinct permutations``)."""
    observed = float(b @ a)
    chunks, exact = rs.permuted(gen, b, sizes, n_perm)
    null = np.concatenate([m @ a for m in chunks])
    floor = 2 / rs.permutation_count(sizes, 10**9)  # what the sample allows; Monte Carlo adds 1 / (B + 1)
    p = rs.permutation_pvalue(observed, null, exact=exact)
    return p, f"{'exact permutation' if exact else 'permutation'} ({len(null)})", min(1.0, floor)


def correlate(x: Any, y: Any, *, method: str = "spearman", n_boot: int = N_BOOT, n_perm: int = 0,
              rng: RngLike = None, names: tuple[str, str] = ("x", "y"), level: float = LEVEL, sign: int = 1,
              resample_max_n: int | None = RESAMPLE_MAX_N) -> Correlation:
    """Correlation of ``sign * x`` with ``y``, its p-value and interval (module docstring).

    The ``n_boot`` resamples draw n point pairs with replacement; each is ranked once (Spearman:
    average ranks, as scipy) and correlated in one vectorised pass, chunk by chunk. Resamples where a
    variable is constant have no coefficient and are left out (``n_boot_valid``). The bootstrap is
    drawn from ``rng`` before the permutations.

    Args:
        x, y: paired observations (n >= 3, finite, neither constant).
        method: ``spearman`` (default), ``pearson`` or ``kendall`` (tau-b; no permutation test).
        n_boot: bootstrap resamples (0: no interval).
        n_perm: permutations of the p-value (0: scipy's large-sample p-value).
        rng: generator or seed (None: seed 0).
        names: the variables' names, used in errors and reports.
        level: coverage of the interval.
        sign: +1, or -1 to correlate ``-x`` (a lower-is-better score).
        resample_max_n: above this n, the large-sample p-value and Fisher-z interval (None: never).

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a constant variable, unknown method,
            a permutation test of Kendall's tau.
    """
    _method(method)
    _n_boot(n_boot)
    _n_perm(n_perm)
    _fraction(level, "level")
    _max_n(resample_max_n)
    _sign(sign)
    if method == "kendall" and n_perm:
        raise ValueError("correlate: permutation p-values are for spearman and pearson; use n_perm=0 for kendall")
    xa = sign * _vector(x, names[0])
    ya = _vector(y, names[1], n=len(xa), other=names[0])
    n = len(xa)
    coef, pvalue = _coef(xa, ya, method)
    gen = _generator(rng)
    small = _small(n, resample_max_n)
    ci, valid, ci_method = NO_INTERVAL, 0, "none"
    if n_boot and small:
        ci, valid, ci_method = _boot_interval(xa, ya, method, n_boot, gen, level)
    elif n_boot:
        ci, ci_method = fisher_interval(coef, n, level=level, method=method), "Fisher z (Bonett-Wright)"
    p_method, min_p = _ASYMPTOTIC_P[method], 0.0
    if n_perm and small:
        a, b = _scores(xa, method), _scores(ya, method)
        a, b = a - a.mean(), b - b.mean()
        a = a / math.sqrt(float(a @ a) * float(b @ b))
        pvalue, p_method, min_p = perm_test(a, b, [n], n_perm, gen)
    return Correlation(method=method, coef=coef, pvalue=pvalue, p_method=p_method, min_pvalue=min_p, ci=ci,
                       ci_method=ci_method, n=n, n_eff=n, n_boot=n_boot, n_boot_valid=valid, level=level,
                       names=(names[0], names[1]), sign=sign)


# ---------------------------------------------------------------------------------- partial


def _residualize(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones(len(z)), z])
    beta = np.linalg.lstsq(design, v, rcond=None)[0]
    return v - design @ beta


def _closed_partial(rxy: np.ndarray, rxz: np.ndarray, ryz: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))


def _partial_boot(xa: np.ndarray, ya: np.ndarray, za: np.ndarray, method: str, idx: np.ndarray) -> np.ndarray:
    """The partial coefficient on each resample (re-ranked within it), by the closed form. (B,)"""
    if method == "spearman":
        bx, by, bz = (rs.resample_ranks(v, idx) for v in (xa, ya, za))
    else:
        bx, by, bz = xa[idx], ya[idx], za[idx]
    return _closed_partial(rs.rowwise_pearson(bx, by), rs.rowwise_pearson(bx, bz), rs.rowwise_pearson(by, bz))


def _partial_jackknife(xa: np.ndarray, ya: np.ndarray, za: np.ndarray, method: str) -> np.ndarray:
    """Leave-one-out partial coefficients (re-ranked without the point). (n,)"""
    def stat(left: np.ndarray) -> np.ndarray:
        w = rs.loo_weights(len(xa), left)
        if method == "spearman":
            vx, vy, vz = (rs.loo_ranks(v, left) for v in (xa, ya, za))
        else:
            vx, vy, vz = (np.broadcast_to(v, w.shape) for v in (xa, ya, za))
        return _closed_partial(rs.weighted_pearson(vx, vy, w), rs.weighted_pearson(vx, vz, w),
                               rs.weighted_pearson(vy, vz, w))

    return rs.jackknife(len(xa), stat)


def _partial_bca(xa: np.ndarray, ya: np.ndarray, za: np.ndarray, method: str, coef: float, n_boot: int,
                 gen: np.random.Generator, level: float) -> tuple[tuple[float, float], int, str]:
    n = len(xa)
    if not rs.enough_resamples([n]):
        return NO_INTERVAL, 0, _too_few_resamples(n)
    boot = np.concatenate([_partial_boot(xa, ya, za, method, idx) for idx in rs.index_chunks(gen, n, n_boot)])
    if n <= rs.JACKKNIFE_MAX_N:
        accel = rs.acceleration(_partial_jackknife(xa, ya, za, method))
    else:  # the jackknife of a subsample; the acceleration scales as 1/sqrt(n)
        sub = gen.choice(n, rs.JACKKNIFE_MAX_N, replace=False)
        jack = _partial_jackknife(xa[sub], ya[sub], za[sub], method)
        accel = rs.acceleration(jack, math.sqrt(rs.JACKKNIFE_MAX_N / n))
    ci, valid = rs.bca_interval(boot, coef, accel, level)
    return ci, valid, f"BCa bootstrap ({n_boot})"


def _freedman_lane(rx: np.ndarray, ry: np.ndarray, tz: np.ndarray, n_perm: int,
                   gen: np.random.Generator) -> tuple[float, str, float]:
    """Permute the residuals of y given the control, residualise them again, correlate with x's
    residuals: ``T* = rx . v / (|rx| |P v|)`` with P the projection off (1, z)."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(len(tz)), tz]))  # (n, 2) orthonormal basis of (1, z)
    norm_rx, sq_ry = math.sqrt(float(rx @ rx)), float(ry @ ry)

    def stat(v: np.ndarray) -> np.ndarray:  # (c, n) -> (c,)
        proj = v @ q  # (c, 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (v @ rx) / (norm_rx * np.sqrt(np.maximum(sq_ry - (proj * proj).sum(axis=1), 0.0)))

    chunks, exact = rs.permuted(gen, ry, [len(ry)], n_perm)
    null = [stat(m) for m in chunks]
    floor = 2 / rs.permutation_count([len(rx)], 10**9)
    p = rs.permutation_pvalue(float(stat(ry[None, :])[0]), np.concatenate(null), exact=exact)
    kind = "exact Freedman-Lane permutation" if exact else "Freedman-Lane permutation"
    return p, f"{kind} ({sum(len(x) for x in null)})", min(1.0, floor)


def partial_correlation(x: Any, y: Any, control: Any, *, method: str = "spearman", n_boot: int = N_BOOT,
                        n_perm: int = 0, rng: RngLike = None, names: tuple[str, str, str] = ("x", "y", "control"),
                        level: float = LEVEL, sign: int = 1,
                        resample_max_n: int | None = RESAMPLE_MAX_N) -> Correlation:
    """Correlation of ``sign * x`` and ``y`` with ``control`` partialled out (module docstring).

    Pearson: correlate the residuals of x and y after a least-squares fit on ``control`` (with an
    intercept). Spearman: the same on ranks (x, y and control each ranked first). Without
    permutations the p-value is the t-test with n - 3 degrees of freedom,
    ``t = r sqrt((n - 3) / (1 - r^2))``. The bootstrap re-ranks each resample and uses the closed
    form ``(r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))``; its BCa acceleration comes from the
    jackknife (re-ranked without each point).

    Raises:
        ValueError: unequal lengths, NaN, fewer than 4 points, a constant variable, a control that
            explains x or y, method not ``spearman``/``pearson``.
    """
    _method(method, ("spearman", "pearson"))
    _n_boot(n_boot)
    _n_perm(n_perm)
    _fraction(level, "level")
    _max_n(resample_max_n)
    xa = _sign(sign) * _vector(x, names[0], min_n=4)
    ya = _vector(y, names[1], n=len(xa), other=names[0])
    za = _vector(control, names[2], n=len(xa), other=names[0])
    tx, ty, tz = (_scores(v, method) for v in (xa, ya, za))
    rx, ry = _residualize(tx, tz), _residualize(ty, tz)
    if float(rx @ rx) <= 1e-12 * float(((tx - tx.mean()) ** 2).sum()) or \
            float(ry @ ry) <= 1e-12 * float(((ty - ty.mean()) ** 2).sum()):
        raise ValueError(f"{names[0]} or {names[1]} is fully explained by {names[2]}: the partial correlation is "
                         "undefined. Hint: check that the control is not a copy of a variable")
    coef = float(rx @ ry) / math.sqrt(float(rx @ rx) * float(ry @ ry))
    n = len(xa)
    gen = _generator(rng)
    small = _small(n, resample_max_n)
    ci, valid, ci_method = NO_INTERVAL, 0, "none"
    if n_boot and small:
        ci, valid, ci_method = _partial_bca(xa, ya, za, method, coef, n_boot, gen, level)
    elif n_boot:
        ci = fisher_interval(coef, n, level=level, method=method, controls=1)
        ci_method = "Fisher z (Bonett-Wright)"
    t = coef * math.sqrt((n - 3) / max(1e-300, 1 - coef * coef))
    pvalue, p_method, min_p = float(2 * sps.t.sf(abs(t), n - 3)), "t-test (n - 3 df)", 0.0
    if n_perm and small:
        pvalue, p_method, min_p = _freedman_lane(rx, ry, tz, n_perm, gen)
    return Correlation(method=method, coef=coef, pvalue=pvalue, p_method=p_method, min_pvalue=min_p, ci=ci,
                       ci_method=ci_method, n=n, n_eff=n - 1, n_boot=n_boot, n_boot_valid=valid, level=level,
                       names=(names[0], names[1]), sign=sign, control=names[2])


def fisher_z_pvalue(coef: float, n: int, method: str = "spearman") -> float:
    """Two-sided large-sample p-value of a correlation from Fisher z (null standard error)."""
    if n <= 3 or not math.isfinite(coef) or abs(coef) >= 1:
        return 0.0 if abs(coef) == 1 else math.nan
    return normal_pvalue(math.atanh(coef) / fisher_se(0.0, n, method=method))


# ---------------------------------------------------------------------------------- differences


@dataclass(frozen=True, kw_only=True)
class Difference:
    """``coef(a) - coef(b)``: two Spearman correlations with the same y (each of its signed score).

    Attributes:
        names: the two scores; delta: the difference; ci: its interval at ``level`` (``ci_method``).
    """

    names: tuple[str, str]
    delta: float
    ci: tuple[float, float]
    ci_method: str
    n: int
    level: float


def _zou_interval(r1: float, r2: float, r12: float, n: int, level: float) -> tuple[float, float]:
    """Zou (2007) interval of r1 - r2 for correlations sharing a variable, from their Fisher intervals
    and the correlation of the two estimates."""
    l1, u1 = fisher_interval(r1, n, level=level)
    l2, u2 = fisher_interval(r2, n, level=level)
    c = ((r12 - r1 * r2 / 2) * (1 - r1**2 - r2**2 - r12**2) + r12**3) / max(1e-12, (1 - r1**2) * (1 - r2**2))
    lo = r1 - r2 - math.sqrt(max(0.0, (r1 - l1) ** 2 + (u2 - r2) ** 2 - 2 * c * (r1 - l1) * (u2 - r2)))
    hi = r1 - r2 + math.sqrt(max(0.0, (u1 - r1) ** 2 + (r2 - l2) ** 2 - 2 * c * (u1 - r1) * (r2 - l2)))
    return lo, hi


def compare_correlations(a: Any, b: Any, y: Any, *, signs: tuple[int, int] = (1, 1), n_boot: int = N_BOOT,
                         rng: RngLike = None, names: tuple[str, str, str] = ("a", "b", "y"), level: float = LEVEL,
                         resample_max_n: int | None = RESAMPLE_MAX_N) -> Difference:
    """How much better ``signs[0] * a`` ranks y than ``signs[1] * b`` does (Spearman): the difference
    with a paired bootstrap percentile interval (both re-ranked on the same resamples), or Zou's
    (2007) interval above ``resample_max_n``.

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a constant variable.
    """
    _n_boot(n_boot)
    _max_n(resample_max_n)
    xa = _sign(signs[0]) * _vector(a, names[0])
    xb = _sign(signs[1]) * _vector(b, names[1], n=len(xa), other=names[0])
    ya = _vector(y, names[2], n=len(xa), other=names[0])
    n = len(xa)
    r1, r2 = _coef(xa, ya, "spearman")[0], _coef(xb, ya, "spearman")[0]
    ci, method = NO_INTERVAL, "none"
    if n_boot and _small(n, resample_max_n):
        if not rs.enough_resamples([n]):
            method = _too_few_resamples(n)
        else:
            diffs = [_boot_coefs(xa, ya, "spearman", idx) - _boot_coefs(xb, ya, "spearman", idx)
                     for idx in rs.index_chunks(_generator(rng), n, n_boot)]
            ci, _ = rs.percentile_interval(np.concatenate(diffs), level)
            method = f"paired bootstrap percentile ({n_boot})"
    elif n_boot:
        ci, method = _zou_interval(r1, r2, _coef(xa, xb, "spearman")[0], n, level), "Zou (2007), Fisher z"
    return Difference(names=(names[0], names[1]), delta=r1 - r2, ci=ci, ci_method=method, n=n, level=level)

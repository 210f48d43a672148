"""Closed-form inference: Holm's correction, the smallest detectable correlation, Fisher-z intervals
for large samples, exact hypergeometric tails and Wilson intervals.

Formulas (docs/study.md gives the reasons):

* Holm (1979): sort the m p-values ascending, ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j))``.
* Smallest detectable correlation at power ``1 - beta`` and two-sided level ``alpha`` (Fisher z):
  ``r = tanh((z_{1 - alpha/2} + z_{1 - beta}) * sqrt(c / (n - 3)))``, with ``c = 1.06`` for Spearman's
  rho (Fieller, Hartley & Pearson 1957) and ``c = 1`` for Pearson's r.
* Large-sample interval of a rank correlation: ``tanh(atanh(r) -/+ z se)`` with the Bonett & Wright
  (2000) standard error ``se = sqrt((1 + r^2 / 2) / (n - 3 - k))`` for Spearman (k controls),
  ``1 / sqrt(n - 3 - k)`` for Pearson.
* Recall against a random filter: a random subset of ``n_keep`` of n candidates holds
  ``Hypergeometric(n, n_top, n_keep)`` of the n_top true top ones; the one-sided p-value is
  ``P(X >= hits)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from fspkit.stats.core import ALPHA

__all__ = ["POWER", "detectable_correlation", "fisher_interval", "holm", "recall_pvalue", "wilson_interval"]

POWER = 0.8  # power of the smallest detectable effect
SPEARMAN_VARIANCE = 1.06  # Fieller, Hartley & Pearson (1957): var(atanh(rho_s)) ~ 1.06 / (n - 3)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order (NaN stays NaN and is not counted).

    Raises:
        ValueError: a p-value outside [0, 1].
    """
    p = np.asarray(pvalues, dtype=float)
    ok = np.isfinite(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError(f"holm: p-values must lie in [0, 1], got {p[ok].min():g}..{p[ok].max():g}")
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(ok)
    order = idx[np.argsort(p[idx], kind="stable")]
    m = len(order)
    running = 0.0
    for j, i in enumerate(order):
        running = max(running, min(1.0, (m - j) * p[i]))
        out[i] = running
    return out


def detectable_correlation(n: float, *, alpha: float = ALPHA, power: float = POWER,
                           method: str = "spearman") -> float:
    """The smallest correlation a two-sided test at ``alpha`` detects with probability ``power`` from n
    points (Fisher z; module docstring); 1.0 when n <= 3 (nothing is detectable)."""
    if n <= 3:
        return 1.0
    c = SPEARMAN_VARIANCE if method == "spearman" else 1.0
    z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power))
    return float(math.tanh(z * math.sqrt(c / (n - 3))))


def fisher_se(r: float, n: int, *, method: str = "spearman", controls: int = 0) -> float:
    """Standard error of atanh(r) (module docstring); inf when n - 3 - controls < 1."""
    df = n - 3 - controls
    if df < 1:
        return math.inf
    if method == "spearman":
        return math.sqrt((1 + r * r / 2) / df)
    return 1 / math.sqrt(df)


def fisher_interval(r: float, n: int, *, level: float = 0.95, method: str = "spearman",
                    controls: int = 0) -> tuple[float, float]:
    """Large-sample interval ``tanh(atanh(r) -/+ z se)`` (module docstring)."""
    if not math.isfinite(r) or abs(r) >= 1:
        return (r, r) if abs(r) == 1 else (math.nan, math.nan)
    z = float(sps.norm.ppf(0.5 + level / 2)) * fisher_se(r, n, method=method, controls=controls)
    return math.tanh(math.atanh(r) - z), math.tanh(math.atanh(r) + z)


def normal_pvalue(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return float(2 * sps.norm.sf(abs(z))) if math.isfinite(z) else math.nan


def recall_pvalue(hits: int, n: int, n_top: int, n_keep: int) -> float:
    """``P(X >= hits)`` for ``X ~ Hypergeometric(n, n_top, n_keep)``: how often a random filter keeping
    n_keep of n candidates keeps at least ``hits`` of the n_top true top ones."""
    return float(sps.hypergeom.sf(hits - 1, n, n_top, n_keep))


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion k / n (scipy's ``binomtest(...).proportion_ci``);
    NaN bounds for n = 0."""
    if n <= 0:
        return math.nan, math.nan
    ci = sps.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)

"""Resampling machinery: chunked bootstrap and permutation draws, ranks within resamples, and the
percentile, BCa and order-statistic intervals.

Memory stays bounded at any n: indices are drawn in chunks of about ``CHUNK_ELEMENTS`` entries (a
(1000, 100000) index matrix would take 800 MB), and drawing chunk by chunk gives the same indices as
one big draw (numpy's ``Generator.integers`` streams), so a small sample's intervals equal those of
``scipy.stats.bootstrap`` with the same generator.

References: Efron & Tibshirani, "An Introduction to the Bootstrap" (1993), 14.3 (BCa, Eq. 14.14-14.15)
and 11.3 (the jackknife); Freedman & Lane (1983) for the permutation of residuals.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
from scipy import special
from scipy import stats as sps

from fspkit.stats.core import CHUNK_ELEMENTS, MIN_DISTINCT_RESAMPLES

__all__ = [
    "acceleration", "bca_interval", "distinct_resamples", "median_interval", "percentile_interval",
    "permutation_pvalue",
]

# The BCa acceleration comes from the exact jackknife up to this n; above, from the jackknife of a random
# subsample of this size, scaled by sqrt(m / n) (the acceleration is skewness / (6 sqrt(n))).
JACKKNIFE_MAX_N = 500


def distinct_resamples(n: int) -> int:
    """Distinct bootstrap resamples (multisets) of n points: ``C(2n - 1, n)``."""
    return math.comb(2 * n - 1, n) if n > 0 else 0


def enough_resamples(sizes: Sequence[int]) -> bool:
    """Whether a (stratified) bootstrap over groups of these sizes has at least
    ``MIN_DISTINCT_RESAMPLES`` distinct resamples (the product over groups)."""
    total = 1
    for n in sizes:
        total *= distinct_resamples(n)
        if total >= MIN_DISTINCT_RESAMPLES:
            return True
    return total >= MIN_DISTINCT_RESAMPLES


def index_chunks(rng: np.random.Generator, n: int, n_boot: int) -> Iterator[np.ndarray]:
    """``n_boot`` bootstrap index rows over n points, in chunks of (rows, n); the concatenation equals
    ``rng.integers(0, n, (n_boot, n))``."""
    rows = max(1, CHUNK_ELEMENTS // max(1, n))
    for start in range(0, n_boot, rows):
        yield rng.integers(0, n, size=(min(rows, n_boot - start), n))


def rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``; (B, n) -> (B,), NaN if constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def resample_ranks(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks (from 1, ties share their mean rank, as ``scipy.stats.rankdata``) of every resample
    ``v[idx[b]]`` without sorting: a draw's rank is the number of draws below its value plus half
    of its own tie group.  idx (B, n) -> (B, n)."""
    _, group = np.unique(v, return_inverse=True)  # (n,) dense tie group of each point, in value order
    n_groups = int(group.max()) + 1
    g = group[idx]  # (B, n)
    rows = np.arange(len(idx))[:, None] * n_groups
    counts = np.bincount((g + rows).ravel(), minlength=len(idx) * n_groups).reshape(len(idx), n_groups)
    below = np.cumsum(counts, axis=1) - counts  # (B, G) draws in lower groups
    return np.take_along_axis(below + (counts + 1) / 2, g, axis=1)


def percentile_interval(boot: np.ndarray, level: float) -> tuple[tuple[float, float], int]:
    """The percentile interval of the finite bootstrap values, and how many there were."""
    ok = boot[np.isfinite(boot)]
    if len(ok) == 0:
        return (math.nan, math.nan), 0
    lo, hi = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi)), len(ok)


def acceleration(jack: np.ndarray, scale: float = 1.0) -> float:
    """BCa acceleration from jackknife values (Efron & Tibshirani Eq. 14.15, scipy's form):
    ``sum(U^3) / (6 sum(U^2)^1.5)`` with ``U = mean - theta_(i)``, times ``scale`` (``sqrt(m / n)`` when
    the jackknife ran on a subsample of m of the n points: the acceleration shrinks as 1/sqrt(n))."""
    jack = jack[np.isfinite(jack)]
    u = jack.mean() - jack if len(jack) else jack
    den = float((u * u).sum())
    return 0.0 if den == 0 else scale * float((u**3).sum() / (6 * den**1.5))


def bca_interval(boot: np.ndarray, theta: float, accel: float, level: float) -> tuple[tuple[float, float], int]:
    """Bias-corrected and accelerated interval (Efron & Tibshirani 14.3), as ``scipy.stats.bootstrap``
    computes it: ``z0 = Phi^-1(share of resamples below theta, ties counting half)`` and the
    percentiles ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))`` of the bootstrap values at
    ``z = Phi^-1((1 -/+ level) / 2)``, with the acceleration ``accel`` (:func:`acceleration`).
    Non-finite resamples are left out; NaN ends when every resample lies on one side of theta."""
    ok = boot[np.isfinite(boot)]
    if len(ok) == 0 or not math.isfinite(theta):
        return (math.nan, math.nan), 0
    share = (np.count_nonzero(ok < theta) + np.count_nonzero(ok <= theta)) / (2 * len(ok))
    z0 = float(special.ndtri(share))
    ends = []
    for z in (float(special.ndtri((1 - level) / 2)), float(special.ndtri((1 + level) / 2))):
        ends.append(float(special.ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))))
    if not all(math.isfinite(e) for e in ends):
        return (math.nan, math.nan), len(ok)
    lo, hi = np.percentile(ok, [100 * ends[0], 100 * ends[1]])
    return (float(lo), float(hi)), len(ok)


def jackknife(n: int, statistic: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Leave-one-out values of a statistic over n points: ``statistic(left)`` gets the (c,) indices of
    the points left out, one per row, and returns their (c,) values; rows come in chunks of about
    ``CHUNK_ELEMENTS / 4`` entries."""
    rows = max(1, CHUNK_ELEMENTS // (4 * n))
    return np.concatenate([statistic(np.arange(s, min(n, s + rows))) for s in range(0, n, rows)])


def loo_ranks(v: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Average ranks within the sample without point ``left[i]``, for each row i: (c,) -> (c, n), the
    left-out point's own entry meaningless. Removing a smaller value lowers a rank by 1, a tied one
    by 1/2: ``R_(-i)(j) = R(j) - [v_j > v_i] - [v_j == v_i] / 2``."""
    r = sps.rankdata(v)
    vi = v[left][:, None]
    return r[None, :] - (v[None, :] > vi) - 0.5 * (v[None, :] == vi)


def loo_weights(n: int, left: np.ndarray) -> np.ndarray:
    """(c, n) weights: 1, except 0 at each row's left-out point."""
    w = np.ones((len(left), n))
    w[np.arange(len(left)), left] = 0.0
    return w


def weighted_pearson(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of a and b ((c, n) each) with weights w (c, n)."""
    sw = w.sum(axis=1, keepdims=True)
    ma, mb = (w * a).sum(axis=1, keepdims=True) / sw, (w * b).sum(axis=1, keepdims=True) / sw
    da, db = a - ma, b - mb
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * da * db).sum(axis=1) / np.sqrt((w * da * da).sum(axis=1) * (w * db * db).sum(axis=1))


# ---------------------------------------------------------------------------------- permutations


def permutation_pvalue(observed: float, null: np.ndarray, *, exact: bool) -> float:
    """Two-sided permutation p-value as ``scipy.stats.permutation_test`` defines it:
    ``min(1, 2 min(P(T* <= t), P(T* >= t)))``, where an exact enumeration's null holds every
    permutation (the observed one too) and a Monte Carlo one adds the observed statistic
    (``(count + 1) / (B + 1)``). Ties within a relative 1e-14 of t count as at least as extreme."""
    null = null[np.isfinite(null)]
    if not math.isfinite(observed) or len(null) == 0:
        return math.nan
    gamma = abs(1e-14 * observed)
    adjust = 0 if exact else 1
    less = (np.count_nonzero(null <= observed + gamma) + adjust) / (len(null) + adjust)
    greater = (np.count_nonzero(null >= observed - gamma) + adjust) / (len(null) + adjust)
    return float(min(1.0, 2 * min(less, greater)))


def permutation_count(sizes: Sequence[int], limit: int) -> int:
    """Distinct permutations within groups of these sizes (the product of n!), capped at ``limit + 1``."""
    total = 1
    for n in sizes:
        total *= math.factorial(min(n, 20))
        if total > limit:
            return limit + 1
    return total


def permuted(rng: np.random.Generator, b: np.ndarray, sizes: Sequence[int], n_perm: int
             ) -> tuple[Iterator[np.ndarray], bool]:
    """Rows of ``b`` permuted within consecutive groups of ``sizes`` (group g occupies positions
    ``sum(sizes[:g]) ...``): every such permutation when there are at most ``n_perm`` (``exact`` True),
    else ``n_perm`` random ones, in chunks of (rows, n)."""
    n = sum(sizes)
    starts = np.cumsum([0, *sizes[:-1]])
    if permutation_count(sizes, n_perm) <= n_perm:
        per_group = [[np.asarray(p) + s for p in itertools.permutations(range(k))] for k, s in zip(sizes, starts,
                                                                                                   strict=True)]
        rows = np.array([np.concatenate(combo) for combo in itertools.product(*per_group)], dtype=np.int64)
        return iter([b[rows]]), True
    return _random_rows(rng, b, sizes, starts, n, n_perm), False


def _random_rows(rng: np.random.Generator, b: np.ndarray, sizes: Sequence[int], starts: np.ndarray, n: int,
                 n_perm: int) -> Iterator[np.ndarray]:
    rows = max(1, CHUNK_ELEMENTS // max(1, n))
    for start in range(0, n_perm, rows):
        c = min(rows, n_perm - start)
        out = np.empty((c, n))
        for k, s in zip(sizes, starts, strict=True):
            out[:, s:s + k] = rng.permuted(np.broadcast_to(b[s:s + k], (c, k)), axis=1)
        yield out


# ---------------------------------------------------------------------------------- order statistics


def median_interval(values: np.ndarray, level: float) -> tuple[float, tuple[float, float]]:
    """The median and its distribution-free interval from order statistics: the j-th and (m+1-j)-th
    smallest of m values, with j the largest such that ``P(j <= Binomial(m, 1/2) <= m - j) >= level``
    (Conover, "Practical Nonparametric Statistics", 3.2). NaN ends when m is too small for ``level``
    (m < 6 at 95%)."""
    v = np.sort(np.asarray(values, dtype=float))
    m = len(v)
    if m == 0:
        return math.nan, (math.nan, math.nan)
    med = float(np.median(v))
    j = int(sps.binom.ppf((1 - level) / 2, m, 0.5))  # P(B <= j - 1) <= (1 - level) / 2
    while j > 0 and sps.binom.cdf(j - 1, m, 0.5) > (1 - level) / 2:
        j -= 1
    if j < 1:
        return med, (math.nan, math.nan)
    return med, (float(v[j - 1]), float(v[m - j]))

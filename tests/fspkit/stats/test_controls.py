"""fspkit.stats.controls: the strata of equal capacity and the within-stratum correlation, against a
hand computation, a brute-force enumeration, scipy, and null data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats

NULL_SETS = 200
MAX_REJECT = int(sps.binom.isf(1e-3, NULL_SETS, 0.05))


def test_statistic_is_the_weighted_mean_of_within_stratum_spearman():
    x = np.array([1, 2, 3, 4, 5, 1, 3, 2, 4, 9, 9, 9.0])
    y = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.9, 0.7, 0.8, 0.6, 0.1, 0.2, 0.3])
    keys = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2.0])  # stratum 2: x constant, left out
    c = stats.stratified_correlation(x, y, keys, n_boot=0)
    r0, r1 = sps.spearmanr(x[:5], y[:5]).statistic, sps.spearmanr(x[5:9], y[5:9]).statistic
    assert c.coef == pytest.approx((4 * r0 + 3 * r1) / 7)
    assert (c.n, c.strata, c.n_eff, c.stratified) == (9, 2, 8, True)


def test_exact_stratified_permutation_equals_a_brute_force_enumeration():
    x = np.array([1.0, 2, 3, 1, 2, 3])
    y = np.array([0.2, 0.1, 0.5, 0.3, 0.9, 0.4])
    keys = np.array([0, 0, 0, 1, 1, 1])
    c = stats.stratified_correlation(x, y, keys, n_boot=0, n_perm=999)

    def stat(yy: np.ndarray) -> float:
        return (sps.spearmanr(x[:3], yy[:3]).statistic * 2 + sps.spearmanr(x[3:], yy[3:]).statistic * 2) / 4

    null = np.array([stat(np.r_[y[list(p)], y[3:][list(q)]]) for p in itertools.permutations(range(3))
                     for q in itertools.permutations(range(3))])
    t = stat(y)
    expected = min(1.0, 2 * min(np.mean(null <= t + 1e-12), np.mean(null >= t - 1e-12)))
    assert c.coef == pytest.approx(t) and c.pvalue == pytest.approx(expected)
    assert c.p_method == "stratified exact permutation (36)" and c.min_pvalue == pytest.approx(2 / 36)


def test_one_stratum_is_the_plain_permutation_test():
    x, y = np.arange(6.0), np.array([0.3, 0.1, 0.4, 0.2, 0.6, 0.5])
    c = stats.stratified_correlation(x, y, np.zeros(6), n_boot=0, n_perm=999)
    ref = sps.permutation_test((x,), lambda a: sps.spearmanr(a, y).statistic, permutation_type="pairings",
                               n_resamples=10_000)
    assert c.pvalue == pytest.approx(ref.pvalue, abs=1e-12)
    assert c.coef == pytest.approx(sps.spearmanr(x, y).statistic)


def test_stratified_bootstrap_resamples_within_strata():
    rng = np.random.default_rng(0)
    keys = np.repeat([0, 1, 2], 15)
    x = rng.normal(size=45)
    y = x + rng.normal(size=45) + 3 * keys  # strong between-strata shift: not in the within-stratum ρ
    c = stats.stratified_correlation(x, y, keys, n_boot=500, rng=1)
    assert c.ci[0] < c.coef < c.ci[1] and c.ci_method == "stratified bootstrap percentile (500)"
    big = stats.stratified_correlation(x, y, keys, n_boot=500, rng=1, resample_max_n=10)
    assert big.ci_method.startswith("normal approximation") and big.ci == pytest.approx(c.ci, abs=0.08)
    w = np.array([14.0, 14.0, 14.0])
    rhos = np.array([sps.spearmanr(x[keys == k], y[keys == k]).statistic for k in range(3)])
    assert big.pvalue == pytest.approx(2 * sps.norm.sf(abs((w * rhos).sum() / w.sum()) * math.sqrt(w.sum())))


def test_stratified_test_is_calibrated_when_capacity_drives_both():
    rng = np.random.default_rng(3)
    rejected = 0
    for _ in range(NULL_SETS):
        keys = np.repeat([4.0, 7.0, 10.0], 8)
        x = keys + rng.normal(size=24)  # density grows with the conv count ...
        y = 0.02 * keys + 0.01 * rng.normal(size=24)  # ... and so does accuracy, but not within a count
        rejected += stats.stratified_correlation(x, y, keys, n_boot=0, n_perm=199, rng=rng).pvalue < 0.05
    assert 2 <= rejected <= MAX_REJECT
    assert stats.correlate(x, y, n_boot=0).pvalue < 1e-6  # the marginal test is fooled


def test_capacity_strata_rules():
    recs = [{"convs": float(c), "budget": b} for c, b in ((4, 4), (4, 4), (4, 4), (7, 7), (7, 7), (7, 7))]
    s = stats.capacity_strata(recs)
    assert s.column == "convs" and s.keys.tolist() == [4, 4, 4, 7, 7, 7]
    spread = [{"convs": c / 7, "budget": 7 if c % 2 else 4} for c in range(12)]  # cell-free means: all distinct
    assert stats.capacity_strata(spread).column == "budget"
    no_budget = [{"convs": c / 7} for c in range(12)]
    q = stats.capacity_strata(no_budget)
    assert q.column == "convs (quintiles)" and "approximate" in q.note and len(set(q.keys.tolist())) == 5
    with pytest.raises(ValueError, match=r"the records hold neither 'convs' nor 'budget'"):
        stats.capacity_strata([{"density": 0.5}])


def test_stratified_errors():
    with pytest.raises(ValueError, match=r"no stratum of stratum holds 3 candidates where x and y both vary"):
        stats.stratified_correlation([1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"stratum has 3 values but x has 4"):
        stats.stratified_correlation([1, 2, 3, 4], [1, 2, 3, 4], [0, 0, 1])

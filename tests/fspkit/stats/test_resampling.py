"""fspkit.stats.resampling and .inference against scipy and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from fspkit.stats import resampling as rs


def test_bca_interval_equals_scipy_for_a_skewed_statistic():
    x = np.random.default_rng(0).exponential(size=25)
    idx = np.random.default_rng(9).integers(0, 25, size=(4000, 25))
    boot = x[idx].std(axis=1)
    jack = np.array([np.delete(x, i).std() for i in range(25)])
    ci, valid = stats.bca_interval(boot, float(x.std()), rs.acceleration(jack), 0.95)
    ref = sps.bootstrap((x,), np.std, n_resamples=4000, method="BCa", rng=np.random.default_rng(9))
    assert valid == 4000 and ci == pytest.approx(tuple(ref.confidence_interval), rel=1e-10)


def test_percentile_interval_and_distinct_resamples():
    boot = np.array([np.nan, 1.0, 2.0, 3.0, 4.0])
    ci, valid = stats.percentile_interval(boot, 0.5)
    assert valid == 4 and ci == pytest.approx(tuple(np.percentile([1, 2, 3, 4], [25, 75])))
    assert [stats.distinct_resamples(n) for n in (1, 3, 4, 7)] == [1, 10, 35, 1716]
    assert [math.comb(2 * n - 1, n) for n in (3, 7)] == [10, 1716]
    assert not rs.enough_resamples([6]) and rs.enough_resamples([7]) and rs.enough_resamples([4, 4])


def test_chunked_indices_equal_one_draw(monkeypatch):
    monkeypatch.setattr(rs, "CHUNK_ELEMENTS", 37 * 7)  # 7 rows per chunk
    chunks = list(rs.index_chunks(np.random.default_rng(1), 37, 1000))
    assert len(chunks) == 143 and max(len(c) for c in chunks) == 7
    assert np.array_equal(np.concatenate(chunks), np.random.default_rng(1).integers(0, 37, (1000, 37)))


def test_resample_and_leave_one_out_ranks_equal_rankdata():
    v = np.array([3.0, 1.0, 3.0, 2.0, 5.0, 1.0])
    idx = np.random.default_rng(2).integers(0, 6, size=(50, 6))
    assert np.array_equal(rs.resample_ranks(v, idx), np.array([sps.rankdata(v[i]) for i in idx]))
    loo = rs.loo_ranks(v, np.arange(6))
    for i in range(6):
        assert np.array_equal(np.delete(loo[i], i), sps.rankdata(np.delete(v, i)))


def test_permutation_pvalue_follows_scipys_convention():
    null = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    assert rs.permutation_pvalue(2.0, null, exact=True) == pytest.approx(2 * 1 / 5)
    assert rs.permutation_pvalue(2.0, null, exact=False) == pytest.approx(2 * 2 / 6)
    assert rs.permutation_pvalue(0.0, null, exact=True) == 1.0


def test_permuted_rows_stay_within_their_groups():
    b = np.arange(7.0)
    rows, exact = rs.permuted(np.random.default_rng(0), b, [3, 4], 999)
    m = next(rows)
    assert exact and m.shape == (6 * 24, 7)  # every permutation within the groups
    assert {tuple(sorted(r[:3])) for r in m} == {(0.0, 1.0, 2.0)}
    assert len({tuple(r) for r in m}) == 144
    rows, exact = rs.permuted(np.random.default_rng(0), b, [7], 100)
    assert not exact and all(sorted(r) == list(b) for m in rows for r in m)


def test_median_interval_by_order_statistics():
    v = np.arange(1.0, 21.0)  # m = 20: P(6 <= Binomial(20, 1/2) <= 14) = 0.9586 >= 0.95, (7, 13): 0.885
    med, (lo, hi) = stats.median_interval(v[::-1], 0.95)
    assert med == 10.5 and (lo, hi) == (6.0, 15.0)
    assert sps.binom.cdf(14, 20, 0.5) - sps.binom.cdf(5, 20, 0.5) >= 0.95
    assert sps.binom.cdf(13, 20, 0.5) - sps.binom.cdf(6, 20, 0.5) < 0.95
    assert all(math.isnan(e) for e in stats.median_interval(np.arange(5.0), 0.95)[1])  # too few for 95%


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005, float("nan")]
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): 0.02, max(0.02, 0.03), max(.., 0.06), max(.., 0.04) -> 0.06
    assert stats.holm(p)[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02]) and math.isnan(stats.holm(p)[4])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match=r"holm: p-values must lie in \[0, 1\]"):
        stats.holm([0.1, 1.2])


def test_holm_controls_the_familywise_error():
    rng = np.random.default_rng(4)
    rejections = sum(bool((stats.holm(rng.uniform(size=3)) < 0.05).any()) for _ in range(1000))
    assert rejections <= int(sps.binom.isf(1e-3, 1000, 0.05))


def test_recall_pvalue_is_the_hypergeometric_tail():
    # 10 candidates, 3 true top, keep 4: P(X >= 2) = [C(3,2) C(7,2) + C(3,3) C(7,1)] / C(10,4)
    expected = (math.comb(3, 2) * math.comb(7, 2) + math.comb(3, 3) * math.comb(7, 1)) / math.comb(10, 4)
    assert stats.recall_pvalue(2, 10, 3, 4) == pytest.approx(expected, rel=1e-12)
    assert stats.recall_pvalue(0, 10, 3, 4) == pytest.approx(1.0)


def test_detectable_correlation_has_its_power():
    n = 60
    r = stats.detectable_correlation(n, method="pearson")
    assert r == pytest.approx(math.tanh((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) / math.sqrt(n - 3)))
    assert stats.detectable_correlation(n) > r and stats.detectable_correlation(3) == 1.0
    rng = np.random.default_rng(0)
    xy = rng.multivariate_normal([0, 0], [[1, r], [r, 1]], size=(2000, n))  # (2000, n, 2)
    p = np.array([sps.pearsonr(a[:, 0], a[:, 1]).pvalue for a in xy])
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.035)  # 80% power at the detectable size


def test_wilson_and_fisher_intervals_by_hand():
    lo, hi = stats.wilson_interval(7, 20)
    z, p = 1.959963984540054, 0.35
    centre = (p + z * z / 40) / (1 + z * z / 20)
    half = z * math.sqrt(p * (1 - p) / 20 + z * z / 1600) / (1 + z * z / 20)
    assert (lo, hi) == pytest.approx((centre - half, centre + half))
    assert stats.fisher_interval(0.3, 103, method="pearson") == pytest.approx(
        (math.tanh(math.atanh(0.3) - z / 10), math.tanh(math.atanh(0.3) + z / 10)))

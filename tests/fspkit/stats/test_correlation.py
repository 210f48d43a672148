"""fspkit.stats.correlation against scipy (coefficients, permutation tests, BCa bootstrap), hand
computations, the large-sample formulas, and calibration on null data."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats

X = np.array([0.3, 1.2, 2.2, 2.9, 4.1, 5.5, 5.0, 7.3, 8.8, 9.1, 9.0, 12.0])
Y = np.array([1.0, 0.8, 2.5, 2.1, 3.9, 3.0, 5.2, 4.4, 6.1, 7.7, 6.0, 6.5])
Z = np.array([2.0, 1.0, 1.5, 3.5, 2.5, 4.0, 3.0, 6.5, 5.0, 6.0, 8.0, 7.0])
NULL_SETS = 200
# Upper bound on rejections at 0.05 out of 200 null datasets: exceeded with probability < 1e-3.
MAX_REJECT = int(sps.binom.isf(1e-3, NULL_SETS, 0.05))


def _spearman_partial(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Rank partial correlation by residuals (the definition), for an independent check."""
    ta, tb, tc = (sps.rankdata(v) for v in (a, b, c))
    d = np.column_stack([np.ones(len(tc)), tc])
    ra = ta - d @ np.linalg.lstsq(d, ta, rcond=None)[0]
    rb = tb - d @ np.linalg.lstsq(d, tb, rcond=None)[0]
    return float(ra @ rb / math.sqrt((ra @ ra) * (rb @ rb)))


# ---------------------------------------------------------------------------------- plain


@pytest.mark.parametrize(("method", "ref"), [("spearman", sps.spearmanr), ("pearson", sps.pearsonr),
                                             ("kendall", sps.kendalltau)])
def test_correlate_matches_scipy(method, ref):
    c = stats.correlate(X, Y, method=method, n_boot=0, names=("a", "b"))
    expected = ref(X, Y)
    assert c.coef == pytest.approx(expected.statistic, abs=1e-12)
    assert c.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert (c.n, c.method, c.names, c.control, c.n_boot, c.n_boot_valid, c.sign) == (12, method, ("a", "b"), None,
                                                                                      0, 0, 1)
    assert all(math.isnan(v) for v in c.ci) and c.ci_method == "none"


def test_sign_negates_x_everywhere():
    up = stats.correlate(X, Y, n_boot=300, n_perm=199, rng=1)
    down = stats.correlate(-X, Y, n_boot=300, n_perm=199, rng=1, sign=-1)
    assert down.coef == pytest.approx(up.coef) and down.ci == pytest.approx(up.ci) and down.pvalue == up.pvalue
    assert down.sign == -1 and "Spearman(-x, y)" in stats.corr_text(down)


@pytest.mark.parametrize(("method", "ref"), [("spearman", sps.spearmanr), ("pearson", sps.pearsonr),
                                             ("kendall", sps.kendalltau)])
def test_bootstrap_interval_equals_a_loop_over_the_same_resamples(method, ref):
    x = np.round(X)  # ties: the vectorised ranks must average them like scipy
    idx = np.random.default_rng(7).integers(0, len(x), size=(300, len(x)))
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant resamples (they become NaN)
        loop = np.array([ref(x[i], Y[i]).statistic if np.ptp(x[i]) and np.ptp(Y[i]) else np.nan for i in idx])
    ok = loop[np.isfinite(loop)]
    c = stats.correlate(x, Y, method=method, n_boot=300, rng=7)
    assert c.n_boot_valid == len(ok) and c.ci_method == "bootstrap percentile (300)"
    assert c.ci == pytest.approx(tuple(np.percentile(ok, [2.5, 97.5])), abs=1e-12)


def test_bootstrap_interval_covers_the_true_spearman():
    # Bivariate normal with rho = 0.5: the population Spearman is (6 / pi) * arcsin(rho / 2).
    true = 6 / math.pi * math.asin(0.25)
    rng = np.random.default_rng(2024)
    hits = 0
    for _ in range(200):
        xy = rng.multivariate_normal([0, 0], [[1.0, 0.5], [0.5, 1.0]], size=50)
        lo, hi = stats.correlate(xy[:, 0], xy[:, 1], n_boot=1000, rng=rng).ci
        hits += lo <= true <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_exact_permutation_pvalue_equals_scipy_permutation_test():
    x, y = X[:6], Y[:6]  # 720 permutations: enumerated
    c = stats.correlate(x, y, n_boot=0, n_perm=999)
    ref = sps.permutation_test((x,), lambda a: sps.spearmanr(a, y).statistic, permutation_type="pairings",
                               n_resamples=10_000)
    assert c.pvalue == pytest.approx(ref.pvalue, abs=1e-12) and c.p_method == "exact permutation (720)"
    assert c.min_pvalue == pytest.approx(2 / 720)


def test_monte_carlo_permutation_pvalue_agrees_with_scipy():
    y = Y[[3, 0, 7, 1, 9, 2, 11, 5, 4, 10, 8, 6]]  # p near 0.12
    c = stats.correlate(X, y, n_boot=0, n_perm=5000, rng=3)
    ref = sps.permutation_test((X,), lambda a: sps.spearmanr(a, y).statistic, permutation_type="pairings",
                               n_resamples=5000, rng=np.random.default_rng(4))
    assert c.p_method == "permutation (5000)"
    # two Monte Carlo estimates of the same p: the difference's sd is about 0.009
    assert c.pvalue == pytest.approx(ref.pvalue, abs=0.04)


def test_too_few_points_give_no_interval_and_an_unreachable_level():
    c = stats.correlate([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4], n_boot=1000, n_perm=999)
    assert math.isnan(c.ci[0]) and c.ci_method.startswith("none: n = 4 has only 35 distinct bootstrap resamples")
    assert c.min_pvalue == pytest.approx(2 / 24) and c.min_pvalue > stats.ALPHA
    assert stats.distinct_resamples(7) == 1716 and stats.correlate(X[:7], Y[:7], n_boot=50).ci_method.startswith(
        "bootstrap")


def test_large_samples_use_fisher_z_with_the_bonett_wright_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=3000)
    y = x + 2 * rng.normal(size=3000)
    c = stats.correlate(x, y, n_perm=999, rng=0)
    r = sps.spearmanr(x, y).statistic
    half = 1.959963984540054 * math.sqrt((1 + r * r / 2) / (3000 - 3))
    assert c.ci == pytest.approx((math.tanh(math.atanh(r) - half), math.tanh(math.atanh(r) + half)), rel=1e-9)
    assert (c.ci_method, c.p_method, c.min_pvalue) == ("Fisher z (Bonett-Wright)", "t approximation", 0.0)
    # the bootstrap of the same data agrees with the formula to the Monte Carlo error
    boot = stats.correlate(x, y, n_boot=1000, rng=0, resample_max_n=None)
    assert boot.ci == pytest.approx(c.ci, abs=0.01)


def test_correlate_rng_is_explicit_and_reproducible():
    a = stats.correlate(X, Y, n_boot=200, rng=3)
    b = stats.correlate(X, Y, n_boot=200, rng=np.random.default_rng(3))
    assert a.ci == b.ci
    assert stats.correlate(X, Y, n_boot=200).ci == stats.correlate(X, Y, n_boot=200, rng=0).ci  # None = seed 0
    assert stats.correlate(X, Y, n_boot=200, rng=4).ci != a.ci
    c = stats.correlate(X, Y, n_boot=200, rng=3, level=0.5)
    assert c.ci[0] > a.ci[0] and c.ci[1] < a.ci[1] and c.level == 0.5


@pytest.mark.parametrize(("x", "y", "kwargs", "match"), [
    ([1, 2, 3], [1, 2], {}, r"y has 2 values but x has 3"),
    ([1, 2, float("nan"), 4], [1, 2, 3, 4], {}, r"x holds 1 missing/NaN/inf value\(s\) \(first at index 2\)"),
    ([1, 2], [2, 1], {}, r"x: need at least 3 points, got 2"),
    ([1, 2, 3, 4], [5, 5, 5, 5], {"names": ("density", "pgd_acc")}, r"pgd_acc is constant \(5 for all 4 points\)"),
    ([1, 2, 3], [3, 1, 2], {"method": "tau"}, r"method: expected one of spearman, pearson, kendall, got 'tau'"),
    ([1, 2, 3], [3, 1, 2], {"n_boot": -1}, r"n_boot: expected an int >= 0"),
    ([1, 2, 3], [3, 1, 2], {"n_perm": 1.5}, r"n_perm: expected an int >= 0"),
    ([1, 2, 3], [3, 1, 2], {"level": 1.5}, r"level: expected a fraction in \(0, 1\]"),
    ([1, 2, 3], [3, 1, 2], {"sign": 2}, r"sign: expected \+1"),
    ([1, 2, 3], [3, 1, 2], {"resample_max_n": 2}, r"resample_max_n: expected an int >= 3 or None"),
    ([1, 2, 3], [3, 1, 2], {"method": "kendall", "n_perm": 9}, r"permutation p-values are for spearman and pearson"),
    ([[1, 2], [3, 4], [5, 6]], [1, 2, 3], {}, r"x: expected a 1-D sequence, got an array of shape \(3, 2\)"),
])
def test_correlate_errors(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stats.correlate(x, y, **kwargs)


def test_correlate_type_errors():
    with pytest.raises(TypeError, match=r"rng: expected a numpy.random.Generator, an int seed or None, got float"):
        stats.correlate(X, Y, rng=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"x: expected a sequence of numbers, got list"):
        stats.correlate(["a", "b", "c"], [1, 2, 3])


def test_permutation_test_is_calibrated_on_null_data():
    rng = np.random.default_rng(11)
    rejected = sum(stats.correlate(rng.normal(size=15), rng.normal(size=15), n_boot=0, n_perm=199,
                                   rng=rng).pvalue < 0.05 for _ in range(NULL_SETS))
    assert 2 <= rejected <= MAX_REJECT


# ---------------------------------------------------------------------------------- partial


@pytest.mark.parametrize(("method", "ref"), [("spearman", sps.spearmanr), ("pearson", sps.pearsonr)])
def test_partial_correlation_matches_the_closed_form(method, ref):
    rxy, rxz, ryz = ref(X, Y).statistic, ref(X, Z).statistic, ref(Y, Z).statistic
    expected = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    c = stats.partial_correlation(X, Y, Z, method=method, n_boot=0, names=("fsp", "pgd", "scale"))
    assert c.coef == pytest.approx(expected, abs=1e-12)
    t = expected * math.sqrt((12 - 3) / (1 - expected**2))
    assert c.pvalue == pytest.approx(2 * sps.t.sf(abs(t), 9), rel=1e-9)
    assert (c.names, c.control, c.n) == (("fsp", "pgd"), "scale", 12)


def test_partial_bca_interval_equals_scipy_bootstrap():
    rng = np.random.default_rng(8)
    z = rng.normal(size=20)
    x, y = z + rng.normal(size=20), 0.5 * z + rng.normal(size=20)  # no resample where z explains x exactly
    c = stats.partial_correlation(x, y, z, n_boot=2000, rng=11)
    ref = sps.bootstrap((x, y, z), _spearman_partial, paired=True, vectorized=False, n_resamples=2000,
                        method="BCa", rng=np.random.default_rng(11))
    assert c.n_boot_valid == 2000 and c.ci_method == "BCa bootstrap (2000)"
    assert c.ci == pytest.approx(tuple(ref.confidence_interval), abs=1e-9)


def test_partial_freedman_lane_equals_an_enumeration_by_hand():
    x, y, z = X[:6], Y[:6] ** 2, Z[:6]
    c = stats.partial_correlation(x, y, z, n_boot=0, n_perm=999)
    tx, ty, tz = (sps.rankdata(v) for v in (x, y, z))
    d = np.column_stack([np.ones(6), tz])
    res = lambda v: v - d @ np.linalg.lstsq(d, v, rcond=None)[0]  # noqa: E731
    rx, ry = res(tx), res(ty)
    stat = lambda v: float(rx @ res(v) / math.sqrt((rx @ rx) * (res(v) @ res(v))))  # noqa: E731
    null = np.array([stat(ry[list(p)]) for p in itertools.permutations(range(6))])
    t = stat(ry)
    expected = min(1.0, 2 * min(np.mean(null <= t + 1e-12), np.mean(null >= t - 1e-12)))
    assert c.coef == pytest.approx(t) and c.pvalue == pytest.approx(expected)
    assert c.p_method == "exact Freedman-Lane permutation (720)"


def test_partial_permutation_test_is_calibrated_when_x_depends_on_the_control_only():
    rng = np.random.default_rng(5)
    rejected = 0
    for _ in range(NULL_SETS):
        z = rng.normal(size=20)
        x, y = z + rng.normal(size=20), z + rng.normal(size=20)  # related only through z
        rejected += stats.partial_correlation(x, y, z, n_boot=0, n_perm=199, rng=rng).pvalue < 0.05
    assert 2 <= rejected <= MAX_REJECT


def test_partial_correlation_large_samples_and_errors():
    rng = np.random.default_rng(1)
    z = rng.normal(size=1500)
    c = stats.partial_correlation(z + rng.normal(size=1500), z + rng.normal(size=1500), z, n_perm=99, rng=0)
    assert c.ci_method == "Fisher z (Bonett-Wright)" and c.p_method == "t-test (n - 3 df)"
    assert c.ci == pytest.approx(stats.fisher_interval(c.coef, 1500, controls=1))
    with pytest.raises(ValueError, match=r"x: need at least 4 points, got 3"):
        stats.partial_correlation([1, 2, 3], [3, 1, 2], [1, 3, 2])
    with pytest.raises(ValueError, match=r"method: expected one of spearman, pearson, got 'kendall'"):
        stats.partial_correlation(X, Y, Z, method="kendall")
    with pytest.raises(ValueError, match=r"control has 3 values but x has 12"):
        stats.partial_correlation(X, Y, [1, 2, 3])
    with pytest.raises(ValueError, match=r"fsp or pgd is fully explained by scale"):
        stats.partial_correlation(X, Y, 2 * X + 1, names=("fsp", "pgd", "scale"))


# ---------------------------------------------------------------------------------- differences


def test_compare_correlations_paired_bootstrap_equals_a_loop():
    d = stats.compare_correlations(X, Z, Y, signs=(1, -1), n_boot=300, rng=2)
    idx = np.random.default_rng(2).integers(0, 12, size=(300, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop = np.array([sps.spearmanr(X[i], Y[i]).statistic - sps.spearmanr(-Z[i], Y[i]).statistic for i in idx])
    ok = loop[np.isfinite(loop)]
    assert d.delta == pytest.approx(sps.spearmanr(X, Y).statistic + sps.spearmanr(Z, Y).statistic)
    assert d.ci == pytest.approx(tuple(np.percentile(ok, [2.5, 97.5])), abs=1e-12)


def test_compare_correlations_zou_interval_agrees_with_the_bootstrap_at_large_n():
    rng = np.random.default_rng(3)
    y = rng.normal(size=2500)
    a, b = y + rng.normal(size=2500), y + 1.5 * rng.normal(size=2500)
    zou = stats.compare_correlations(a, b, y, rng=0)
    boot = stats.compare_correlations(a, b, y, rng=0, resample_max_n=None, n_boot=500)
    assert zou.ci_method == "Zou (2007), Fisher z" and zou.delta == pytest.approx(boot.delta)
    assert zou.ci == pytest.approx(boot.ci, abs=0.012)

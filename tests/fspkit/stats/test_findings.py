"""fspkit.stats against scipy / scikit-learn / hand computations, bootstrap coverage, and every documented error."""

from __future__ import annotations

import ast
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict, cross_val_score

from fspkit import stats
from robnet.models.genotype import EDGES, Genotype
from tests._synthetic import make_records

X = np.array([0.3, 1.2, 2.2, 2.9, 4.1, 5.5, 5.0, 7.3, 8.8, 9.1, 9.0, 12.0])
Y = np.array([1.0, 0.8, 2.5, 2.1, 3.9, 3.0, 5.2, 4.4, 6.1, 7.7, 6.0, 6.5])
Z = np.array([2.0, 1.0, 1.5, 3.5, 2.5, 4.0, 3.0, 6.5, 5.0, 6.0, 8.0, 7.0])


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


# ---------------------------------------------------------------------------------- correlate


@pytest.mark.parametrize(("method", "ref"), [("spearman", sps.spearmanr), ("pearson", sps.pearsonr),
                                             ("kendall", sps.kendalltau)])
def test_correlate_matches_scipy(method, ref):
    c = stats.correlate(X, Y, method=method, n_boot=0, names=("a", "b"))
    expected = ref(X, Y)
    assert c.coef == pytest.approx(expected.statistic, abs=1e-12)
    assert c.pvalue == pytest.approx(expected.pvalue, rel=1e-9)
    assert (c.n, c.method, c.names, c.control, c.n_boot, c.n_boot_valid) == (12, method, ("a", "b"), None, 0, 0)
    assert all(math.isnan(v) for v in c.ci)


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
    assert c.n_boot_valid == len(ok)
    assert c.ci == pytest.approx(tuple(np.percentile(ok, [2.5, 97.5])), abs=1e-12)


def test_bootstrap_interval_covers_the_true_spearman():
    # Bivariate normal with rho = 0.5: the population Spearman is (6 / pi) * arcsin(rho / 2).
    true = 6 / math.pi * math.asin(0.25)
    rng = np.random.default_rng(2024)
    cov = [[1.0, 0.5], [0.5, 1.0]]
    hits = 0
    for _ in range(200):
        xy = rng.multivariate_normal([0, 0], cov, size=50)
        lo, hi = stats.correlate(xy[:, 0], xy[:, 1], n_boot=1000, rng=rng).ci
        hits += lo <= true <= hi
    assert 0.88 <= hits / 200 <= 0.99


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
    ([1, 2, None, 4], [1, 2, 3, 4], {}, r"x holds 1 missing"),
    ([1, 2], [2, 1], {}, r"x: need at least 3 points, got 2"),
    ([1, 2, 3, 4], [5, 5, 5, 5], {"names": ("density", "pgd_acc")}, r"pgd_acc is constant \(5 for all 4 points\)"),
    ([1, 2, 3], [3, 1, 2], {"method": "tau"}, r"method: expected one of spearman, pearson, kendall, got 'tau'"),
    ([1, 2, 3], [3, 1, 2], {"n_boot": -1}, r"n_boot: expected an int >= 0"),
    ([1, 2, 3], [3, 1, 2], {"level": 1.5}, r"level: expected a fraction in \(0, 1\]"),
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


# ---------------------------------------------------------------------------------- partial correlation


@pytest.mark.parametrize(("method", "ref"), [("spearman", sps.spearmanr), ("pearson", sps.pearsonr)])
def test_partial_correlation_matches_the_closed_form(method, ref):
    rxy, rxz, ryz = ref(X, Y).statistic, ref(X, Z).statistic, ref(Y, Z).statistic
    expected = (rxy - rxz * ryz) / math.sqrt((1 - rxz**2) * (1 - ryz**2))
    c = stats.partial_correlation(X, Y, Z, method=method, n_boot=0, names=("fsp", "pgd", "scale"))
    assert c.coef == pytest.approx(expected, abs=1e-12)
    t = expected * math.sqrt((12 - 3) / (1 - expected**2))
    assert c.pvalue == pytest.approx(2 * sps.t.sf(abs(t), 9), rel=1e-9)
    assert (c.names, c.control, c.n) == (("fsp", "pgd"), "scale", 12)


def test_partial_bootstrap_equals_residuals_on_each_resample():
    idx = np.random.default_rng(5).integers(0, 12, size=(200, 12))

    def residual_partial(i: np.ndarray) -> float:
        rx, ry, rz = (sps.rankdata(v[i]) for v in (X, Y, Z))
        d = np.column_stack([np.ones(12), rz])
        ex = rx - d @ np.linalg.lstsq(d, rx, rcond=None)[0]
        ey = ry - d @ np.linalg.lstsq(d, ry, rcond=None)[0]
        return float(ex @ ey / math.sqrt((ex @ ex) * (ey @ ey))) if (ex @ ex) * (ey @ ey) > 1e-20 else math.nan

    loop = np.array([residual_partial(i) for i in idx])
    ok = loop[np.isfinite(loop)]
    c = stats.partial_correlation(X, Y, Z, n_boot=200, rng=5)
    assert c.ci == pytest.approx(tuple(np.percentile(ok, [2.5, 97.5])), abs=1e-9)


def test_partial_correlation_errors():
    with pytest.raises(ValueError, match=r"x: need at least 4 points, got 3"):
        stats.partial_correlation([1, 2, 3], [3, 1, 2], [1, 3, 2])
    with pytest.raises(ValueError, match=r"method: expected one of spearman, pearson, got 'kendall'"):
        stats.partial_correlation(X, Y, Z, method="kendall")
    with pytest.raises(ValueError, match=r"control has 3 values but x has 12"):
        stats.partial_correlation(X, Y, [1, 2, 3])
    with pytest.raises(ValueError, match=r"fsp or pgd is fully explained by scale"):
        stats.partial_correlation(X, Y, 2 * X + 1, names=("fsp", "pgd", "scale"))


# ---------------------------------------------------------------------------------- regress


def test_regress_one_predictor_matches_linregress():
    fit = sps.linregress(X, Y)
    r = stats.regress(X, Y, ["x"], y_name="y", rng=0)
    assert r.coef["x"] == pytest.approx(fit.slope, rel=1e-12)
    assert r.intercept == pytest.approx(fit.intercept, rel=1e-12)
    assert r.stderr["x"] == pytest.approx(fit.stderr, rel=1e-10)
    assert r.intercept_stderr == pytest.approx(fit.intercept_stderr, rel=1e-10)
    assert r.pvalue["x"] == pytest.approx(fit.pvalue, rel=1e-8)
    assert r.r2 == pytest.approx(fit.rvalue**2, rel=1e-12)
    t = sps.t.ppf(0.975, 10)
    assert r.ci["x"] == pytest.approx((fit.slope - t * fit.stderr, fit.slope + t * fit.stderr), rel=1e-10)


def test_regress_two_predictors_against_sklearn_and_frisch_waugh_lovell():
    XZ = np.column_stack([X, Z])
    r = stats.regress(XZ, Y, ["x", "z"], rng=0)
    lr = LinearRegression().fit(XZ, Y)
    assert [r.coef["x"], r.coef["z"]] == pytest.approx(lr.coef_.tolist(), rel=1e-10)
    assert r.intercept == pytest.approx(lr.intercept_, rel=1e-10)
    assert r.r2 == pytest.approx(r2_score(Y, lr.predict(XZ)), rel=1e-12)
    # FWL: x's coefficient is the slope of y on x residualised on z; its stderr differs only by the dof.
    d = np.column_stack([np.ones(12), Z])
    ex = X - d @ np.linalg.lstsq(d, X, rcond=None)[0]
    fwl = sps.linregress(ex, Y - d @ np.linalg.lstsq(d, Y, rcond=None)[0])
    assert r.coef["x"] == pytest.approx(fwl.slope, rel=1e-10)
    assert r.stderr["x"] == pytest.approx(fwl.stderr * math.sqrt((12 - 2) / (12 - 3)), rel=1e-10)
    # the cross-validated R^2: pooled out-of-fold predictions of KFold seeded with an int drawn from rng
    seed = int(np.random.default_rng(0).integers(0, 2**31 - 1))
    pred = cross_val_predict(LinearRegression(), XZ, Y, cv=KFold(5, shuffle=True, random_state=seed))
    assert r.cv_r2 == pytest.approx(r2_score(Y, pred), rel=1e-12)
    assert (r.n, r.cv_folds, r.names) == (12, 5, ("x", "z"))


@pytest.mark.parametrize(("X_", "y", "names", "match"), [
    (np.column_stack([X, np.full(12, 3.0)]), Y, ["density", "convs"], r"convs is constant \(3 for all 12 points\)"),
    (np.column_stack([X, 2 * X + 1]), Y, ["density", "double"],
     r"predictor 'double' is a linear combination of the intercept and \['density'\]"),
    (np.column_stack([X, np.where(np.arange(12) == 4, np.nan, Z)]), Y, ["density", "fsp"],
     r"fsp holds 1 missing/NaN/inf value\(s\) \(first at index 4\)"),
    (X[:2, None], Y[:2], ["x"], r"y: need at least 3 points, got 2"),
    (np.column_stack([X, Z]), Y, ["x"], r"X has shape \(12, 2\) but names are \('x',\)"),
    (np.column_stack([X, Z]), Y, ["x", "x"], r"one distinct name per column"),
    (X, Y[:5], ["x"], r"y has 5 values but X has 12"),
])
def test_regress_errors(X_, y, names, match):
    with pytest.raises(ValueError, match=match):
        stats.regress(X_, y, names)


def test_regress_needs_two_more_points_than_predictors():
    with pytest.raises(ValueError, match=r"3 predictor\(s\) and an intercept need at least 5 points, got 4"):
        stats.regress(np.column_stack([X[:4], Z[:4], Y[:4] ** 2]), [1.0, 2.5, 2.0, 4.0], ["a", "b", "c"])


# ---------------------------------------------------------------------------------- Finding #1


def test_bit_names_follow_robnet_genotype_edges():
    names = stats.bit_names(28)
    src_names = ("s0", "s1", "f1", "f2", "f3")
    for i, (src, node) in enumerate(EDGES):
        assert names[2 * i] == f"e{i}:{src_names[src]}->f{node + 1}:id"
        assert names[2 * i + 1] == f"e{i}:{src_names[src]}->f{node + 1}:conv"
    # bit order = Genotype.bits(): identity bit first on each edge
    g = Genotype.shared(["01"] + ["10"] * 13)
    assert [n for n, b in zip(names, g.bits(), strict=True) if b][:2] == ["e0:s0->f1:conv", "e1:s1->f1:id"]
    free = stats.bit_names(56)
    assert (len(free), free[0], free[28], free[-1]) == (56, "c0:e0:s0->f1:id", "c1:e0:s0->f1:id", "c1:e13:f3->f4:conv")
    with pytest.raises(ValueError, match=r"expected 28 bits per cell \(a positive multiple of 28\), got 30"):
        stats.bit_names(30)


def test_finding1_against_an_independent_fit():
    recs = make_records(40, seed=1)
    bits, pgd = stats.list_column(recs, "bits"), stats.column(recs, "pgd_acc")
    f = stats.finding1(bits, pgd, rng=11, tsne=False)
    order = np.argsort(-pgd)
    assert f.k == 12 and f.n == 40  # round(0.3 * 40)
    assert f.top_index.tolist() == order[:12].tolist()
    assert sorted(f.bottom_index.tolist()) == sorted(order[-12:].tolist())
    assert f.top_min_pgd == pytest.approx(pgd[order[11]]) and f.bottom_max_pgd == pytest.approx(pgd[order[-12]])
    xs, labels = bits[f.index], np.r_[np.ones(12), np.zeros(12)]
    assert f.labels.tolist() == labels.tolist()
    ref = LogisticRegression(C=1.0, max_iter=5000).fit(xs, labels)
    assert f.weights == pytest.approx(ref.coef_[0], abs=1e-6)
    assert f.intercept == pytest.approx(ref.intercept_[0], abs=1e-6)
    varies = np.ptp(xs, axis=0) > 0
    assert f.n_positive == int(np.sum(ref.coef_[0][varies] > 1e-9))
    assert f.n_positive + f.n_negative + f.n_constant == 28
    assert f.positive_share == pytest.approx(f.n_positive / (f.n_positive + f.n_negative))
    gen = np.random.default_rng(11)
    cv = StratifiedKFold(5, shuffle=True, random_state=int(gen.integers(0, 2**31 - 1)))
    assert f.cv_accuracy == pytest.approx(cross_val_score(LogisticRegression(max_iter=5000), xs, labels, cv=cv).mean())
    assert f.embedding is None and f.perplexity is None
    assert f.feature_names == stats.bit_names(28)
    assert f.positive_share > 0.5  # planted: every bit raises PGD accuracy (k = 12 is a small sample)


def test_finding1_ties_keep_input_order_and_constant_bits_are_left_out():
    bits = np.zeros((6, 28))
    bits[:3, 0] = 1  # only bit 0 varies; it marks the robust half
    bits[:, 5] = 1  # always on: constant
    pgd = [0.5, 0.5, 0.5, 0.1, 0.1, 0.1]
    f = stats.finding1(bits, pgd, k=3, rng=0, tsne=False, cv=3)
    assert f.top_index.tolist() == [0, 1, 2] and f.bottom_index.tolist() == [5, 4, 3]
    assert (f.n_positive, f.n_negative, f.n_constant, f.positive_share) == (1, 0, 27, 1.0)
    assert f.weights[0] > 0 and f.cv_accuracy == 1.0 and f.cv_folds == 3
    assert np.count_nonzero(f.weights) == 1  # constant bits are reported as 0


def test_finding1_tsne_is_seeded_and_perplexity_clipped():
    recs = make_records(20, seed=2)
    bits, pgd = stats.list_column(recs, "bits"), stats.column(recs, "pgd_acc")
    a = stats.finding1(bits, pgd, rng=1)
    b = stats.finding1(bits, pgd, rng=np.random.default_rng(1))
    assert a.embedding is not None and b.embedding is not None
    assert a.embedding.shape == (12, 2) and a.perplexity == pytest.approx(11 / 3)
    assert np.array_equal(a.embedding, b.embedding)


@pytest.mark.parametrize(("bits", "pgd", "kwargs", "match"), [
    (np.full((6, 28), 2), np.arange(6.0), {}, r"bits: every entry must be 0 or 1"),
    (np.zeros((6, 27)), np.arange(6.0), {}, r"28 bits per cell .* got 27"),
    (np.zeros(28), np.arange(6.0), {}, r"bits: expected an \(n, 28 \* cells\) array of 0/1, got shape \(28,\)"),
    (np.zeros((6, 28)), np.arange(5.0), {}, r"pgd_acc has 5 values but bits has 6"),
    (np.zeros((6, 28)), np.arange(6.0), {"k": 4}, r"k: expected an int in 2..3 .* got 4 for n = 6"),
    (np.zeros((6, 28)), np.arange(6.0), {"k": 1}, r"k: expected an int in 2..3"),
    (np.zeros((6, 28)), np.ones(6), {}, r"pgd_acc is constant"),
    (np.zeros((6, 28)), np.arange(6.0), {"C": 0}, r"C and perplexity must be positive numbers, got C=0"),
    (np.zeros((6, 28)), np.arange(6.0), {"cv": 1}, r"cv must be an int >= 2 \(folds\), got 1"),
])
def test_finding1_errors(bits, pgd, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stats.finding1(bits, pgd, rng=0, tsne=False, **kwargs)


# ---------------------------------------------------------------------------------- density, direct convs


def test_finding2_fit_and_band():
    f = stats.finding2(X, Y, n_boot=100, rng=0, grid=7)
    slope, intercept = np.polyfit(X, Y, 1)
    assert (f.slope, f.intercept) == pytest.approx((slope, intercept), rel=1e-10)
    assert f.x_grid.tolist() == pytest.approx(np.linspace(X.min(), X.max(), 7).tolist())
    # band from the design-matrix form: se(y0) = s * sqrt(x0^T (D^T D)^-1 x0)
    d = np.column_stack([np.ones(12), X])
    resid = Y - d @ np.array([intercept, slope])
    s = math.sqrt(resid @ resid / 10)
    x0 = np.column_stack([np.ones(7), f.x_grid])
    se = s * np.sqrt(np.einsum("ij,jk,ik->i", x0, np.linalg.inv(d.T @ d), x0))
    t = sps.t.ppf(0.975, 10)
    assert f.band_low == pytest.approx(f.y_fit - t * se, rel=1e-10)
    assert f.band_high == pytest.approx(f.y_fit + t * se, rel=1e-10)
    assert f.slope_ci == pytest.approx((slope - t * f.slope_stderr, slope + t * f.slope_stderr), rel=1e-10)
    assert f.spearman.coef == pytest.approx(sps.spearmanr(X, Y).statistic)
    assert f.spearman.names == ("density", "pgd_acc")
    with pytest.raises(ValueError, match=r"grid: expected an int >= 2"):
        stats.finding2(X, Y, grid=1)
    with pytest.raises(ValueError, match=r"density is constant"):
        stats.finding2(np.ones(5), np.arange(5.0))


def test_direct_convs_by_budget_by_hand():
    dc = [0, 1, 1, 2, 0, 2, 1, 3, 3, 0]
    budget = [4, 4, 4, 4, 4, None, None, None, 10, 10]
    pgd = [0.1, 0.2, 0.4, 0.5, 0.2, 0.6, 0.3, 0.9, 0.7, 0.6]
    d = stats.direct_convs_by_budget(dc, budget, pgd, n_boot=50, rng=0)
    assert [g.budget for g in d.groups] == [4, 10, None]
    g4 = d.groups[0]
    assert g4.counts == (0.0, 1.0, 2.0) and g4.n_per_count == (2, 2, 1) and g4.n == 5
    assert g4.mean_pgd == pytest.approx((0.15, 0.3, 0.5)) and g4.std_pgd == pytest.approx((0.05, 0.1, 0.0))
    assert g4.correlation is not None
    assert g4.correlation.coef == pytest.approx(sps.spearmanr([0, 1, 1, 2, 0], [0.1, 0.2, 0.4, 0.5, 0.2]).statistic)
    assert d.groups[1].correlation is None and d.groups[1].note == "only 2 candidate(s)"
    assert d.groups[2].correlation is not None and d.groups[2].n == 3
    one = stats.direct_convs_by_budget([1, 1, 1], [7, 7, 7], [0.1, 0.2, 0.3], n_boot=0)
    assert one.groups[0].note == "one direct-conv count only"
    with pytest.raises(ValueError, match=r"budget: expected whole numbers of sep-convs per cell or None, got 2.5"):
        stats.direct_convs_by_budget([1, 2, 3], [2.5, 3, 3], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"budget has 2 values but direct_convs has 3"):
        stats.direct_convs_by_budget([1, 2, 3], [3, 3], [0.1, 0.2, 0.3])


# ---------------------------------------------------------------------------------- filter quality, proxies


def test_filter_quality_by_hand():
    score = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6, 0.5, 1.0]
    pgd = [0.50, 0.10, 0.45, 0.20, 0.15, 0.30, 0.48, 0.25, 0.35, 0.05]
    q = stats.filter_quality(score, pgd, keep=0.3, top=0.2, n_boot=0)
    # kept (lowest score): ids 0, 2, 4; true top-2 by pgd: ids 0 (0.50), 6 (0.48) -> 1 of 2
    assert (q.n, q.n_keep, q.n_top, q.n_top_kept, q.recall) == (10, 3, 2, 1, 0.5)
    assert q.random_recall == pytest.approx(0.3) and q.compute_saved == pytest.approx(0.7)
    assert q.spearman.coef == pytest.approx(sps.spearmanr(score, pgd).statistic)
    hi = stats.filter_quality(score, pgd, keep=0.3, top=0.2, lower_is_better=False, n_boot=0)
    assert hi.n_top_kept == 0 and hi.recall == 0.0  # kept: ids 9, 1, 3
    tie = stats.filter_quality(score, [0.5, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0.1], keep=0.1, top=0.1, n_boot=0)
    assert (tie.n_top, tie.n_top_kept, tie.recall) == (3, 1, pytest.approx(1 / 3))  # ties at the edge all count
    with pytest.raises(ValueError, match=r"keep: expected a fraction in \(0, 1\], got 0"):
        stats.filter_quality(score, pgd, keep=0)
    with pytest.raises(ValueError, match=r"top: expected a fraction in \(0, 1\], got 1.5"):
        stats.filter_quality(score, pgd, top=1.5)


def test_proxy_table_on_synthetic_records():
    recs = make_records(50, seed=4)
    t = stats.proxy_table(recs, n_boot=100, rng=0)
    assert [r.proxy for r in t.rows] == list(stats.PROXIES)
    assert t.notes == () and t.keep == 0.3 and t.top == 0.1
    row = t.rows[0]
    # the search's filter score: mean of the deepest third of the 5 cells = the last 2
    fsp_mean = np.array([(r["fsp_before_finetune"][3] + r["fsp_before_finetune"][4]) / 2 for r in recs])
    assert fsp_mean == pytest.approx([r["fsp_deep_before_finetune"] for r in recs])
    pgd = np.array([r["pgd_acc"] for r in recs])
    ref = stats.filter_quality(fsp_mean, pgd, n_boot=0)
    assert (row.column, row.lower_is_better, row.quality.recall) == ("fsp_before_finetune", True, ref.recall)
    assert row.quality.spearman.coef == pytest.approx(ref.spearman.coef)
    assert row.seconds_per_candidate == pytest.approx(np.mean([r["seconds_fsp"] for r in recs]))
    by = {r.proxy: r for r in t.rows}
    assert not by["synflow"].lower_is_better and by["pgd_before_finetune"].quality.spearman.coef > 0.9
    assert by["naswot"].quality.spearman.ci[0] < 0 < by["naswot"].quality.spearman.ci[1]  # planted: noise
    assert t.finetune_seconds == pytest.approx(np.mean([r["seconds_finetune"] for r in recs]))


def test_deep_mean():
    v = np.arange(14.0).reshape(2, 7)  # 7 cells: the deepest ceil(7 / 3) = 3
    assert stats.deep_mean(v).tolist() == [5.0, 12.0]
    assert stats.deep_mean([[1.0], [2.0]]).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match=r"deep_mean: expected an \(n candidates, cells\) array, got shape \(3,\)"):
        stats.deep_mean([1.0, 2.0, 3.0])


def test_proxy_table_notes_and_errors():
    recs = make_records(30, seed=5, proxies=False, fsp_keep=0.5)
    t = stats.proxy_table(recs, n_boot=0)
    assert [r.proxy for r in t.rows] == ["fsp", "fsp_rel", "pgd_before_finetune"]
    assert t.rows[0].quality.n == 15
    assert t.notes[0].startswith("15 candidates were filtered out before finetuning")
    assert "grad_norm: column 'proxy_grad_norm' absent, left out" in t.notes
    with pytest.raises(ValueError, match=r"unknown proxy 'zen'; expected some of fsp, fsp_rel"):
        stats.proxy_table(recs, ["zen"])
    with pytest.raises(ValueError, match=r"column 'pgd_acc' is absent from all 2 records"):
        stats.proxy_table([{"id": 0}, {"id": 1}])


# ---------------------------------------------------------------------------------- per cell


def test_per_cell_records_equal_arrays_and_direct_calls():
    recs = make_records(30, seed=6, cells=4)
    a = stats.per_cell(recs, n_boot=50, rng=2)
    fsp, rel, scale = (stats.list_column(recs, c) for c in ("fsp", "fsp_rel", "fsp_scale"))
    pgd, clean = stats.column(recs, "pgd_acc"), stats.column(recs, "clean_acc")
    b = stats.per_cell(fsp, pgd, clean_acc=clean, fsp_rel=rel, fsp_scale=scale, n_boot=50, rng=2)
    assert (a.stage, b.stage, a.n, a.dropped, len(a.cells)) == ("after", "arrays", 30, 0, 4)
    for ca, cb in zip(a.cells, b.cells, strict=True):
        assert ca.fsp_pgd.coef == cb.fsp_pgd.coef and ca.partial.ci == cb.partial.ci
    c2 = a.cells[2]
    assert c2.fsp_pgd.coef == pytest.approx(sps.spearmanr(fsp[:, 2], pgd).statistic)
    assert c2.rel_gap.coef == pytest.approx(sps.spearmanr(rel[:, 2], clean - pgd).statistic)
    assert c2.partial.coef == pytest.approx(
        stats.partial_correlation(fsp[:, 2], pgd, scale[:, 2], n_boot=0).coef)
    assert c2.fsp_pgd.names == ("fsp[cell 2]", "pgd_acc") and c2.partial.control == "fsp_scale[cell 2]"
    assert a.cells[3].rel_pgd.ci[1] < 0  # planted: the deepest cell's relative distance falls with robustness
    only = stats.per_cell(fsp, pgd, n_boot=0)
    assert only.cells[0].fsp_gap is None and only.cells[0].rel_pgd is None and only.cells[0].partial is None


def test_per_cell_before_finetuning_keeps_filtered_candidates():
    recs = make_records(20, seed=7, fsp_keep=0.5)
    after, before = stats.per_cell(recs, n_boot=0), stats.per_cell(recs, stage="before", n_boot=0)
    assert (after.n, after.dropped, before.n, before.dropped) == (10, 10, 20, 0)
    assert before.cells[0].fsp_pgd.names == ("fsp_before_finetune[cell 0]", "pgd_acc_before_finetune")


def test_per_cell_errors():
    fsp = np.arange(20.0).reshape(5, 4)
    fsp[:, 2] = 1.0
    with pytest.raises(ValueError, match=r"fsp\[cell 2\] is constant"):
        stats.per_cell(fsp, [0.1, 0.2, 0.3, 0.4, 0.5], n_boot=0)
    with pytest.raises(ValueError, match=r"fsp_rel: expected an \(n candidates, cells\) array \(5, 4\), got shape"):
        stats.per_cell(fsp, [0.1, 0.2, 0.3, 0.4, 0.5], fsp_rel=np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"with an array of FSP distances, pgd_acc is required"):
        stats.per_cell(fsp)
    with pytest.raises(ValueError, match=r"pgd_acc has 3 values but fsp has 5"):
        stats.per_cell(fsp, [0.1, 0.2, 0.3])
    recs = make_records(8, seed=8)
    with pytest.raises(TypeError, match=r"pass either records .* or arrays, not both"):
        stats.per_cell(recs, [0.1] * 8)
    with pytest.raises(ValueError, match=r"stage: expected one of after, before, got 'during'"):
        stats.per_cell(recs, stage="during")
    with pytest.raises(ValueError, match=r"column 'fsp' is absent from all 8 records"):
        stats.per_cell(make_records(8, seed=8, fsp=False))


# ---------------------------------------------------------------------------------- record columns


def test_columns():
    recs = [{"a": 1, "l": [1, 2]}, {"a": None, "l": None}, {"l": [3, 4]}]
    assert np.array_equal(stats.column(recs, "a"), [1.0, np.nan, np.nan], equal_nan=True)
    assert np.array_equal(stats.list_column(recs, "l"), [[1, 2], [np.nan, np.nan], [3, 4]], equal_nan=True)
    assert stats.has_column(recs, "a") and not stats.has_column(recs, "b")
    with pytest.raises(ValueError, match=r"column 'l': lists of different lengths \[2, 3\]"):
        stats.list_column([{"l": [1, 2]}, {"l": [1, 2, 3]}], "l")
    with pytest.raises(TypeError, match=r"column 'a': expected numbers"):
        stats.column([{"a": "x"}], "a")

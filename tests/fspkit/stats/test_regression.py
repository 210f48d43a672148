"""fspkit.stats.regress against scipy, scikit-learn and the Frisch-Waugh-Lovell theorem."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.linear_model import LinearRegression
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold, cross_val_predict

from fspkit import stats

X = np.array([0.3, 1.2, 2.2, 2.9, 4.1, 5.5, 5.0, 7.3, 8.8, 9.1, 9.0, 12.0])
Y = np.array([1.0, 0.8, 2.5, 2.1, 3.9, 3.0, 5.2, 4.4, 6.1, 7.7, 6.0, 6.5])
Z = np.array([2.0, 1.0, 1.5, 3.5, 2.5, 4.0, 3.0, 6.5, 5.0, 6.0, 8.0, 7.0])


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

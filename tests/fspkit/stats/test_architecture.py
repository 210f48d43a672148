"""fspkit.stats.architecture: Fig. 5's fit and band, Fig. 6's groups, and the record columns."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats

X = np.array([0.3, 1.2, 2.2, 2.9, 4.1, 5.5, 5.0, 7.3, 8.8, 9.1, 9.0, 12.0])
Y = np.array([1.0, 0.8, 2.5, 2.1, 3.9, 3.0, 5.2, 4.4, 6.1, 7.7, 6.0, 6.5])


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
    dc = [0, 1, 1, 2, 0, 2, 1, 3, 3, 0, 1, 1, 1]
    budget = [4, 4, 4, 4, 4, None, None, None, 10, 10, 4, 4, 4]
    pgd = [0.1, 0.2, 0.4, 0.5, 0.2, 0.6, 0.3, 0.9, 0.7, 0.6, 0.3, 0.25, 0.35]
    d = stats.direct_convs_by_budget(dc, budget, pgd, n_boot=50, rng=0)
    assert [g.budget for g in d.groups] == [4, 10, None]
    assert [g.label for g in d.groups] == ["budget 4", "budget 10", "unconstrained"]
    g4 = d.groups[0]
    assert g4.counts == (0.0, 1.0, 2.0) and g4.n_per_count == (2, 5, 1) and g4.n == 8
    assert g4.mean_pgd == pytest.approx((0.15, 0.3, 0.5))
    ones = np.array([0.2, 0.4, 0.3, 0.25, 0.35])
    assert (g4.ci_low[1], g4.ci_high[1]) == pytest.approx(sps.t.interval(0.95, 4, ones.mean(), sps.sem(ones)))
    assert math.isnan(g4.ci_low[0]) and math.isnan(g4.ci_high[2])  # fewer than 3 candidates: no interval
    assert g4.correlation is not None
    assert g4.correlation.coef == pytest.approx(sps.spearmanr(np.array(dc)[[0, 1, 2, 3, 4, 10, 11, 12]],
                                                              np.array(pgd)[[0, 1, 2, 3, 4, 10, 11, 12]]).statistic)
    assert d.groups[1].correlation is None and d.groups[1].note == "only 2 candidate(s)"
    assert d.groups[2].correlation is not None and d.groups[2].n == 3
    one = stats.direct_convs_by_budget([1, 1, 1], [7, 7, 7], [0.1, 0.2, 0.3], n_boot=0)
    assert one.groups[0].note == "one direct-conv count only"
    bins = stats.direct_convs_by_budget([1, 2, 3], [0, 0, 1], [0.1, 0.2, 0.3], labels={0: "0-4 convs"}, n_boot=0)
    assert [g.label for g in bins.groups] == ["0-4 convs", "budget 1"]
    with pytest.raises(ValueError, match=r"budget: expected whole numbers of sep-convs per cell or None, got 2.5"):
        stats.direct_convs_by_budget([1, 2, 3], [2.5, 3, 3], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"budget has 2 values but direct_convs has 3"):
        stats.direct_convs_by_budget([1, 2, 3], [3, 3], [0.1, 0.2, 0.3])


def test_conv_bins_and_direct_conv_counts():
    assert stats.conv_bins([0, 4, 4.5, 9, 9.2, 14]).tolist() == [0, 0, 1, 1, 2, 2]
    assert [label for _, _, label in stats.CONV_BINS] == ["0-4 convs", "5-9 convs", "10-14 convs"]
    assert stats.direct_conv_counts([1.0, 2.0]).tolist() == [1.0, 2.0]
    assert stats.direct_conv_counts([1.2, 1.3, 2.8]).tolist() == [1.0, 1.5, 3.0]


def test_columns():
    recs = [{"a": 1, "l": [1, 2]}, {"a": None, "l": None}, {"l": [3, 4]}]
    assert np.array_equal(stats.column(recs, "a"), [1.0, np.nan, np.nan], equal_nan=True)
    assert np.array_equal(stats.list_column(recs, "l"), [[1, 2], [np.nan, np.nan], [3, 4]], equal_nan=True)
    assert stats.has_column(recs, "a") and not stats.has_column(recs, "b")
    with pytest.raises(ValueError, match=r"column 'l': lists of different lengths \[2, 3\]"):
        stats.list_column([{"l": [1, 2]}, {"l": [1, 2, 3]}], "l")
    with pytest.raises(TypeError, match=r"column 'a': expected numbers"):
        stats.column([{"a": "x"}], "a")

"""fspkit.stats.noise: test-retest reliability, noise ceiling, detectable effect and top-set stability."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from tests._synthetic import make_records


def test_reliability_ceiling_and_detectable_effect():
    recs = make_records(80, seed=3, retest=0.5)
    nz = stats.measurement_noise(recs, n_boot=300, rng=0)
    half = [r for r in recs if r["pgd_acc_half"] is not None]
    r = sps.spearmanr([x["pgd_acc_half"] for x in half], [x["pgd_acc_retest"] for x in half]).statistic
    assert (nz.n, nz.n_retest, nz.n_eval) == (80, 40, 1000)
    assert nz.retest.coef == pytest.approx(r) and nz.reliability == pytest.approx(2 * r / (1 + r))
    assert nz.ceiling == pytest.approx(math.sqrt(2 * r / (1 + r)))
    lo, hi = nz.retest.ci
    assert nz.ceiling_ci == pytest.approx((math.sqrt(2 * lo / (1 + lo)), math.sqrt(2 * hi / (1 + hi))))
    assert nz.detectable == pytest.approx(stats.detectable_correlation(80))
    assert nz.detectable_true == pytest.approx(nz.detectable / nz.ceiling)
    assert nz.powered(0.2) and not nz.powered(0.9)


def test_top_set_stability_is_a_binomial_redraw():
    recs = make_records(50, seed=4)
    nz = stats.measurement_noise(recs, rng=5)
    acc = np.array([r["pgd_acc"] for r in recs])
    gen = np.random.default_rng(5)
    for _ in range(1):  # the retest correlation's bootstrap draws first
        gen.integers(0, 25, size=(1000, 25))
    counts = np.round(acc * 1000)
    draws = gen.binomial(1000, counts / 1000, size=(200, 50)) / 1000
    top = acc >= np.sort(acc)[::-1][4]
    overlaps = [(d >= np.sort(d)[::-1][4])[top].sum() / top.sum() for d in draws]
    assert (nz.n_top, nz.draws) == (5, 200) and nz.overlap == pytest.approx(np.mean(overlaps))
    assert nz.overlap_ci == pytest.approx(tuple(np.percentile(overlaps, [2.5, 97.5])))


def test_missing_columns_are_noted():
    recs = make_records(20, seed=1, retest=0.0)
    for r in recs:
        del r["n_eval"]
    nz = stats.measurement_noise(recs)
    assert nz.retest is None and nz.ceiling is None and nz.overlap is None and nz.powered(0.29)
    assert nz.notes[0].startswith("test-retest: no candidate was measured twice")
    assert nz.notes[1] == "top-set stability: n_eval (validation images per accuracy) not recorded"
    with pytest.raises(ValueError, match="no record has a final PGD accuracy"):
        stats.measurement_noise([{"pgd_acc": None}])

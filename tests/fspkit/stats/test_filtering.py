"""fspkit.stats.filtering and .proxies: recall by hand, its exact p-value and bootstrap interval, the
calibration of a pure-noise score, the proxy table with its free baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from tests._synthetic import make_records

SCORE = [0.1, 0.9, 0.2, 0.8, 0.3, 0.7, 0.4, 0.6, 0.5, 1.0]
PGD = [0.50, 0.10, 0.45, 0.20, 0.15, 0.30, 0.48, 0.25, 0.35, 0.05]


def test_filter_quality_by_hand():
    q = stats.filter_quality(SCORE, PGD, keep=0.3, top=0.2, n_boot=0)
    # kept (lowest score): ids 0, 2, 4; true top-2 by pgd: ids 0 (0.50), 6 (0.48) -> 1 of 2
    assert (q.n, q.n_keep, q.n_top, q.n_top_kept, q.recall) == (10, 3, 2, 1, 0.5)
    assert q.random_recall == pytest.approx(0.3) and q.compute_saved == pytest.approx(0.7)
    # a random 3 of 10 keeps at least 1 of the 2: 1 - C(8, 3) / C(10, 3)
    assert q.recall_pvalue == pytest.approx(1 - math.comb(8, 3) / math.comb(10, 3))
    assert q.spearman.coef == pytest.approx(-sps.spearmanr(SCORE, PGD).statistic) and q.spearman.sign == -1
    hi = stats.filter_quality(SCORE, PGD, keep=0.3, top=0.2, lower_is_better=False, n_boot=0)
    assert hi.n_top_kept == 0 and hi.recall == 0.0 and hi.recall_pvalue == 1.0  # kept: ids 9, 1, 3
    tie = stats.filter_quality(SCORE, [0.5, 0.5, 0.5, 0, 0, 0, 0, 0, 0, 0.1], keep=0.1, top=0.1, n_boot=0)
    assert (tie.n_top, tie.n_top_kept, tie.recall) == (3, 1, pytest.approx(1 / 3))  # ties at the edge all count
    assert stats.keep_mask(SCORE, 0.3).tolist() == [True, False, True, False, True] + [False] * 5
    with pytest.raises(ValueError, match=r"keep: expected a fraction in \(0, 1\], got 0"):
        stats.filter_quality(SCORE, PGD, keep=0)
    with pytest.raises(ValueError, match=r"top: expected a fraction in \(0, 1\], got 1.5"):
        stats.filter_quality(SCORE, PGD, top=1.5)


def test_recall_interval_equals_a_loop_over_the_same_resamples():
    rng = np.random.default_rng(0)
    score, pgd = rng.normal(size=30), rng.normal(size=30)
    q = stats.filter_quality(score, pgd, keep=0.3, top=0.2, n_boot=300, rng=4)
    gen = np.random.default_rng(4)
    for _ in range(1):  # the Spearman bootstrap draws first
        gen.integers(0, 30, size=(300, 30))
    idx = gen.integers(0, 30, size=(300, 30))
    recalls = []
    for i in idx:
        s, y = score[i], pgd[i]
        kept = np.argsort(s, kind="stable")[:9]
        is_top = y >= np.sort(y)[::-1][5]
        recalls.append(is_top[kept].sum() / is_top.sum())
    assert q.recall_ci == pytest.approx(tuple(np.percentile(recalls, [2.5, 97.5])))
    big = stats.filter_quality(score, pgd, keep=0.3, top=0.2, n_boot=300, resample_max_n=10)
    assert big.recall_ci == pytest.approx(stats.wilson_interval(big.n_top_kept, big.n_top))


def test_a_pure_noise_score_rarely_beats_a_random_filter():
    rng = np.random.default_rng(7)
    seeds = 200
    hits = sum(stats.filter_quality(rng.normal(size=60), rng.normal(size=60), n_boot=0).recall_pvalue < 0.05
               for _ in range(seeds))
    assert hits <= int(sps.binom.isf(1e-3, seeds, 0.05))  # exact test: at most about 5%


def test_proxy_table_rows_baselines_and_the_parameter_count():
    recs = make_records(50, seed=4)
    t = stats.proxy_table(recs, n_boot=200, n_perm=99, rng=0)
    assert [r.proxy for r in t.rows] == [*stats.PROXIES, *stats.BASELINES]
    by = {r.proxy: r for r in t.rows}
    fsp = by["fsp"]
    deep = np.array([np.mean(r["fsp_before_finetune"][3:]) for r in recs])  # 5 cells: deep cells 3, 4
    assert deep == pytest.approx([r["fsp_deep_before_finetune"] for r in recs])
    pgd = stats.column(recs, "pgd_acc")
    ref = stats.filter_quality(deep, pgd, n_boot=0)
    assert (fsp.column, fsp.lower_is_better, fsp.recall, fsp.recall_pvalue) == (
        "fsp_before_finetune", True, ref.recall, ref.recall_pvalue)
    assert fsp.spearman.coef == pytest.approx(-sps.spearmanr(deep, pgd).statistic) and fsp.spearman.coef > 0
    params = stats.column(recs, "params")
    assert by["params"].baseline and by["params"].seconds_per_candidate == 0.0 and by["params"].vs_params is None
    assert fsp.vs_params.delta == pytest.approx(fsp.spearman.coef - sps.spearmanr(params, pgd).statistic)
    assert fsp.beats_params == (fsp.vs_params.ci[0] > 0)
    assert fsp.partial_params.coef == pytest.approx(stats.partial_correlation(-deep, pgd, params, n_boot=0).coef)
    assert by["naswot"].spearman.ci[0] < 0 < by["naswot"].spearman.ci[1] and not by["naswot"].beats_params
    assert by["pgd_before_finetune"].beats_params
    assert fsp.seconds_per_candidate == pytest.approx(np.mean([r["seconds_fsp"] for r in recs]))
    assert t.finetune_seconds == pytest.approx(np.mean([r["seconds_finetune"] for r in recs]))


def test_proxy_table_notes_and_errors():
    recs = make_records(30, seed=5, proxies=False, fsp_keep=0.5)
    t = stats.proxy_table(recs, n_boot=0)
    assert [r.proxy for r in t.rows] == ["fsp", "fsp_rel", "pgd_before_finetune", "params", "flops", "convs",
                                         "density"]
    assert t.rows[0].n == 15 and t.notes[0].startswith("15 candidates were filtered out before finetuning")
    assert "grad_norm: column 'proxy_grad_norm' absent, left out" in t.notes
    assert any(n.startswith("flops: no partial correlation given params") for n in t.notes)  # flops = 64 * params
    with pytest.raises(ValueError, match=r"unknown proxy 'zen'; expected some of fsp, fsp_rel"):
        stats.proxy_table(recs, ["zen"])
    with pytest.raises(ValueError, match=r"column 'pgd_acc' is absent from all 2 records"):
        stats.proxy_table([{"id": 0}, {"id": 1}])

"""fspkit.stats.depth: Finding #3 per cell, the one deep-cell rule, Holm over the deep cells, the cell
types, Fig. 7's profile and the pooling check, against direct computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from robnet.models.genotype import deep_cells, reduction_cells
from tests._synthetic import make_records


def test_per_cell_records_equal_arrays_and_direct_calls():
    recs = make_records(30, seed=6, cells=6)
    a = stats.per_cell(recs, n_boot=50, n_perm=99, rng=2)
    fsp, rel, scale = (stats.list_column(recs, c) for c in ("fsp", "fsp_rel", "fsp_scale"))
    pgd = stats.column(recs, "pgd_acc")
    b = stats.per_cell(fsp, pgd, fsp_rel=rel, fsp_scale=scale, n_boot=50, n_perm=99, rng=2)
    assert (a.stage, b.stage, a.n, a.dropped, len(a.cells)) == ("after", "arrays", 30, 0, 6)
    for ca, cb in zip(a.cells, b.cells, strict=True):
        assert ca.fsp_pgd.coef == cb.fsp_pgd.coef and ca.partial.ci == cb.partial.ci
    c2 = a.cells[2]
    assert c2.fsp_pgd.coef == pytest.approx(-sps.spearmanr(fsp[:, 2], pgd).statistic)  # negated: + = paper's way
    assert c2.partial.coef == pytest.approx(-stats.partial_correlation(fsp[:, 2], pgd, scale[:, 2], n_boot=0).coef)
    assert c2.fsp_pgd.names == ("fsp[cell 2]", "pgd_acc") and c2.fsp_pgd.sign == -1
    assert c2.partial.control == "fsp_scale[cell 2]"
    assert a.cells[5].rel_pgd.ci[0] > 0  # planted: the deepest cell's relative distance falls with robustness


def test_deep_cells_kinds_and_holm():
    recs = make_records(40, seed=3, cells=6)
    pc = stats.per_cell(recs, n_boot=0, n_perm=199, rng=0)
    assert pc.deep_cells == tuple(deep_cells(6)) == (4, 5) and pc.reduction_cells == reduction_cells(6) == (2, 4)
    assert [c.kind for c in pc.cells] == ["normal", "normal", "reduction", "normal", "reduction", "normal"]
    assert [c.deep for c in pc.cells] == [False] * 4 + [True] * 2
    holm = stats.holm([pc.cells[4].fsp_pgd.pvalue, pc.cells[5].fsp_pgd.pvalue])
    assert [pc.cells[4].holm_pvalue, pc.cells[5].holm_pvalue] == pytest.approx(holm.tolist())
    assert pc.cells[0].holm_pvalue is None
    fsp, pgd = stats.list_column(recs, "fsp"), stats.column(recs, "pgd_acc")
    assert pc.deep.coef == pytest.approx(-sps.spearmanr(fsp[:, 4:].mean(axis=1), pgd).statistic)
    assert stats.deep_mean(fsp) == pytest.approx(fsp[:, [4, 5]].mean(axis=1))
    types = {(t.scope, t.kind): t for t in pc.types}
    assert types[("deep", "reduction")].cells == (4,) and types[("all", "normal")].cells == (0, 1, 3, 5)
    assert types[("all", "reduction")].correlation.coef == pytest.approx(
        -sps.spearmanr(np.log(fsp[:, [2, 4]]).mean(axis=1), pgd).statistic)


def test_profile_is_the_median_with_order_statistic_intervals():
    recs = make_records(40, seed=4, cells=3)
    pc = stats.per_cell(recs, n_boot=0)
    raw, rel = pc.profiles
    fsp, pgd = stats.list_column(recs, "fsp"), stats.column(recs, "pgd_acc")
    order = np.argsort(-pgd, kind="stable")
    top = fsp[order[:12]]
    assert raw.k == 12 and raw.column == "fsp" and rel.column == "fsp_rel"
    assert raw.robust_median == pytest.approx(np.median(top, axis=0).tolist())
    _, (lo, hi) = stats.median_interval(top[:, 1], 0.95)
    assert (raw.robust_low[1], raw.robust_high[1]) == (lo, hi)
    assert raw.fragile_median == pytest.approx(np.median(fsp[order[-12:]], axis=0).tolist())


def test_pooling_check_with_strided_distances():
    recs = make_records(40, seed=5, cells=6)
    rng = np.random.default_rng(0)
    for r in recs:  # strided subsampling: reduction cell 4 noisier, the others the same
        r["fsp_strided"] = [v * (float(np.exp(rng.normal(0, 1.0))) if c == 4 else 1.0) for c, v in enumerate(r["fsp"])]
    pc = stats.per_cell(recs, n_boot=200, rng=1)
    p = pc.pooling
    assert p is not None and p.cells == (4, 5) and pc.cells[3].strided.coef == pytest.approx(pc.cells[3].fsp_pgd.coef)
    assert p.pooled.coef == pytest.approx(pc.deep.coef)
    strided = stats.list_column(recs, "fsp_strided")[:, [4, 5]].mean(axis=1)
    assert p.strided.coef == pytest.approx(-sps.spearmanr(strided, stats.column(recs, "pgd_acc")).statistic)
    assert p.difference.delta == pytest.approx(p.strided.coef - p.pooled.coef)
    assert p.difference.ci[0] <= p.difference.delta <= p.difference.ci[1]
    assert stats.per_cell(make_records(20, seed=5), n_boot=0).pooling is None


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
    with pytest.raises(ValueError, match=r"deep_mean: expected an \(n candidates, cells\) array, got shape \(3,\)"):
        stats.deep_mean([1.0, 2.0, 3.0])

"""The claims' verdicts: capacity-controlled, from the stated test, "too few candidates" and
"underpowered" where they apply, Holm over the deep cells."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from fspkit.stats.claims import decide, min_n_for_level
from tests._synthetic import make_capacity_records, make_records

FAST = {"n_boot": 0, "n_perm": 199, "n_perm_fit": 9, "tsne": False}


def test_capacity_alone_never_makes_density_agree():
    seeds = 30
    reports = [stats.analyze(make_capacity_records(90, seed=s), rng=s, **FAST) for s in range(seeds)]
    claims = [r.claim("f1_density") for r in reports]
    assert all(c.controls == ("convs",) and c.evidence[0].role == "decides" for c in claims)
    # the marginal correlation is fooled every time ...
    assert all(c.evidence[1].role == "marginal" and c.evidence[1].pvalue < 0.05 for c in claims)
    # ... the within-capacity test agrees no more often than its level allows (one side of 0.05)
    agrees = sum(c.verdict == "agrees" for c in claims)
    assert agrees <= int(sps.binom.isf(1e-3, seeds, 0.025))
    # and the rank partial correlation given params is biased upward (why it is only secondary)
    partial = [next(e for e in c.evidence if e.role == "secondary") for c in claims]
    assert all(e.controls == ("params",) and "secondary" in e.note for e in partial)
    assert np.mean([e.statistic for e in partial]) > 0.1


def test_a_within_capacity_density_effect_agrees():
    reports = [stats.analyze(make_capacity_records(90, seed=s, density_effect=0.05), rng=s, **FAST)
               for s in range(10)]
    assert sum(r.claim("f1_density").verdict == "agrees" for r in reports) >= 9
    assert all(r.claim("f1_density").pvalue is not None for r in reports)


def test_four_candidates_are_too_few_for_any_verdict():
    rep = stats.analyze(make_records(4, seed=0, budgets=(4, 7, 10)), rng=0)
    for c in rep.claims:
        assert c.verdict == "inconclusive" and c.reason.startswith("too few candidates"), (c.id, c.reason)
    assert rep.claim("f1_density").reason == "too few candidates: n = 4, need >= 5 with the same budget"
    assert "[agrees]" not in rep.tables() and "[disagrees]" not in rep.tables()
    density = rep.finding2.spearman
    assert density.min_pvalue == pytest.approx(2 / 24) and all(np.isnan(density.ci))  # no lattice "interval"
    # a plain test of 4 points cannot reach 0.05 either
    few = stats.analyze(make_records(4, seed=1, fsp=True), rng=0)
    assert few.claim("f3_fsp_deep").reason == "too few candidates: n = 4, need >= 5 (Holm over 2 deep cells)"


def test_decide_and_the_smallest_n():
    assert min_n_for_level() == 5 and min_n_for_level(tests=7) == 6
    assert decide(0.5, 0.01, 0.002, 0.3, too_few="few") == ("agrees", "")
    assert decide(-0.5, 0.01, 0.002, 0.3, too_few="few") == ("disagrees", "")
    assert decide(0.1, 0.4, 0.002, 0.3, too_few="few") == ("inconclusive", "underpowered")
    assert decide(0.5, 0.06, 0.002, 0.3, too_few="few") == ("inconclusive", "")
    assert decide(1.0, 0.08, 0.083, 0.9, too_few="few") == ("inconclusive", "few")
    assert decide(0.3, 0.2, 0.01, 0.2, too_few="few", powered=False, effect_free=True) == (
        "inconclusive", "underpowered")


def test_fsp_verdict_uses_holm_over_the_deep_cells():
    recs = make_records(60, seed=2, cells=6)
    rep = stats.analyze(recs, rng=0, **FAST)
    c = rep.claim("f3_fsp_deep")
    deep = [rep.per_cell.cells[i] for i in (4, 5)]
    assert c.verdict == "agrees" and c.controls == ()
    assert c.pvalue == min(d.holm_pvalue for d in deep)
    decides = [e for e in c.evidence if e.role == "decides"]
    assert [e.pvalue for e in decides] == [d.holm_pvalue for d in deep]
    assert all("Holm over 2 deep cells" in e.p_method for e in decides)
    for r in recs:  # the paper's direction reversed in the deep cells
        r["fsp"] = [v if i < 4 else 1 / v for i, v in enumerate(r["fsp"])]
    assert stats.analyze(recs, rng=0, **FAST).claim("f3_fsp_deep").verdict == "disagrees"


def test_direct_edges_are_tested_within_small_budgets():
    rep = stats.analyze(make_records(90, seed=4, budgets=(4, 7, 10)), rng=0, **FAST)
    c = rep.claim("f2_direct_edges")
    assert c.verdict == "agrees" and c.n == 60 and c.controls == ("convs",)  # budgets 4 and 7
    labels = [e.label for e in c.evidence]
    assert labels[1].startswith("Spearman over the 60 candidates with budgets <= 7")
    assert "Spearman within budget 10" in labels


def test_classifier_claim_reads_the_identity_bits_within_strata():
    rep = stats.analyze(make_records(90, seed=4, budgets=(4, 7, 10)), rng=0, n_boot=0, n_perm=99, n_perm_fit=99,
                        tsne=False)
    c = rep.claim("f1_classifier")
    f = rep.finding1_controlled
    share = f.share("identity")
    assert c.pvalue == share.pvalue and c.effect == pytest.approx(share.share - share.null_median)
    assert c.verdict == "agrees" and c.evidence[0].kind == "share"
    assert {e.role for e in c.evidence} == {"decides", "secondary", "marginal"}

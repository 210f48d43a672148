"""fspkit.stats.analyze: the whole study on synthetic records: its JSON (claims, noise, selection, caps),
its text, the skipped parts and the large-sample path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from fspkit.stats import classifier
from tests._synthetic import make_records

FAST = {"n_boot": 200, "n_perm": 199, "n_perm_fit": 19}
SELECTION = {"id": 3, "genotype": "01 " * 13 + "11", "chosen_by": "validation",
             "validation": {"pgd_acc": 0.52, "clean_acc": 0.8, "n": 600, "pgd_acc_ci95": [0.48, 0.56]},
             "test": {"pgd_acc": 0.47, "clean_acc": 0.78, "n": 1000, "pgd_acc_ci95": [0.44, 0.50]}}


@pytest.fixture(scope="module")
def report():
    return stats.analyze(make_records(90, seed=4, budgets=(4, 7, 10), cells=6), rng=0, selection=SELECTION,
                         **{**FAST, "n_perm_fit": 99})


def test_every_claim_in_the_json_has_its_id_verdict_pvalue_and_controls(report):
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    claims = {c["id"]: c for c in data["claims"]}
    assert list(claims) == ["f1_density", "f1_classifier", "f2_direct_edges", "f3_fsp_deep"]
    for c in claims.values():
        assert c["verdict"] in ("agrees", "disagrees", "inconclusive") and isinstance(c["reason"], str)
        assert isinstance(c["pvalue"], float) and isinstance(c["controls"], list) and c["evidence"]
    assert claims["f1_density"]["controls"] == ["convs"] and claims["f3_fsp_deep"]["controls"] == []
    assert all(c["verdict"] == "agrees" for c in claims.values())  # the planted effects
    decides = claims["f1_density"]["evidence"][0]
    assert decides["role"] == "decides" and decides["controls"] == ["convs"]
    assert decides["statistic"] == pytest.approx(claims["f1_density"]["effect"])


def test_the_json_records_every_setting_and_cap(report):
    data = report.to_dict()
    assert data["settings"] == {
        "rng": 0, "k": None, "n_boot": 200, "n_perm": 199, "n_perm_fit": 99, "keep": 0.3, "top": 0.1, "alpha": 0.05,
        "level": 0.95, "resample_max_n": stats.RESAMPLE_MAX_N, "reference_effect": 0.3, "tsne": True,
        "tsne_min_points": classifier.TSNE_MIN_POINTS, "tsne_max_points": classifier.TSNE_MAX_POINTS,
        "classifier_max_points": classifier.CLASSIFIER_MAX_POINTS}
    assert data["finding1"]["tsne_note"].startswith("t-SNE not computed: 54 points")
    assert data["capacity"] == {"column": "convs", "note": "strata: candidates with the same sep-conv count per cell",
                                "strata": 3, "sizes": [30, 30, 30]}


def test_a_capped_tsne_is_recorded(monkeypatch):
    monkeypatch.setattr(classifier, "TSNE_MIN_POINTS", 10)
    monkeypatch.setattr(classifier, "TSNE_MAX_POINTS", 20)
    rep = stats.analyze(make_records(60, seed=1), rng=0, **FAST)
    data = rep.to_dict()
    assert data["settings"]["tsne_max_points"] == 20 and len(data["finding1"]["embedding"]) == 20
    assert data["finding1"]["tsne_note"] == "t-SNE of a random 20 of the 36 points (cap 20)"


def test_noise_and_selection_are_reported(report):
    data = report.to_dict()
    assert data["noise"]["n_retest"] == 45 and 0 < data["noise"]["ceiling"] <= 1
    assert data["selection"]["validation_pgd_acc"] == 0.52 and data["selection"]["test_pgd_acc"] == 0.47
    assert data["selection"]["optimism"] == pytest.approx(0.05) and data["selection"]["candidates"] == 90
    text = report.tables()
    assert "validation PGD accuracy 0.520 [0.480, 0.560]" in text and "held-out test PGD accuracy 0.470" in text


def test_one_sign_convention_in_the_text_and_the_json(report):
    fsp = next(r for r in report.proxies.rows if r.proxy == "fsp")
    data = report.to_dict()
    row = next(r for r in data["proxies"]["rows"] if r["proxy"] == "fsp")
    assert row["spearman"]["coef"] == fsp.spearman.coef > 0 and row["spearman"]["sign"] == -1
    assert isinstance(row["recall_pvalue"], float)
    assert f"{fsp.spearman.coef:+.2f} [" in next(line for line in report.tables().splitlines()
                                                 if line.strip().startswith("fsp "))
    deep = stats.list_column(make_records(90, seed=4, budgets=(4, 7, 10), cells=6), "fsp_before_finetune")
    pgd = [r["pgd_acc"] for r in make_records(90, seed=4, budgets=(4, 7, 10), cells=6)]
    assert fsp.spearman.coef == pytest.approx(-sps.spearmanr(deep[:, 4:].mean(axis=1), pgd).statistic)


def test_text_starts_with_the_verdicts(report):
    text = report.tables()
    assert text.startswith("Search records: 90 candidates, 90 with a final PGD accuracy, 0 filtered out")
    assert "[agrees] Finding #1 (density) (f1_density)" in text and "    test:     Spearman within strata" in text
    assert "Cheap robustness scores and free baselines vs final PGD accuracy" in text
    assert "params (baseline)" in text and "e13:f3->f4:conv" in text


def test_reproducible_with_an_int_or_a_generator():
    recs = make_records(30, seed=9)
    a = stats.analyze(recs, rng=3, **FAST)
    b = stats.analyze(recs, rng=np.random.default_rng(3), **FAST)
    da, db = (json.loads(json.dumps(r.to_dict(), allow_nan=False)) for r in (a, b))
    assert da == db | {"settings": da["settings"]} and db["settings"]["rng"] == "generator"


def test_large_samples_take_the_large_sample_formulas():
    rep = stats.analyze(make_records(60, seed=2, budgets=(4, 7, 10)), rng=0, resample_max_n=10, **FAST)
    c = rep.claim("f1_density")
    assert c.evidence[0].p_method == "normal approximation" and c.evidence[1].ci_method == "Fisher z (Bonett-Wright)"
    assert rep.settings["resample_max_n"] == 10 and c.verdict == "agrees"


def test_a_robnet_only_run_skips_fsp_and_proxies_with_notes():
    recs = make_records(30, seed=6, fsp=False, proxies=False)
    for r in recs:
        r.pop("seconds_pgd_before")
        r.pop("pgd_acc_before_finetune")
    rep = stats.analyze(recs, tsne=False, **FAST)
    assert rep.per_cell is None and rep.per_cell_before is None and rep.proxies is None
    assert "Finding #3 (after finetuning): skipped, column(s) fsp absent from the records" in rep.notes
    assert rep.claim("f3_fsp_deep").reason.startswith("no FSP distances recorded")
    assert {c.id for c in rep.claims} == set(stats.CLAIM_IDS)


def test_a_filtered_run():
    recs = make_records(40, seed=7, fsp_keep=0.5)
    rep = stats.analyze(recs, tsne=False, **FAST)
    assert (rep.n_records, rep.n_evaluated, rep.n_filtered_out) == (40, 20, 20)
    assert rep.notes[0].startswith("20 candidates were filtered out before finetuning")
    assert rep.finding1 is not None and rep.finding1.n == 20 and rep.finding1.k == 6
    assert rep.per_cell is not None and rep.per_cell.n == 20 and rep.per_cell_before.n == 40


def test_analyze_errors():
    with pytest.raises(ValueError, match=r"analyze: no records"):
        stats.analyze([])
    with pytest.raises(ValueError, match=r"none of the 2 records has a final PGD accuracy .* finetune stage"):
        stats.analyze([{"id": 0, "pgd_acc": None}, {"id": 1}])
    with pytest.raises(TypeError, match=r"rng must be an int seed or a numpy.random.Generator, got float"):
        stats.analyze(make_records(10), rng=0.5)  # type: ignore[arg-type]
    with pytest.raises(KeyError, match=r"no claim 'f9'"):
        stats.analyze(make_records(10), **FAST).claim("f9")

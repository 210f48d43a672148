"""fspkit.stats.study: loading records (run folder, JSON Lines, CSV) and the analysis report."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from fspkit.stats.study import analyze, load_records
from robnet.io.results import append_jsonl, dumps
from tests._synthetic import make_records

LIST_COLUMNS = ("bits", "fsp", "fsp_before_finetune", "fsp_rel", "fsp_rel_before_finetune", "fsp_scale",
                "fsp_scale_before_finetune", "versions")


def _write_csv(path, records):
    cols = list(dict.fromkeys(k for r in records for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in records:
            w.writerow({k: json.dumps(v) if isinstance(v, list | dict) else ("" if v is None else v)
                        for k, v in r.items()})


# ---------------------------------------------------------------------------------- load_records


def test_run_folder_reads_every_rank_shard_and_ignores_other_files(tmp_path, caplog):
    recs = make_records(12, seed=1, world_size=2)
    for r in recs:
        append_jsonl(tmp_path / f"records.rank{r['rank']}.jsonl", r)
    append_jsonl(tmp_path / "scores.rank0.jsonl", {"id": 99, "first_pass": True})  # not a final record
    append_jsonl(tmp_path / "records.rank1.jsonl", recs[3])  # a duplicate id: the first read wins
    with open(tmp_path / "records.rank0.jsonl", "a") as f:
        f.write('{"id": 50, "pgd_a')  # a writer killed mid-append
    with caplog.at_level(logging.WARNING):
        got = load_records(tmp_path)
    assert json.loads(dumps(got)) == json.loads(dumps(recs))  # sorted by id, no duplicate, no torn line
    assert "1 duplicate id(s)" in caplog.text and "torn last line" in caplog.text


def test_jsonl_and_csv_give_the_same_records(tmp_path):
    recs = make_records(10, seed=2, fsp_keep=0.5)
    recs[0]["genotype"] = "1111111111111111111111111111"  # a bit-string genotype stays text
    for r in recs:
        append_jsonl(tmp_path / "run.jsonl", r)
    _write_csv(tmp_path / "run.csv", recs)
    a, b = load_records(tmp_path / "run.jsonl"), load_records(tmp_path / "run.csv")
    assert b[0]["genotype"] == "1111111111111111111111111111"
    assert b[9]["filtered_out"] is True and b[9]["pgd_acc"] is None and b[9]["fsp"] is None
    assert isinstance(b[0]["bits"], list) and b[0]["budget"] is None and isinstance(b[0]["params"], int)
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                assert rb[k] == pytest.approx(ra[k], rel=1e-15), k
            else:
                assert rb[k] == ra[k], k


def test_csv_written_by_pandas(tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas (optional) writes the CSV of this check")
    recs = make_records(8, seed=3)
    frame = pd.DataFrame([{k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in r.items()}
                          for r in recs])
    frame.to_csv(tmp_path / "run.csv", index=False)
    got = load_records(tmp_path / "run.csv")
    assert [r["id"] for r in got] == list(range(8))
    assert got[5]["fsp"] == pytest.approx(recs[5]["fsp"]) and got[5]["budget"] is None
    assert got[5]["pgd_acc"] == pytest.approx(recs[5]["pgd_acc"])


@pytest.mark.parametrize(("make", "match"), [
    (lambda d: d / "nope", r"does not exist; expected a run folder, a .jsonl or a .csv file"),
    (lambda d: d, r"holds no records\*\.jsonl shard"),
    (lambda d: (d / "run.json").write_text("{}") and d / "run.json", r"has suffix '.json'; expected"),
    (lambda d: ((d / "empty.jsonl").write_text("") and d / "empty.jsonl") or d / "empty.jsonl", r"holds no records$"),
    (lambda d: (d / "bad.jsonl").write_text('{"id": 0}\nnot json\n{"id": 2}\n') and d / "bad.jsonl",
     r"line 2 is not valid JSON"),
    (lambda d: (d / "noid.jsonl").write_text('{"pgd_acc": 0.5}\n') and d / "noid.jsonl",
     r"has id None; expected an integer candidate id"),
    (lambda d: (d / "strid.jsonl").write_text('{"id": "3"}\n') and d / "strid.jsonl", r"has id '3'"),
    (lambda d: (d / "bad.csv").write_text('id,fsp\n0,"[0.1, 0.2"\n') and d / "bad.csv",
     r"bad.csv: line 2: column 'fsp': '\[0.1, 0.2' is not valid JSON"),
    (lambda d: (d / "wide.csv").write_text("id,a\n0,1,2\n") and d / "wide.csv",
     r"line 2 has more cells than the header's 2"),
    (lambda d: (d / "head.csv").write_text("id,pgd_acc\n") and d / "head.csv", r"holds no records$"),
])
def test_load_records_errors(tmp_path, make, match):
    with pytest.raises(ValueError, match=match):
        load_records(make(tmp_path))


# ---------------------------------------------------------------------------------- analyze


def _claim(report, finding, start=""):
    found = [c for c in report.claims if c.finding == finding and c.this_run.startswith(start)]
    assert len(found) == 1, [c.finding for c in report.claims]
    return found[0]


def test_analyze_recovers_the_planted_effects():
    recs = make_records(90, seed=4, budgets=(4, 7, 10))
    rep = analyze(recs, rng=0, n_boot=300)
    assert (rep.n_records, rep.n_evaluated, rep.n_filtered_out, rep.notes) == (90, 90, 0, ())
    assert _claim(rep, "Finding #1").verdict == "agrees"
    assert _claim(rep, "Finding #1 (density, Eq. 2)").verdict == "agrees"
    direct = _claim(rep, "Finding #2")
    assert direct.verdict == "agrees" and direct.this_run.startswith("verdict from the smallest budget, 4.")
    assert _claim(rep, "Finding #3").verdict == "agrees"
    assert _claim(rep, "beyond the paper", "relative FSP").verdict == "new"
    # the numbers in the report are this run's: independent recomputation of two of them
    pgd, dens = stats.column(recs, "pgd_acc"), stats.column(recs, "density")
    assert rep.finding2 is not None and rep.finding2.slope == pytest.approx(np.polyfit(dens, pgd, 1)[0])
    assert rep.finding2.spearman.coef == pytest.approx(sps.spearmanr(dens, pgd).statistic)
    assert f"Spearman(density, pgd_acc) = {rep.finding2.spearman.coef:+.2f}" in _claim(
        rep, "Finding #1 (density, Eq. 2)").this_run
    assert rep.regression is not None and rep.regression.names == ("density", "convs", "direct_convs")
    assert rep.per_cell is not None and rep.per_cell_before is not None and rep.proxies is not None
    assert [g.budget for g in rep.direct_convs.groups] == [4, 7, 10]


def test_analyze_reports_a_disagreement_when_the_data_say_so():
    recs = make_records(60, seed=5)
    for r in recs:  # reverse the planted effect: sparse architectures are now the robust ones
        r["pgd_acc"] = 0.9 - r["pgd_acc"]
    rep = analyze(recs, rng=0, n_boot=300, tsne=False)
    assert _claim(rep, "Finding #1").verdict == "disagrees"
    assert _claim(rep, "Finding #1 (density, Eq. 2)").verdict == "disagrees"
    assert "[disagrees] Finding #1" in rep.tables()


def test_analyze_a_robnet_only_run_skips_fsp_and_proxies_with_notes():
    recs = make_records(30, seed=6, fsp=False, proxies=False)
    for r in recs:
        r.pop("seconds_pgd_before")
        r.pop("pgd_acc_before_finetune")
    rep = analyze(recs, n_boot=50, tsne=False)
    assert rep.per_cell is None and rep.per_cell_before is None and rep.proxies is None
    assert rep.notes == (
        "Finding #3 (after finetuning): skipped, column(s) fsp absent from the records",
        "Finding #3 (inherited weights): skipped, column(s) fsp_before_finetune, pgd_acc_before_finetune absent "
        "from the records",
        "proxy table: skipped, none of fsp_before_finetune, fsp_rel_before_finetune, proxy_grad_norm, "
        "proxy_synflow, proxy_naswot, pgd_acc_before_finetune in the records")
    assert {c.finding for c in rep.claims} == {"Finding #1", "Finding #1 (density, Eq. 2)", "Finding #2"}
    # no budget: the direct-edge verdict comes from the regression that holds density and convs fixed
    assert _claim(rep, "Finding #2").this_run.startswith("no conv budget was set; holding density and the conv count")


def test_analyze_a_filtered_run():
    recs = make_records(40, seed=7, fsp_keep=0.5)
    rep = analyze(recs, n_boot=50, tsne=False)
    assert (rep.n_records, rep.n_evaluated, rep.n_filtered_out) == (40, 20, 20)
    assert rep.notes[0].startswith("20 candidates were filtered out before finetuning")
    assert rep.finding1 is not None and rep.finding1.n == 20 and rep.finding1.k == 6
    assert rep.per_cell is not None and rep.per_cell.n == 20
    assert rep.per_cell_before is not None and rep.per_cell_before.n == 40


def test_analyze_skips_a_part_that_cannot_run_with_its_reason():
    recs = make_records(20, seed=8, fsp=False, proxies=False)
    for r in recs:
        r["density"] = 0.5
    rep = analyze(recs, n_boot=0, tsne=False)
    assert rep.finding2 is None
    assert "Finding #1 (density): skipped, density is constant (0.5 for all 20 points)" in rep.notes[0]


def test_report_to_dict_is_strict_json_and_reproducible():
    recs = make_records(30, seed=9)
    a = analyze(recs, rng=3, n_boot=100)
    b = analyze(recs, rng=np.random.default_rng(3), n_boot=100)
    da = json.loads(json.dumps(a.to_dict(), allow_nan=False))
    assert da == json.loads(json.dumps(b.to_dict(), allow_nan=False)) | {"settings": da["settings"]}
    assert da["settings"]["rng"] == 3 and b.settings["rng"] == "generator"
    assert len(da["finding1"]["embedding"]) == 2 * da["finding1"]["k"]
    assert da["finding2"]["spearman"]["coef"] == pytest.approx(a.finding2.spearman.coef)
    assert {"claims", "notes", "per_cell", "proxies", "regression"} <= da.keys()
    assert da["claims"][0]["paper"].startswith("a linear classifier")


def test_tables_text():
    rep = analyze(make_records(30, seed=10), n_boot=50, tsne=False)
    text = rep.tables()
    assert text.startswith("Search records: 30 candidates, 30 with a final PGD accuracy, 0 filtered out")
    assert text.count("    paper:    ") == len(rep.claims) and text.count("    this run: ") == len(rep.claims)
    assert "(not examined by the paper)" in text
    assert "Cheap robustness proxies vs final PGD accuracy (keep 0.3, true top 0.1)" in text
    assert "  cell  fsp~pgd" in text and "e13:f3->f4:conv" in text


def test_analyze_errors():
    with pytest.raises(ValueError, match=r"analyze: no records"):
        analyze([])
    with pytest.raises(ValueError, match=r"none of the 2 records has a final PGD accuracy .* finetune stage"):
        analyze([{"id": 0, "pgd_acc": None}, {"id": 1}])
    with pytest.raises(TypeError, match=r"rng must be an int seed or a numpy.random.Generator, got float"):
        analyze(make_records(10), rng=0.5)  # type: ignore[arg-type]

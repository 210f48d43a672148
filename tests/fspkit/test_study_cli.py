"""`fspkit stats`, `fspkit plot` on a small generated run folder, and `fspkit demo` end to end (reduced)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fspkit.cli import main as fspkit_main
from robnet.io.results import append_jsonl
from tests._synthetic import make_records


@pytest.fixture
def run_folder(tmp_path):
    """A run folder as `fspkit search` leaves it: two rank shards and a search.json with the attack."""
    folder = tmp_path / "run"
    folder.mkdir()
    records = make_records(60, seed=3, cells=4, budgets=(4, 7, 10))
    append_jsonl(folder / "records.rank0.jsonl", records[::2])
    append_jsonl(folder / "records.rank1.jsonl", records[1::2])
    (folder / "search.json").write_text(json.dumps({"config": {"data": "digits", "eval_attack": "pgd7:eps=0.1"},
                                                    "config_hash": records[0]["config_hash"]}))
    return folder


def test_stats_prints_every_part_and_writes_strict_json(run_folder, tmp_path, capsys):
    out = tmp_path / "stats.json"
    assert fspkit_main(["stats", str(run_folder), "--json", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    for part in ("Finding #1", "Finding #2", "Finding #3", "robustness scores", "n = 60", "Measurement noise"):
        assert part in text, part
    data = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert data["n_records"] == 60 and data["n_evaluated"] == 60
    claims = {c["id"]: c for c in data["claims"]}
    assert list(claims) == ["f1_density", "f1_classifier", "f2_direct_edges", "f3_fsp_deep"]
    for c in claims.values():
        assert c["verdict"] in ("agrees", "disagrees", "inconclusive")
        assert {"reason", "pvalue", "controls", "test", "evidence"} <= c.keys()
    assert claims["f1_density"]["controls"] == ["convs"]
    assert all("recall_pvalue" in row and "spearman" in row for row in data["proxies"]["rows"])
    assert data["settings"]["tsne_max_points"] == 1000 and "resample_max_n" in data["settings"]


def test_stats_reads_a_jsonl_file_and_refuses_bad_sources(run_folder, tmp_path, capsys):
    assert fspkit_main(["stats", str(run_folder / "records.rank0.jsonl"), "--quiet"]) == 0
    assert "n = 30" in capsys.readouterr().out
    assert fspkit_main(["stats", str(tmp_path / "missing"), "--quiet"]) == 1
    assert "error" in capsys.readouterr().err
    # the JSON output is checked before any work, and may never be the input
    assert fspkit_main(["stats", str(run_folder / "records.rank0.jsonl"), "--json",
                        str(run_folder / "records.rank0.jsonl")]) == 1
    assert "is inside the run it reads" in capsys.readouterr().err


@pytest.mark.parametrize("target", ["records.rank0.jsonl", "search.json", "candidates.json", "supernet/last.pt",
                                    "stats.json"])
def test_no_output_lands_in_the_run_it_reads(run_folder, target, capsys):
    files = {p: p.read_bytes() for p in run_folder.rglob("*") if p.is_file()}
    assert fspkit_main(["stats", str(run_folder), "--json", str(run_folder / target), "--quiet"]) == 1
    assert fspkit_main(["plot", str(run_folder), "--out", str(run_folder / "figs"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("is inside the run it reads") == 2 and "Traceback" not in err
    assert {p: p.read_bytes() for p in run_folder.rglob("*") if p.is_file()} == files  # nothing written or changed


def test_plot_writes_every_figure(run_folder, tmp_path, capsys):
    out = tmp_path / "figs"
    assert fspkit_main(["plot", str(run_folder), "--out", str(out), "--format", "svg", "--quiet"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert sorted(Path(p).name for p in capsys.readouterr().out.split()) == written  # it prints what it wrote
    for name in ("fig1_params.svg", "fig3_finetune.svg", "fig4_finding1.svg", "fig5_density.svg",
                 "fig6_direct_convs.svg", "fig7_fsp_depth.svg", "fig7_filtering.svg", "proxy_table.svg"):
        assert (out / name).stat().st_size > 1000, name
    assert fspkit_main(["plot", str(run_folder), "--out", str(run_folder / "records.rank0.jsonl")]) == 1


@pytest.mark.slow
def test_demo_end_to_end_reduced(tmp_path, capsys):
    """The whole study (search, FSP and proxies, finetuning, statistics, figures, report) on digits,
    reduced to 9 candidates and 1 supernet epoch; a rerun continues (nothing redone)."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--candidates", "9", "--supernet-epochs", "1", "--quiet", "--device", "cpu"]
    assert fspkit_main(args) == 0
    printed = capsys.readouterr().out
    assert "Finding #1" in printed and "study written to" in printed
    for name in ("report.html", "report.md", "stats.json"):
        assert (out / name).stat().st_size > 500, name
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "fig5_density.png" in figures and "fig7_fsp_depth.png" in figures
    records = [json.loads(line) for line in (out / "run" / "records.rank0.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == list(range(9))
    layers = json.loads((out / "run" / "search.json").read_text())["config"]["layers"]
    assert all(len(r["fsp"]) == layers and len(r["fsp_before_finetune"]) == layers for r in records)
    assert all(r["proxy_grad_norm"] is not None for r in records)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["n_records"] == 9 and [c["id"] for c in stats["claims"]] == ["f1_density", "f1_classifier",
                                                                             "f2_direct_edges", "f3_fsp_deep"]
    assert stats["selection"]["test_pgd_acc"] is not None  # validation beside the held-out test accuracy
    html = (out / "report.html").read_text()
    assert "figures/fig5_density.png" in html
    before = (out / "run" / "records.rank0.jsonl").read_bytes()
    assert fspkit_main(args) == 0  # resumable: the finished search is not redone
    assert (out / "run" / "records.rank0.jsonl").read_bytes() == before

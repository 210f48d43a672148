"""robnet.search.run: the Python entry point of the search, equal to the command line; local processes
(``procs``) give the same records as one; successive halving; the honest re-measurement of the best."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

import robnet.search as search
from robnet.cli import main as robnet_main
from robnet.search import records as R

N = 6
FLAGS = ["--preset", "cpu-demo", "--layers", "3", "--candidates", str(N), "--supernet-epochs", "1", "--subset",
        "200", "--val-size",
         "64", "--samples", "64", "--test-samples", "40", "--quiet"]


def _config(**overrides: Any) -> search.SearchConfig:
    cfg = search.preset_config("cpu-demo", layers=3, candidates=N, subset=200, val_size=64, eval_samples=64,
                               test_samples=40,
                               **overrides)
    return dataclasses.replace(cfg, supernet=dataclasses.replace(cfg.supernet, epochs=1, warmup_epochs=0))


def _stable(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["id"]: {k: v for k, v in r.items() if not k.startswith("seconds") and k not in ("versions", "rank")}
            for r in records}


@pytest.fixture(scope="module")
def api_run(tmp_path_factory) -> tuple[Path, search.RecordSet]:
    out = tmp_path_factory.mktemp("api") / "run"
    return out, search.run(out, _config(), progress=False)


def test_the_entry_point_is_documented():
    doc = search.run.__doc__ or ""
    assert "Args:" in doc and "procs" in doc and "scorer" in doc and "Returns:" in doc


@pytest.mark.slow
def test_the_python_entry_point_gives_the_clis_records(api_run, tmp_path):
    _, got = api_run
    assert [r["id"] for r in got] == list(range(N)) and got.expected == N and got.missing == 0
    cli = tmp_path / "cli"
    assert robnet_main(["search", "all", *FLAGS, "--out", str(cli)]) == 0
    assert _stable(search.read_records(cli).records) == _stable(got.records)
    # the same search: one config hash
    assert json.loads((cli / "search.json").read_text())["config_hash"] == got.config_hashes.popitem()[0]


@pytest.mark.slow
def test_selection_is_chosen_on_validation_and_measured_on_test(api_run):
    out, got = api_run
    sel = json.loads((out / "selection.json").read_text())
    best = min(got.records, key=lambda r: (-r["pgd_acc"], r["id"]))
    assert sel["id"] == best["id"] and sel["genotype"] == best["genotype"]
    # the re-finetuned candidate reproduces its record exactly on the CPU
    assert sel["validation"]["pgd_acc"] == best["pgd_acc"] and sel["validation"]["n"] == 64
    assert sel["test"]["n"] == 40 and 0 <= sel["test"]["pgd_acc"] <= 1
    lo, hi = sel["test"]["pgd_acc_ci95"]
    assert lo <= sel["test"]["pgd_acc"] <= hi


@pytest.mark.slow
def test_retest_halves_are_recorded(api_run):
    _, got = api_run
    for r in got:  # retest defaults to 10 >= 6 candidates: all of them
        assert r["n_eval"] == 64 and r["finetune_epochs"] == 1
        assert r["pgd_acc_half"] is not None and r["pgd_acc_retest"] is not None
        assert (r["pgd_acc_half"] * 32).is_integer() and (r["pgd_acc_retest"] * 32).is_integer()


@pytest.mark.slow
def test_two_local_processes_give_one_processs_records(api_run, tmp_path):
    out, got = api_run
    run = tmp_path / "two"
    shutil.copytree(out, run)
    for pattern in ("records.rank*.jsonl", "scores.rank*.jsonl", "selection.json"):
        for f in run.glob(pattern):
            f.unlink()
    again = search.run(run, stages=("finetune", "select"), procs=2, progress=False)
    assert {r["rank"] for r in again} == {0, 1}  # sharded by id over the two processes
    assert _stable(again.records) == _stable(got.records)
    stored = json.loads((run / "search.json").read_text())
    assert stored["invocations"][-1]["world_size"] == 2 and stored["invocations"][-1]["threads"] == 1
    assert json.loads((run / "selection.json").read_text())["id"] == json.loads(
        (out / "selection.json").read_text())["id"]


@pytest.mark.slow
def test_successive_halving_spends_fewer_candidate_epochs(api_run, tmp_path):
    out, _ = api_run
    cfg = _config(finetune_schedule="halving")
    cfg = dataclasses.replace(cfg, finetune=dataclasses.replace(cfg.finetune, epochs=3))
    run = tmp_path / "halving"
    run.mkdir()
    shutil.copytree(out / "supernet", run / "supernet")  # the same supernet weights, another config
    got = search.run(run, cfg, stages=("sample", "finetune"), progress=False)
    epochs = sorted(r["finetune_epochs"] for r in got)
    assert epochs == [1, 1, 1, 2, 3, 3]  # 6 -> 3 -> 2 (the better half, rounded up, continues)
    rungs = [json.loads(line) for f in run.glob("rungs.rank*.jsonl") for line in f.read_text().splitlines()]
    assert sorted((r["id"], r["epoch"]) for r in rungs) == sorted(
        (r["id"], e) for r in got for e in range(1, r["finetune_epochs"] + 1))
    # the ones that continued had the better PGD accuracy after the first epoch
    first = {r["id"]: r["pgd_acc"] for r in rungs if r["epoch"] == 1}
    assert {r["id"] for r in got if r["finetune_epochs"] >= 2} == set(search.survivors(first))
    assert not list((run / "finetune").glob("*.pt"))  # every racing state is removed once its record is written
    assert sum(epochs) == 6 + 3 + 2 and sum(epochs) < 0.65 * 3 * N  # 11 candidate-epochs instead of 18


@pytest.mark.slow
def test_the_first_line_says_processes_and_threads(api_run, caplog):
    out, _ = api_run
    with caplog.at_level(logging.INFO, logger="robnet"):
        search.run(out, stages=("finetune",), procs=1, progress=False)  # finished: nothing redone
    assert any(" on 1 process x 1 thread" in m for m in caplog.messages)
    assert json.loads((out / "search.json").read_text())["invocations"][-1]["threads"] == 1


def test_a_diverging_supernet_hints_at_the_search_flag(tmp_path, capsys):
    argv = ["search", "supernet", "--preset", "cpu-demo", "--layers", "3", "--subset", "200", "--val-size", "64",
            "--supernet-epochs", "3", "--supernet-lr", "1e12", "--quiet", "--out", str(tmp_path / "run")]
    assert robnet_main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "diverged" in err and "--supernet-lr" in err and "--lr " not in err


def test_survivors_is_the_better_half_with_ties_to_the_smaller_id():
    assert search.survivors({0: 0.5, 1: 0.5, 2: 0.9, 3: 0.1}) == [0, 2]
    assert search.survivors({4: 0.2, 2: 0.2, 7: 0.2}) == [2, 4]  # ceil(3 / 2) = 2
    assert search.survivors({}) == []


def test_retest_ids_are_a_seeded_subset_or_all():
    cfg = _config()
    assert search.retest_ids(cfg) == set(range(N))
    small = dataclasses.replace(cfg, candidates=40, retest=10)
    picked = search.retest_ids(small)
    assert len(picked) == 10 and picked == search.retest_ids(small) and picked <= set(range(40))
    assert search.retest_ids(dataclasses.replace(small, seed=1)) != picked


def test_unknown_stages_and_a_file_as_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown stage"):
        search.run(tmp_path / "r", _config(), stages=("train",))
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file: give a folder for --out"):
        search.run(tmp_path / "f", _config())
    with pytest.raises(ValueError, match="procs must be a whole number >= 1, got 0"):
        search.run(tmp_path / "r", _config(), procs=0)


def test_the_columns_the_search_writes_are_in_the_schema(api_run):
    _, got = api_run
    unknown = {k for r in got for k in r if R.column(k) is None}
    assert unknown == set()

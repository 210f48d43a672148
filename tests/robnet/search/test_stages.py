"""robnet.search.stages and ``robnet search``: the one-shot search's stages, records, resumption and
sharding.

One tiny search (C=4, 3 cells, 6 candidates, digits, a 1-epoch supernet) is trained and sampled
once per module; every test works on a copy of its folder.
"""

import json
import math
import os
import random
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import torch

import tests._search_worker as W
from robnet.cli.app import main as robnet_main
from robnet.io import results
from robnet.models.genotype import ROBNET_LARGE, Genotype
from robnet.models.network import build_robnet
from robnet.search.candidate import count_flops, count_params
from robnet.search.config import preset_config
from robnet.search.finetune import finetune_stage
from robnet.search.records import records_path, scores_path
from robnet.search.report import report_text
from robnet.search.rundir import SearchDir
from robnet.search.stages import genotype_stats, score_stage, step_genotype

N = 6
EVAL_SAMPLES = 64
TINY = ["--preset", "cpu-demo", "--layers", "3", "--candidates", str(N), "--supernet-epochs", "1", "--subset",
        "200", "--val-size",
        "64", "--samples", str(EVAL_SAMPLES), "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run folder with the supernet trained and the candidates sampled (nothing finetuned)."""
    run = tmp_path_factory.mktemp("search") / "trained"
    assert robnet_main(["search", "supernet", *TINY, "--out", str(run)]) == 0
    assert robnet_main(["search", "sample", "--out", str(run), "--quiet"]) == 0
    return run


@pytest.fixture(scope="module")
def reference(trained, tmp_path_factory) -> Path:
    """``trained`` finetuned in one uninterrupted in-process run."""
    run = _copy(trained, tmp_path_factory.mktemp("search") / "reference")
    assert robnet_main(["search", "finetune", "--out", str(run), "--quiet"]) == 0
    return run


def _lines(run: Path, kind: str = "records") -> list[dict[str, Any]]:
    """Every line of every rank's shard (no deduplication; a torn line fails)."""
    out = []
    for f in sorted(run.glob(f"{kind}.rank*.jsonl")):
        out += [json.loads(line) for line in f.read_text().splitlines()]
    return out


def _stable(records: list[dict[str, Any]], drop: tuple[str, ...] = ()) -> dict[int, dict[str, Any]]:
    """Records by id without what may differ between equal runs: timings and versions (and ``drop``)."""
    return {r["id"]: {k: v for k, v in r.items() if not k.startswith("seconds") and k not in ("versions", *drop)}
            for r in records}


def _assert_complete_and_equal(run: Path, reference: Path, drop: tuple[str, ...] = ()) -> None:
    lines = _lines(run)
    assert sorted(r["id"] for r in lines) == list(range(N))  # exactly N records, none lost or duplicated
    assert _stable(lines, drop) == _stable(_lines(reference), drop)


def _finetune(sd: SearchDir, **kwargs: Any) -> int:
    """Both candidate passes of this process, in process (the first pass, then the finetuning)."""
    cpu = torch.device("cpu")
    supernet = sd.load_supernet(cpu)
    scored = score_stage(sd, supernet, device=cpu, scorer=kwargs.get("scorer"), progress=False)
    return finetune_stage(sd, supernet, scored, device=cpu, progress=False, **kwargs)


# ----------------------------------------------------------------------------- a record's schema


class Field(NamedTuple):
    check: Callable[[Any], bool]
    what: str
    required: bool = True


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return (_int(v) or isinstance(v, float)) and math.isfinite(v)


def _fraction_of(n: int) -> Callable[[Any], bool]:
    # an accuracy over n samples: k / n for an integer k in 0..n
    return lambda v: _number(v) and 0 <= v <= 1 and abs(v * n - round(v * n)) < 1e-9


def _canonical_genotype(v: Any) -> bool:
    try:
        return isinstance(v, str) and str(Genotype.parse(v)) == v
    except (ValueError, TypeError):
        return False


def _versions(v: Any) -> bool:
    return isinstance(v, dict) and {"robnet", "torch", "python"} <= set(v) and all(isinstance(x, str)
                                                                                   for x in v.values())


FRACTION = _fraction_of(EVAL_SAMPLES)
HALF = _fraction_of(EVAL_SAMPLES // 2)
SCHEMA: dict[str, Field] = {
    "id": Field(lambda v: _int(v) and v >= 0, "a candidate id >= 0"),
    "genotype": Field(_canonical_genotype, "a canonical genotype string (parse/format round trip)"),
    "bits": Field(lambda v: isinstance(v, list) and len(v) % 28 == 0 and set(v) <= {0, 1}, "28 bits per cell"),
    "density": Field(lambda v: _number(v) and 0 <= v <= 1, "a density in [0, 1]"),
    "convs": Field(lambda v: _number(v) and 0 <= v <= 14, "sep-convs per cell in 0..14"),
    "direct_convs": Field(lambda v: _number(v) and 0 <= v <= 4, "direct-edge sep-convs per cell in 0..4"),
    "budget": Field(lambda v: v is None or (_int(v) and 0 <= v <= 14), "the sampling budget or null"),
    "params": Field(lambda v: _int(v) and v > 0, "a parameter count"),
    "flops": Field(lambda v: _int(v) and v > 0, "a multiply-add count"),
    "clean_acc": Field(lambda v: v is None or FRACTION(v), "an accuracy fraction (null when filtered out)"),
    "pgd_acc": Field(lambda v: v is None or FRACTION(v), "an accuracy fraction (null when filtered out)"),
    "clean_acc_before_finetune": Field(FRACTION, "an accuracy fraction"),
    "pgd_acc_before_finetune": Field(FRACTION, "an accuracy fraction"),
    "pgd_acc_half": Field(lambda v: v is None or HALF(v), "an accuracy fraction on half the images, or null"),
    "pgd_acc_retest": Field(lambda v: v is None or HALF(v), "an accuracy fraction on half the images, or null"),
    "n_eval": Field(lambda v: v == EVAL_SAMPLES, f"the {EVAL_SAMPLES} validation images"),
    "finetune_epochs": Field(lambda v: _int(v) and 0 <= v <= 1, "the epochs finetuned (0 when filtered out)"),
    "seed": Field(lambda v: _int(v) and 0 <= v < 2**63, "the candidate's 63-bit seed"),
    "config_hash": Field(lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{16}", v) is not None,
                         "16 hex digits"),
    "versions": Field(_versions, "robnet/torch/python version strings"),
    "rank": Field(lambda v: _int(v) and v >= 0, "the writing rank"),
    "filtered_out": Field(lambda v: isinstance(v, bool), "a bool"),
    "clean_acc_missing": Field(lambda v: isinstance(v, str) and v != "", "why clean_acc is null", required=False),
    "pgd_acc_missing": Field(lambda v: isinstance(v, str) and v != "", "why pgd_acc is null", required=False),
    "seconds_inherit": Field(lambda v: _number(v) and v >= 0, "seconds"),
    "seconds_first_pass": Field(lambda v: _number(v) and v >= 0, "seconds"),
    "seconds_pgd_before": Field(lambda v: _number(v) and v >= 0, "seconds"),
    "seconds_finetune": Field(lambda v: _number(v) and v >= 0, "seconds", required=False),
    "seconds_eval": Field(lambda v: _number(v) and v >= 0, "seconds", required=False),
}


def validate(record: dict[str, Any], schema: dict[str, Field]) -> list[str]:
    """The ways ``record`` breaks ``schema`` (missing, malformed or unknown fields), plus the rules
    that tie fields together; empty when it conforms."""
    errors = [f"{name}: missing" for name, f in schema.items() if f.required and name not in record]
    errors += [f"{name}: expected {schema[name].what}, got {v!r}" for name, v in record.items()
               if name in schema and not schema[name].check(v)]
    errors += [f"{name}: not in the schema" for name in record if name not in schema]
    if errors:
        return errors
    g = Genotype.parse(record["genotype"])
    stats = genotype_stats(g)
    errors += [f"{k}: {record[k]!r} disagrees with the genotype ({stats[k]!r})" for k in
               ("bits", "density", "convs", "direct_convs") if record[k] != stats[k]]
    for acc in ("clean_acc", "pgd_acc"):  # null only with a reason (filtered out, or finetuning diverged)
        if (record[acc] is None) != (f"{acc}_missing" in record):
            errors.append(f"{acc}: {record[acc]!r} with {acc}_missing {record.get(f'{acc}_missing')!r}")
    if record["filtered_out"] and (record["clean_acc"] is not None or record["pgd_acc"] is not None
                                   or "seconds_finetune" in record):
        errors.append("filtered_out: a filtered candidate has finetuned results")
    if not record["filtered_out"] and "seconds_finetune" not in record:
        errors.append("seconds_finetune: missing for a candidate that was not filtered out")
    return errors


def test_the_schema_checker_finds_bad_records(reference):
    good = _lines(reference)[0]
    assert validate(good, SCHEMA) == []
    assert validate({**good, "pgd_acc": 1.5}, SCHEMA) == ["pgd_acc: expected an accuracy fraction (null when "
                                                           "filtered out), got 1.5"]
    assert validate({**good, "clean_acc": 0.5 + 1 / 128}, SCHEMA)[0].startswith("clean_acc: expected")
    assert validate({k: v for k, v in good.items() if k != "config_hash"}, SCHEMA) == ["config_hash: missing"]
    assert validate({**good, "genotype": good["genotype"].replace(" ", "")}, SCHEMA)[0].startswith("genotype:")
    assert validate({**good, "extra": 1}, SCHEMA) == ["extra: not in the schema"]
    assert validate({**good, "density": 0.5}, SCHEMA) == [f"density: 0.5 disagrees with the genotype "
                                                          f"({good['density']!r})"]
    assert validate({**good, "pgd_acc": None}, SCHEMA) == ["pgd_acc: None with pgd_acc_missing None"]
    assert validate({**good, "filtered_out": True}, SCHEMA) == ["filtered_out: a filtered candidate has finetuned "
                                                                "results"]
    assert validate({k: v for k, v in good.items() if k != "seconds_finetune"}, SCHEMA) == [
        "seconds_finetune: missing for a candidate that was not filtered out"]


def test_records_validate_against_the_schema(reference):
    records = _lines(reference)
    assert [r["id"] for r in records] == list(range(N))
    for r in records:
        assert validate(r, SCHEMA) == [], r["id"]
    stored = json.loads((reference / "search.json").read_text())
    cfg = SearchDir.open(reference, None, create=False, record=False).config
    candidates = json.loads((reference / "candidates.json").read_text())["candidates"]
    for r in records:
        g = Genotype.parse(r["genotype"])
        assert r["genotype"] == candidates[r["id"]]["genotype"]
        assert r["budget"] == cfg.budget_of(r["id"]) == g.num_convs()[0]
        assert r["seed"] == results.derive_seed(cfg.seed, "candidate", r["id"])
        assert r["config_hash"] == stored["config_hash"]
        assert r["versions"] == results.versions()
        assert (r["rank"], r["filtered_out"]) == (0, False)
        # params and FLOPs of the standalone network built from the genotype (not from the supernet)
        net = build_robnet(g, C=4, layers=3, in_channels=1, num_classes=10)
        assert (r["params"], r["flops"]) == (count_params(net), count_flops(net, (1, 8, 8)))
    # the first pass (scores.rank0.jsonl) is the final record's prefix, field for field
    for s, r in zip(_lines(reference, "scores"), records, strict=True):
        assert {k: r[k] for k in s} == s


def test_records_are_readable_by_read_records_and_pandas(reference):
    from robnet.search.records import read_records

    loaded = read_records(reference).records
    assert loaded == _lines(reference)
    pd = pytest.importorskip("pandas", reason="pandas reads JSON Lines records (not a dependency of the suite)")
    frame = pd.concat([pd.read_json(f, lines=True) for f in sorted(reference.glob("records.rank*.jsonl"))])
    assert len(frame) == N and frame["pgd_acc"].between(0, 1).all()
    assert list(frame["genotype"]) == [r["genotype"] for r in loaded]


@pytest.mark.slow
def test_a_cell_free_search_end_to_end(tmp_path, capsys):
    run = tmp_path / "free"
    assert robnet_main(["search", "all", *TINY, "--candidates", "3", "--cell-free", "--out", str(run)]) == 0
    records = _lines(run)
    assert [r["id"] for r in records] == [0, 1, 2]
    for r in records:
        assert validate(r, SCHEMA) == [], r["id"]
        g = Genotype.parse(r["genotype"])
        assert g.cell_free and g.num_convs() == [r["budget"]] * 3 and r["convs"] == r["budget"]
        net = build_robnet(g, C=4, layers=3, in_channels=1, num_classes=10)
        assert (r["params"], r["flops"]) == (count_params(net), count_flops(net, (1, 8, 8)))
    assert "robnet train --arch robnet_free --genotype 'free: " in capsys.readouterr().out


# ----------------------------------------------------------------------------- resumption


@pytest.mark.slow
def test_a_torn_last_line_is_tolerated_and_redone(trained, reference, tmp_path):
    ref_records = (reference / "records.rank0.jsonl").read_text().splitlines(keepends=True)
    ref_scores = (reference / "scores.rank0.jsonl").read_text().splitlines(keepends=True)
    # killed while appending the 4th final record
    run = _copy(trained, tmp_path / "records_torn")
    shutil.copy(reference / "scores.rank0.jsonl", run)
    records_path(run, 0).write_text("".join(ref_records[:3]) + ref_records[3][:40])
    assert robnet_main(["search", "finetune", "--out", str(run), "--quiet"]) == 0
    _assert_complete_and_equal(run, reference)
    # killed while appending the 3rd first-pass score (no final record yet)
    run = _copy(trained, tmp_path / "scores_torn")
    scores_path(run, 0).write_text("".join(ref_scores[:2]) + ref_scores[2][:-1])  # only the newline missing
    assert robnet_main(["search", "finetune", "--out", str(run), "--quiet"]) == 0
    _assert_complete_and_equal(run, reference)
    assert [r["id"] for r in _lines(run, "scores")] == list(range(N))


def test_a_finished_search_reruns_as_a_no_op(trained, reference, tmp_path):
    run = _copy(reference, tmp_path / "again")
    before = {f.name: f.read_bytes() for f in run.glob("*.jsonl")}
    assert robnet_main(["search", "finetune", "--out", str(run), "--quiet"]) == 0
    assert {f.name: f.read_bytes() for f in run.glob("*.jsonl")} == before
    # every invocation is recorded as given, with its process count
    invocations = json.loads((run / "search.json").read_text())["invocations"]
    assert [i["argv"] for i in invocations] == [["robnet", "search", "supernet", *TINY, "--out", str(trained)],
                                                 ["robnet", "search", "sample", "--out", str(trained), "--quiet"],
                                                 ["robnet", "search", "finetune", "--out", str(reference), "--quiet"],
                                                 ["robnet", "search", "finetune", "--out", str(run), "--quiet"]]
    assert {i["world_size"] for i in invocations} == {1}


def _popen(run: Path, log: Path) -> subprocess.Popen:
    with log.open("a") as err:
        return subprocess.Popen([sys.executable, "-m", "robnet.cli", "search", "finetune", "--out", str(run),
                                 "--quiet", "--procs", "2"], stdout=subprocess.DEVNULL, stderr=err, env=ENV)


def _timed(run: Path, log: Path) -> float:
    t0 = time.perf_counter()
    assert _popen(run, log).wait(timeout=300) == 0, log.read_text()
    return time.perf_counter() - t0


def _assert_shards_consistent(run: Path) -> None:
    """At any moment: every complete line is a record, no id twice, at most a torn last line."""
    for kind in ("scores", "records"):
        for f in run.glob(f"{kind}.rank*.jsonl"):
            read = results.read_jsonl(f)
            ids = [r["id"] for r in read.records]
            assert len(ids) == len(set(ids)), (f.name, ids)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun(trained, reference, tmp_path):
    # two processes (--procs 2) on every attempt: killing the parent kills its child too (no orphan keeps
    # the lock or writes on), and the shards stay consistent
    log = tmp_path / "stderr.txt"
    # one uninterrupted subprocess run: its records equal the in-process reference's
    timed = _copy(trained, tmp_path / "timed")
    total = _timed(timed, log)
    _assert_complete_and_equal(timed, reference, drop=("rank",))
    startup = _timed(timed, log)  # nothing left to do: start-up, reading the folder, the report
    run = _copy(trained, tmp_path / "killed")
    rng = random.Random(9)
    work = max(total - startup, 1.0)
    codes: list[int] = []
    while len(codes) < 20:
        # from just before the first candidate to a quarter of an uninterrupted run's work after it:
        # each attempt makes a little progress, so the kills land in start-up, the first pass, the
        # second pass and between them until an attempt finishes the search
        proc = _popen(run, log)
        try:
            rc = proc.wait(timeout=rng.uniform(0.8 * startup, startup + 0.25 * work))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        codes.append(rc)
        assert rc in (0, -9), log.read_text()
        _assert_shards_consistent(run)
        if rc == 0:
            break
    assert codes.count(-9) >= 3, codes
    _timed(run, log)  # finishes the search if no attempt did; else a no-op
    _assert_complete_and_equal(run, reference, drop=("rank",))
    assert sorted(r["id"] for r in _lines(run, "scores")) == list(range(N))


# ----------------------------------------------------------------------------- plugging in


@pytest.mark.slow
def test_a_candidate_filter_and_a_scorer_plug_into_the_finetune_stage(trained, reference, tmp_path):
    run = _copy(trained, tmp_path / "filtered")
    sd = SearchDir.open(run, None, create=False, argv=["test"])
    seen_by_filter: list[list[int]] = []
    calls: list[tuple[str, int]] = []

    def scorer(model, ctx):
        calls.append((ctx.stage, ctx.candidate_id))
        x, y = ctx.batches[0][0][:4], ctx.batches[0][1][:4]
        x_adv = ctx.attack_fn("probe")(model, x, y)
        again = ctx.attack_fn("probe")(model, x, y)  # the bound generator is seeded per (candidate, key)
        return {f"probe_{ctx.stage}": float((x_adv - x).abs().max()), "probe_same": bool(torch.equal(x_adv, again)),
                "probe_seed": ctx.seed, "probe_n": sum(len(b[1]) for b in ctx.batches)}

    def keep_even(records):
        seen_by_filter.append([r["id"] for r in records])
        assert all("probe_before_finetune" in r for r in records)  # the filter sees the scorer's fields
        return {r["id"] for r in records if r["id"] % 2 == 0}

    assert _finetune(sd, scorer=scorer, candidate_filter=keep_even) == N
    assert seen_by_filter == [list(range(N))]
    assert calls == [("before_finetune", i) for i in range(N)] + [("after_finetune", i) for i in (0, 2, 4)]
    ref = _stable(_lines(reference))
    probe = ("probe_before_finetune", "probe_after_finetune", "probe_same", "probe_seed", "probe_n")
    for r in _lines(run):
        assert r["probe_same"] and r["probe_seed"] == r["seed"] and r["probe_n"] == EVAL_SAMPLES
        assert 0 < r["probe_before_finetune"] <= 0.1 + 1e-6  # the search's attack: eps 0.1
        assert validate({k: v for k, v in r.items() if k not in probe}, SCHEMA) == []
        mine = _stable([r], drop=probe)[r["id"]]
        if r["id"] % 2 == 0:  # finetuned exactly as without the filter and the scorer
            assert not r["filtered_out"] and mine == ref[r["id"]] and "probe_after_finetune" in r
        else:
            reason = "filtered out before finetuning by the candidate filter"
            assert mine == {**ref[r["id"]], "clean_acc": None, "pgd_acc": None, "filtered_out": True,
                            "clean_acc_missing": reason, "pgd_acc_missing": reason, "finetune_epochs": 0,
                            "pgd_acc_half": None, "pgd_acc_retest": None}
            assert "probe_after_finetune" not in r
    assert "3 filtered out before finetuning" in report_text(sd)


@pytest.mark.slow
def test_a_diverged_candidate_is_recorded_and_the_search_goes_on(trained, reference, tmp_path, monkeypatch, caplog):
    from robnet.train.finetune import Finetuner
    from robnet.train.loop import TrainingDiverged

    run = _copy(trained, tmp_path / "diverged")
    real = Finetuner.run_epoch
    victim = results.derive_seed(0, "candidate", 3) % 2**31  # candidate 3's finetuning seed

    def run_epoch(self, **kwargs):
        if self.config.seed == victim:
            raise TrainingDiverged(epoch=1, what="the training loss became nan", lr=0.02)
        return real(self, **kwargs)

    monkeypatch.setattr(Finetuner, "run_epoch", run_epoch)
    with caplog.at_level("WARNING", logger="robnet.search.finetune"):
        assert robnet_main(["search", "finetune", "--out", str(run), "--quiet"]) == 0
    assert "candidate 3: training diverged in epoch 1: the training loss became nan" in caplog.text
    records = _lines(run)
    assert [r["id"] for r in records] == list(range(N))
    assert all(validate(r, SCHEMA) == [] for r in records)
    reason = "finetuning diverged in epoch 1: the training loss became nan (lr 0.02)"
    ref = _stable(_lines(reference))
    mine = _stable(records)
    assert mine[3] == {**ref[3], "clean_acc": None, "pgd_acc": None, "clean_acc_missing": reason,
                       "pgd_acc_missing": reason, "pgd_acc_half": None, "pgd_acc_retest": None}
    assert all(mine[i] == ref[i] for i in range(N) if i != 3)


# ----------------------------------------------------------------------------- the report


def test_a_report_on_a_partial_run_shows_progress_and_eta(trained, reference, tmp_path, capsys):
    run = _copy(trained, tmp_path / "partial")
    shutil.copy(reference / "scores.rank0.jsonl", run)
    ref_records = (reference / "records.rank0.jsonl").read_text().splitlines(keepends=True)
    records_path(run, 0).write_text("".join(ref_records[:2]))
    # the search was last run by 4 processes: the ETA divides the remaining work among them
    stored = json.loads((run / "search.json").read_text())
    stored["invocations"].append({**stored["invocations"][-1], "world_size": 4})
    (run / "search.json").write_text(json.dumps(stored))
    before = (run / "search.json").read_bytes()
    assert robnet_main(["search", "report", str(run)]) == 0
    assert (run / "search.json").read_bytes() == before  # a report writes nothing
    text = capsys.readouterr().out
    per_finetune = sum(json.loads(line)["seconds_finetune"] for line in ref_records[:2]) / 2
    eta = per_finetune * (N - 2) / 4
    eta_text = f"{eta:.0f} s" if eta < 90 else f"{eta / 60:.1f} min"
    assert "supernet   1/1 epochs\n" in text
    assert f"scored     {N}/{N}\n" in text and f"finished   2/{N}\n" in text
    assert f"ETA        {eta_text} at 4 process(es)\n" in text
    assert "top 2 by PGD accuracy after finetuning" in text
    best = max(_lines(run), key=lambda r: (r["pgd_acc"], -r["id"]))
    assert f"robnet train --arch robnet_large --genotype '{best['genotype']}' --C 4 --layers 3 --data digits" in text
    # the full run: no ETA line, every candidate in the table
    assert robnet_main(["search", "report", "--out", str(reference), "--top", "3"]) == 0
    text = capsys.readouterr().out
    assert f"finished   {N}/{N}\n" in text and "ETA" not in text and "top 3 by PGD accuracy" in text


def test_the_reports_train_command_runs(reference, tmp_path, capsys):
    from robnet.io import checkpoint

    text = report_text(SearchDir.open(reference, None, create=False, record=False))
    command = next(line.strip() for line in text.splitlines() if line.strip().startswith("robnet train "))
    argv = shlex.split(command)[1:]
    argv[argv.index("--out") + 1] = str(tmp_path / "best")
    small = ["--epochs", "1", "--warmup-epochs", "0", "--subset", "96", "--batch-size", "32", "--attack-steps", "1",
             "--val-size", "32", "--val-attack-steps", "1", "--eps", "0.1", "--step-size", "0.05", "--quiet"]
    assert robnet_main([*argv, *small]) == 0, capsys.readouterr().err
    best = max(_lines(reference), key=lambda r: (r["pgd_acc"], -r["id"]))
    arch = checkpoint.load_raw(tmp_path / "best" / "last.pt")["arch"]
    assert (arch["genotype"], arch["C"], arch["layers"], arch["in_channels"]) == (best["genotype"], 4, 3, 1)


def test_a_report_before_any_candidate(trained, tmp_path):
    run = _copy(trained, tmp_path / "unscored")
    sd = SearchDir.open(run, None, create=False, argv=["test"])
    text = report_text(sd)
    assert f"scored     0/{N}\nfinished   0/{N}\nETA        unknown until a candidate finishes at 1 process(es)" \
        in text and "top" not in text
    (run / "candidates.json").unlink()
    assert report_text(sd).endswith(f"candidates not sampled yet (next: robnet search sample --out {run})")


# ----------------------------------------------------------------------------- the supernet


def test_step_genotype_is_a_pure_function_of_seed_epoch_and_step():
    cfg = preset_config("cpu-demo", layers=3)
    keys = [(e, s) for e in range(3) for s in range(5)]
    forward = [str(step_genotype(cfg, e, s)) for e, s in keys]
    backward = [str(step_genotype(cfg, e, s)) for e, s in reversed(keys)][::-1]
    assert forward == backward and len(set(forward)) == len(keys)
    # the candidates' budget does not constrain the supernet's architectures; the seed changes them
    assert [str(step_genotype(preset_config("cpu-demo", layers=3, budget=4), e, s)) for e, s in keys] == forward
    assert [str(step_genotype(preset_config("cpu-demo", layers=3, seed=1), e, s)) for e, s in keys] != forward
    free = step_genotype(preset_config("cpu-demo", layers=3, cell_free=True), 0, 0)
    assert free.cell_free and len(free.cells) == 3


def test_genotype_stats_by_hand():
    stats = genotype_stats(ROBNET_LARGE)  # 11 11 11 11 11 01 11 01 10 11 01 01 01 11
    assert (stats["density"], stats["convs"], stats["direct_convs"]) == (22 / 28, 13, 3)
    assert stats["genotype"] == "11 11 11 11 11 01 11 01 10 11 01 01 01 11" and len(stats["bits"]) == 28
    free = Genotype.parse("free: 01 01 01 01 01 01 01 01 01 01 01 01 01 01 | 10 10 10 10 10 10 10 10 10 10 10 10 10 01")
    stats = genotype_stats(free)
    assert (stats["density"], stats["convs"], stats["direct_convs"]) == (0.5, 7.5, 2.5)  # means over the cells


@pytest.mark.slow
def test_a_stopped_supernet_is_refused_then_resumed(tmp_path):
    from robnet.search.stages import supernet_stage

    cfg = preset_config("cpu-demo", subset=200, val_size=64, candidates=N, layers=3)
    cfg = type(cfg).from_dict({**cfg.to_dict(), "supernet": {**cfg.to_dict()["supernet"], "epochs": 2,
                                                             "warmup_epochs": 1}})
    sd = SearchDir.open(tmp_path, cfg, create=True, argv=["test"])
    supernet_stage(sd, device=torch.device("cpu"), progress=False, max_epochs=1)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}: supernet training stopped after epoch 1 of 2. Hint: "
                                                   f"rerun `robnet search supernet --out {tmp_path}` to finish it")):
        sd.load_supernet(torch.device("cpu"))
    supernet_stage(sd, device=torch.device("cpu"), progress=False)
    net = sd.load_supernet(torch.device("cpu"))
    assert not net.training
    log_rows = (tmp_path / "supernet" / "log.csv").read_text().splitlines()
    assert len(log_rows) == 3  # header + epochs 1 and 2
    supernet_stage(sd, device=torch.device("cpu"), progress=False)  # finished: nothing to do
    assert (tmp_path / "supernet" / "log.csv").read_text().splitlines() == log_rows


# ----------------------------------------------------------------------------- bad input


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("argv", "message"), [
    (["sample", "--preset", "cpu-demo", "--budget", "15"],
     "SearchConfig: budget must be an integer in 0..14 sep-convs per cell, got 15"),
    (["sample", "--preset", "cpu-demo", "--budget", "4,-1"],
     "SearchConfig: budget must be an integer in 0..14 sep-convs per cell, got -1"),
    (["sample", "--preset", "cpu-demo", "--budget", "0", "--candidates", "9766"],
     "SearchConfig: 9766 candidates requested from a search space (budget 0) that holds only 9765 distinct "
     "architectures"),
    (["all", "--preset", "cpu-demo", "--subset", "200", "--val-size", "64", "--eval-samples", "65"],
     "eval_samples 65 is larger than the validation split (64 images). Hint: lower --samples, or raise "
     "--val-size / --subset"),
    (["supernet", "--preset", "cpu-demo", "--subset", "40"],
     "the search's supernet recipe cannot train on its 32 training images: training set of 32 images gives no full "
     "batch of 64. Hint: lower --batch-size or train on more images"),
    (["sample", "--preset", "small", "--candidates", "0"], "SearchConfig: candidates must be an integer >= 1, got 0"),
    (["sample"], "robnet search sample needs a run folder: --out RUN_DIR"),
])
def test_bad_input_is_one_line_and_exit_1(argv, message, tmp_path, capsys):
    out = ["--out", str(tmp_path / "run")] if argv != ["sample"] else []
    assert robnet_main(["search", *argv, *out]) == 1
    assert _one_line_error(capsys) == f"robnet search: error: {message}"
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_bad_folders_are_one_line_and_exit_1(trained, tmp_path, capsys):
    # a run folder made by another config
    run = _copy(trained, tmp_path / "other")
    assert robnet_main(["search", "finetune", "--out", str(run), "--preset", "cpu-demo", "--layers", "3",
                        "--candidates", "7"]) == 1
    err = _one_line_error(capsys)
    assert err.startswith(f"robnet search: error: {run} holds a search made by another config: ")
    assert "candidates (6 in the folder, 7 now)" in err and "Hint: continue it with the folder's own settings" in err
    # report on a folder with no search
    assert robnet_main(["search", "report", str(tmp_path / "empty")]) == 1
    assert _one_line_error(capsys) == (f"robnet search: error: {tmp_path / 'empty'} holds no search (search.json "
                                       f"missing). Hint: start one with `robnet search all --out "
                                       f"{tmp_path / 'empty'}` (or the `supernet` stage)")
    assert robnet_main(["search", "finetune", "--out", str(tmp_path / "empty")]) == 1
    assert "holds no search (search.json missing)" in _one_line_error(capsys)
    # finetune before sample
    unsampled = _copy(trained, tmp_path / "unsampled")
    (unsampled / "candidates.json").unlink()
    assert robnet_main(["search", "finetune", "--out", str(unsampled)]) == 1
    assert _one_line_error(capsys) == (f"robnet search: error: {unsampled} has no sampled candidates yet. Hint: run "
                                       f"`robnet search sample --out {unsampled}` first")
    # finetune before the supernet
    fresh = tmp_path / "fresh"
    assert robnet_main(["search", "sample", *TINY, "--out", str(fresh)]) == 0
    capsys.readouterr()
    assert robnet_main(["search", "finetune", "--out", str(fresh)]) == 1
    assert _one_line_error(capsys) == (f"robnet search: error: {fresh}: the supernet is not trained yet. Hint: run "
                                       f"`robnet search supernet --out {fresh}`")
    # a file where the folder should be
    (tmp_path / "file").write_text("x")
    assert robnet_main(["search", "sample", *TINY, "--out", str(tmp_path / "file")]) == 1
    assert _one_line_error(capsys) == f"robnet search: error: run folder {tmp_path / 'file'} is a file: give a " \
                                      "folder for --out"


@pytest.mark.parametrize(("argv", "message"), [
    (["sample", "--budget", "7,x"], "expected an integer or a comma-separated list, got '7,x'"),
    (["sample", "--preset", "cpu_demo"], "argument --preset: invalid choice: 'cpu_demo'"),
    (["bogus"], "argument STAGE: invalid choice: 'bogus'"),
    (["sample", "--data", "mnist"], "argument --data: invalid choice: 'mnist'"),
    (["all", "--finetune-schedule", "halve"], "argument --finetune-schedule: invalid choice: 'halve'"),
])
def test_closed_sets_are_usage_errors(argv, message, tmp_path, capsys):
    assert robnet_main(["search", *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_finetune_gives_the_one_process_records(trained, reference, tmp_path):
    import torch.multiprocessing as mp

    run = _copy(trained, tmp_path / "ddp")
    mp.spawn(W.finetune_worker, args=(2, _free_port(), str(run), str(tmp_path / "out")), nprocs=2, join=True)
    done = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text())["done"] for r in (0, 1)]
    assert done == [3, 3]  # ids 0, 2, 4 and 1, 3, 5
    assert [r["id"] for r in _lines(run)] == [0, 2, 4, 1, 3, 5]  # records.rank0 then records.rank1
    assert {r["id"]: r["rank"] for r in _lines(run)} == {i: i % 2 for i in range(N)}
    _assert_complete_and_equal(run, reference, drop=("rank",))
    assert json.loads((run / "search.json").read_text())["invocations"][-1]["world_size"] == 2


def test_a_late_process_takes_the_same_path_through_sampling(tmp_path):
    """The second process reaches the sample stage after the first wrote the candidates: it must still
    wait at the same barriers, or its next collective pairs with the first one's barrier (seen as
    "30 candidates have no first-pass score" from a 2-process search)."""
    import torch.multiprocessing as mp

    cfg = preset_config("cpu-demo", subset=200, val_size=64, candidates=N, layers=3)
    mp.spawn(W.sample_race_worker, args=(2, _free_port(), str(tmp_path / "run"), str(tmp_path / "out"),
                                         cfg.to_dict()), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks == [{"sum": 3, "n": N, "error": ""}] * 2


@pytest.mark.slow
@pytest.mark.parametrize("tamper", [False, True], ids=["same", "tampered"])
def test_two_process_supernet_trains_one_architecture_per_step(tamper, tmp_path):
    import torch.multiprocessing as mp

    cfg = preset_config("cpu-demo", subset=200, val_size=64, candidates=N, layers=3)
    cfg = type(cfg).from_dict({**cfg.to_dict(), "supernet": {**cfg.to_dict()["supernet"], "epochs": 1,
                                                             "warmup_epochs": 0}})
    mp.spawn(W.supernet_worker, args=(2, _free_port(), str(tmp_path / "run"), str(tmp_path / "out"), cfg.to_dict(),
                                      tamper), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / "out" / f"rank{r}.json").read_text()) for r in (0, 1)]
    if tamper:
        for r in ranks:
            assert r["error"].startswith("processes sampled different supernet architectures in one step")
            assert [s[:2] for s in r["seen"]] == [[0, 0], [0, 1]]  # stopped at the tampered step
        return
    seen0, seen1 = ranks[0]["seen"], ranks[1]["seen"]
    assert ranks[0]["error"] == ranks[1]["error"] == ""
    steps = 136 // 64  # 136 training images, global batch 64, the incomplete last batch dropped
    assert seen0 == seen1 and len(seen0) == steps
    assert seen0 == [[0, s, str(step_genotype(cfg, 0, s))] for s in range(steps)]
    assert len({s[2] for s in seen0}) == steps
    assert (tmp_path / "run" / "supernet" / "last.pt").exists()


def test_replay_attack_hands_out_the_evaluations_adversarial_batches_in_order():
    """The search passes its accuracy evaluation's adversarial batches to the scorer (no second attack)."""
    from robnet.attacks.spec import parse_attack
    from robnet.search.stages import ScoreContext

    batches = [(torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 2])), (torch.rand(2, 1, 8, 8), torch.tensor([3, 4]))]
    adversarial = [x.clamp(0.1, 0.9) for x, _ in batches]
    ctx = ScoreContext("before_finetune", batches, parse_attack("pgd2:eps=0.1"), 0, torch.device("cpu"), 0,
                       adversarial, 1.5)
    replay = ctx.replay_attack()
    assert replay(None, *batches[0]) is adversarial[0] and replay(None, *batches[1]) is adversarial[1]
    with pytest.raises(ValueError, match="called with other inputs than the context's batches"):
        replay(None, *batches[0])  # a third call: the pass is over
    with pytest.raises(ValueError, match="called with other inputs"):
        ctx.replay_attack()(None, *batches[1])  # out of order
    with pytest.raises(ValueError, match="1 adversarial batches for 2 batches"):
        ScoreContext("before_finetune", batches, parse_attack("pgd2"), 0, torch.device("cpu"), 0,
                     adversarial[:1]).replay_attack()

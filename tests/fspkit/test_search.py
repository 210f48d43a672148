"""fspkit.search and ``fspkit search``: the FSP scorer and filter plugged into robnet's one-shot
search, on hand-made records and end to end."""

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from fspkit.cli import main as fspkit_main
from fspkit.score import score
from fspkit.search import FSPScorer, FSPSearchConfig, deep_fsp, fsp_filter
from robnet.attacks.spec import parse_attack
from robnet.cli.app import main as robnet_main
from robnet.data.datasets import load_dataset
from robnet.data.loader import DeviceLoader
from robnet.io import results
from robnet.models.genotype import Genotype
from robnet.search.candidate import recalibrate_bn
from robnet.search.rundir import SearchDir
from robnet.search.stages import ScoreContext
from tests.robnet.search.test_stages import SCHEMA, Field, _lines, _number, validate

N = 6
LAYERS = 3
TINY = ["--preset", "cpu-demo", "--layers", "3", "--candidates", str(N), "--supernet-epochs", "1", "--subset",
        "200", "--val-size",
        "64", "--samples", "64", "--quiet"]
CPU = torch.device("cpu")

# ----------------------------------------------------------------------------- the settings


def test_settings_are_validated():
    with pytest.raises(ValueError, match="give --fsp-keep or --fsp-threshold, not both"):
        FSPSearchConfig(keep=0.5, threshold=1.0)
    for keep in (0.0, 1.5, float("nan"), -0.1):
        with pytest.raises(ValueError, match=re.escape(f"--fsp-keep must be a fraction in (0, 1], got {keep}")):
            FSPSearchConfig(keep=keep)
    for threshold in (-1.0, float("inf")):
        with pytest.raises(ValueError, match=re.escape(f"--fsp-threshold must be a finite distance >= 0, got "
                                                       f"{threshold}")):
            FSPSearchConfig(threshold=threshold)
    with pytest.raises(ValueError, match="proxy_batch must be >= 2 \\(NASWOT compares samples\\), got 1"):
        FSPSearchConfig(proxy_batch=1)
    with pytest.raises(ValueError, match="synflo"):
        FSPSearchConfig(proxies=("synflo",))
    assert FSPSearchConfig(keep=0.3).plugin() == {"fspkit": {"keep": 0.3, "threshold": None, "proxies":
                                                             ["grad_norm", "synflow", "naswot"], "proxy_batch": 64}}


def test_deep_fsp_is_the_mean_of_the_deep_cells():
    assert deep_fsp([1.0, 2.0, 3.0]) == 3.0  # deep_cells(3) = range(2, 3)
    assert deep_fsp([1.0, 2.0, 3.0, 4.0]) == 3.5  # range(2, 4)
    assert deep_fsp([float(i) for i in range(20)]) == sum(range(13, 20)) / 7  # range(13, 20): from the 2nd reduction
    assert deep_fsp([float(i) for i in range(6)]) == 4.5  # the demo's 6 cells: reduction cell 4 and normal cell 5
    assert deep_fsp([5.0]) == 5.0
    assert deep_fsp([1.0, None, 3.0]) == 3.0  # a shallow cell's missing value does not matter
    for bad in ([], [1.0, 2.0, None], [1.0, 2.0, float("nan")], [1.0, 2.0, float("inf")]):
        assert deep_fsp(bad) is None


# ----------------------------------------------------------------------------- the filter

# deep-cell FSP distances: ids 1 and 3 tie at the smallest; 4 (null), 5 (NaN) and 6 (absent) have none
HAND = [{"id": 0, "fsp_deep_before_finetune": 3.0}, {"id": 1, "fsp_deep_before_finetune": 1.0},
        {"id": 2, "fsp_deep_before_finetune": 2.0}, {"id": 3, "fsp_deep_before_finetune": 1.0},
        {"id": 4, "fsp_deep_before_finetune": None}, {"id": 5, "fsp_deep_before_finetune": float("nan")},
        {"id": 6}]


@pytest.mark.parametrize(("keep", "kept"), [
    (0.1, {1}),  # ceil(0.7) = 1: the tie between 1 and 3 goes to the smaller id
    (0.2, {1, 3}),  # ceil(1.4) = 2
    (0.3, {1, 3, 2}),  # ceil(2.1) = 3
    (0.5, {1, 3, 2, 0}),  # ceil(3.5) = 4
    (1.0, {1, 3, 2, 0}),  # all 7 asked for: the 3 without a distance are still never kept
])
def test_the_keep_fraction(keep, kept):
    assert fsp_filter(FSPSearchConfig(keep=keep), HAND) == kept


@pytest.mark.parametrize(("threshold", "kept"), [(0.0, set()), (1.0, {1, 3}), (2.5, {1, 3, 2}), (9.0, {0, 1, 2, 3})])
def test_the_threshold(threshold, kept):
    assert fsp_filter(FSPSearchConfig(threshold=threshold), HAND) == kept


def test_no_filter_keeps_every_candidate():
    assert fsp_filter(FSPSearchConfig(), HAND) == set(range(7))
    # order of the records does not matter
    assert fsp_filter(FSPSearchConfig(keep=0.2), HAND[::-1]) == {1, 3}


# ----------------------------------------------------------------------------- the scorer


def _batches(n: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    data = load_dataset("digits", split="train").subset(range(n))
    return list(DeviceLoader(data, batch_size=8, device=CPU))


def test_the_scorer_before_and_after_finetuning(tiny_robnet):
    model = tiny_robnet().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batches = _batches()
    attack = parse_attack("pgd3:eps=0.1,step_size=0.05")
    before = ScoreContext("before_finetune", batches, attack, 11, CPU, 0)
    out = FSPScorer(FSPSearchConfig(proxy_batch=4))(model, before)
    direct = score(model, batches, before.attack_fn("fsp-attack"), seed=11)
    assert out["fsp_before_finetune"] == direct.fsp() and len(direct.fsp()) == 3
    assert out["fsp_rel_before_finetune"] == direct.fsp_rel()
    assert out["fsp_scale_before_finetune"] == direct.fsp_scale()
    assert out["fsp_strided_before_finetune"] == direct.fsp_strided()
    # cell 0 keeps its size (input and output 8x8): the alignment does not matter there
    assert direct.fsp_strided()[0] == direct.fsp()[0] and direct.fsp_strided()[1] != direct.fsp()[1]
    assert out["fsp_deep_before_finetune"] == direct.fsp()[-1]
    assert {k for k in out if k.startswith("proxy_")} == {"proxy_grad_norm", "proxy_synflow", "proxy_naswot"}
    assert out["seconds_fsp"] >= 0
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # the scorer changed nothing
    after = FSPScorer(FSPSearchConfig(proxies=()))(model, ScoreContext("after_finetune", batches, attack, 11, CPU, 0))
    assert after == {"fsp": direct.fsp(), "fsp_rel": direct.fsp_rel(), "fsp_scale": direct.fsp_scale(),
                     "fsp_strided": direct.fsp_strided(), "fsp_deep": direct.fsp()[-1]}
    quiet = FSPScorer(FSPSearchConfig(proxies=()))(model, before)
    assert not any(k.startswith("proxy_") for k in quiet) and quiet["fsp_before_finetune"] == direct.fsp()


# ----------------------------------------------------------------------------- end to end


def _per_cell(v) -> bool:
    return isinstance(v, list) and len(v) == LAYERS and all(_number(x) and x >= 0 for x in v)


def _seconds(v) -> bool:
    return _number(v) and v >= 0


def _proxy(v) -> bool:
    return v is None or _number(v)


PER_CELL = ("fsp", "fsp_rel", "fsp_scale", "fsp_strided")
FSP_SCHEMA = {
    **SCHEMA,
    **{f"{k}_before_finetune": Field(_per_cell, f"{LAYERS} per-cell distances") for k in PER_CELL},
    "fsp_deep_before_finetune": Field(lambda v: _number(v) and v >= 0, "a distance"),
    **{k: Field(_per_cell, f"{LAYERS} per-cell distances", required=False) for k in PER_CELL},
    "fsp_deep": Field(lambda v: _number(v) and v >= 0, "a distance", required=False),
    "seconds_fsp": Field(_seconds, "seconds"),
    **{f"proxy_{p}": Field(_proxy, "a proxy score or null") for p in ("grad_norm", "synflow", "naswot")},
    **{f"proxy_{p}_missing": Field(lambda v: isinstance(v, str), "why", required=False)
       for p in ("grad_norm", "synflow", "naswot")},
    **{f"seconds_{p}": Field(_seconds, "seconds") for p in ("grad_norm", "synflow", "naswot")},
}


@pytest.fixture(scope="module")
def fsp_run(tmp_path_factory) -> Path:
    """``fspkit search all`` with ``--fsp-keep 0.5`` on the tiny search."""
    run = tmp_path_factory.mktemp("fspkit") / "run"
    assert fspkit_main(["search", "all", *TINY, "--fsp-keep", "0.5", "--out", str(run)]) == 0
    return run


@pytest.mark.slow
def test_fspkit_search_records_validate_and_the_filter_keeps_the_smallest_half(fsp_run):
    records = _lines(fsp_run)
    assert [r["id"] for r in records] == list(range(N))
    for r in records:
        assert validate(r, FSP_SCHEMA) == [], r["id"]
        assert r["fsp_deep_before_finetune"] == deep_fsp(r["fsp_before_finetune"]) == r["fsp_before_finetune"][-1]
        assert ("fsp" in r) == (not r["filtered_out"])  # after-finetune distances only for finetuned candidates
        if "fsp" in r:
            assert r["fsp_deep"] == r["fsp"][-1]
    # by hand: the ceil(0.5 * 6) = 3 smallest deepest-cell distances are finetuned, the rest filtered out
    by_distance = sorted(records, key=lambda r: (r["fsp_before_finetune"][-1], r["id"]))
    assert {r["id"] for r in records if not r["filtered_out"]} == {r["id"] for r in by_distance[:3]}
    assert sum(r["filtered_out"] for r in records) == 3
    stored = json.loads((fsp_run / "search.json").read_text())
    assert stored["plugin"] == FSPSearchConfig(keep=0.5).plugin()
    from robnet.search.records import read_records

    assert read_records(fsp_run).records == records


@pytest.mark.slow
def test_fsp_lists_are_per_cell_in_network_order(fsp_run):
    """Rebuild one candidate's first pass (inherited weights, BN recalibrated as the search does) and
    score each cell on its own: the recorded list is cells.0, cells.1, cells.2 in that order."""
    sd = SearchDir.open(fsp_run, None, create=False, record=False)
    cfg = sd.config
    rec = _lines(fsp_run)[1]
    seed = results.derive_seed(cfg.seed, "candidate", rec["id"])
    model = sd.load_supernet(CPU).extract(Genotype.parse(rec["genotype"]))
    train, val = sd.split()
    loader = DeviceLoader(train, batch_size=cfg.eval_batch_size, device=CPU, shuffle=True)
    loader.seed = results.derive_seed(seed, "bn") % 2**31
    recalibrate_bn(model, loader, max_batches=cfg.bn_batches)
    assert cfg.eval_samples is not None
    batches = list(DeviceLoader(val.subset(range(cfg.eval_samples)), batch_size=cfg.eval_batch_size, device=CPU))
    ctx = ScoreContext("before_finetune", batches, parse_attack(cfg.eval_attack), seed, CPU, rec["id"])
    # the search hands the scorer the adversarial batches of its accuracy evaluation ("eval-attack")
    alone = [score(model, batches, ctx.attack_fn("eval-attack"), cells=[f"cells.{k}"], seed=seed).fsp()[0]
             for k in range(LAYERS)]
    assert rec["fsp_before_finetune"] == pytest.approx(alone, rel=1e-12)
    assert len(set(alone)) == LAYERS  # the order is visible


@pytest.mark.slow
def test_the_other_cli_cannot_continue_a_folder(fsp_run, tmp_path, capsys):
    run = tmp_path / "fsp"
    shutil.copytree(fsp_run, run)
    # robnet search would finetune without the FSP scorer and filter: refused
    assert robnet_main(["search", "finetune", "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"robnet search: error: {run} holds a search made by `fspkit search` (its settings: fspkit); "
                   f"this command cannot add them to the candidates. Hint: continue it with `fspkit search all --out "
                   f"{run}`")
    # a report is fine, and fspkit continues its own folder without repeating its flags
    assert robnet_main(["search", "report", str(run)]) == 0
    assert "(3 filtered out before finetuning)" in capsys.readouterr().out
    before = (run / "records.rank0.jsonl").read_bytes()
    assert fspkit_main(["search", "finetune", "--out", str(run), "--quiet"]) == 0
    assert (run / "records.rank0.jsonl").read_bytes() == before
    # another filter on the same folder is another search
    capsys.readouterr()
    assert fspkit_main(["search", "finetune", "--out", str(run), "--fsp-keep", "0.3"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a search made with other settings: fspkit.keep (0.5 in the " \
        "folder, 0.3 now)" in err


def test_fspkit_cannot_continue_a_robnet_folder(tmp_path, capsys):
    run = tmp_path / "robnet"
    assert robnet_main(["search", "sample", *TINY, "--out", str(run)]) == 0
    capsys.readouterr()
    assert fspkit_main(["search", "finetune", "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("fspkit search: error: this run folder was made by `robnet search` (no FSP scores): fspkit "
                   "cannot add them to a finished pass. Hint: use another --out for `fspkit search`")


def test_fspkit_search_bad_settings_are_one_line(tmp_path, capsys):
    assert fspkit_main(["search", "sample", *TINY, "--fsp-keep", "1.5", "--out", str(tmp_path / "a")]) == 1
    assert capsys.readouterr().err.strip() == "fspkit search: error: --fsp-keep must be a fraction in (0, 1], got 1.5"
    assert fspkit_main(["search", "sample", *TINY, "--fsp-keep", "0.5", "--fsp-threshold", "2", "--out",
                        str(tmp_path / "b")]) == 1
    assert capsys.readouterr().err.strip() == "fspkit search: error: give --fsp-keep or --fsp-threshold, not both"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

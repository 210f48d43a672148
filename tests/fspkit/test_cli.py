"""The fspkit command line (fspkit.cli): score and demo.

``fspkit score --attack`` speaks robnet's attack language and records the same attack schema as
``robnet eval``; outputs are checked before any compute; models that do not fit the data, NaN
weights, bad devices and bad attack settings are one line and exit 1; JSON is strict, with a
reason beside every missing value.
"""

import json
import math

import pytest
import torch

import robnet
from fspkit.cli import main as fspkit_main
from fspkit.cli.score import _mark_missing
from robnet.cli.app import main as robnet_main
from robnet.io import checkpoint
from tests._paths import SHARED_DATA


def tiny(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return robnet.build_model("robnet_large", C=4, layers=4, **kw)


def _strict(text):
    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _one_line(capsys, rc, *matches):
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 1, (rc, err)
    assert len(err.splitlines()) == 1 and err.startswith("fspkit score: error: "), err
    for m in matches:
        assert m in err, (m, err)
    return captured.out


# ----------------------------------------------------------------------------- moved from test_score


@pytest.fixture
def digits_ckpt(tmp_path):
    model = tiny(in_channels=1)
    path = tmp_path / "tiny.pt"
    checkpoint.save(path, model, arch={"name": "robnet_large", "C": 4, "layers": 4, "in_channels": 1})
    return path


def test_cli_score_digits_end_to_end(digits_ckpt, tmp_path, capsys):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    rc = fspkit_main(["score", str(digits_ckpt), "--data", "digits", "--samples", "40", "--batch-size", "16",
                      "--attack-steps", "3", "--eps", "8/255", "--json", str(out_json), "--csv", str(out_csv),
                      "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "cells.3" in text and "clean acc" in text
    report = json.loads(out_json.read_text())
    assert report["n"] == 40
    assert report["attack"]["name"] == "pgd" and report["attack"]["steps"] == 3
    assert report["attack"]["eps"] == pytest.approx(8 / 255)
    assert [c["name"] for c in report["cells"]] == [f"cells.{i}" for i in range(4)]
    assert set(report["cells"][0]) >= {"name", "depth", "c_in", "c_out", "hw", "fsp_mean", "fsp_std"}
    assert 0 <= report["adv_acc"] <= 1 and 0 <= report["clean_acc"] <= 1
    rows = out_csv.read_text().splitlines()
    assert rows[0].startswith("name,depth,c_in,c_out,hw,fsp_mean,fsp_std") and len(rows) == 5
    # deterministic: the same command gives the same numbers
    fspkit_main(["score", str(digits_ckpt), "--data", "digits", "--n", "40", "--batch-size", "16",
                 "--attack-steps", "3", "--json", str(tmp_path / "r2.json"), "--quiet"])
    again = json.loads((tmp_path / "r2.json").read_text())
    assert again["cells"] == report["cells"]


def test_cli_attack_none_and_shuffle(digits_ckpt, tmp_path):
    out = tmp_path / "n.json"
    assert fspkit_main(["score", str(digits_ckpt), "--data", "digits", "--n", "20", "--attack", "none",
                        "--shuffle", "--seed", "3", "--json", str(out), "--quiet", "--cells", "cells.[01]"]) == 0
    report = json.loads(out.read_text())
    assert [c["fsp_mean"] for c in report["cells"]] == [0.0, 0.0]
    assert report["clean_acc"] == report["adv_acc"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["score", "{missing}", "--data", "digits"], "checkpoint not found"),
        (["score", "{ckpt}", "--data", "digits", "--n", "100000"], "larger than the digits test split"),
        (["score", "{ckpt}", "--data", "digits", "--cells", "cell.1"], "cells.1"),
        (["score", "{ckpt}", "--data", "cifar10", "--data-dir", "{tmp}"], "CIFAR-10 not found"),
        (["score", "{ckpt}", "--data", "digits", "--eps", "eight"], "eight"),
        (["score", "{ckpt}", "--data", "digits", "--samples", "0"], "--samples must be >= 1"),
    ],
)
def test_cli_errors_one_line_exit_1(args, match, digits_ckpt, tmp_path, capsys):
    fill = {"missing": str(tmp_path / "nope.pt"), "ckpt": str(digits_ckpt), "tmp": str(tmp_path)}
    rc = fspkit_main([a.format(**fill) for a in args] + ["--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert len(err.splitlines()) == 1 and err.startswith("fspkit score: error:")
    assert match in err


def test_cli_wrong_architecture(tmp_path, capsys):
    path = tmp_path / "official.pt"
    torch.save({"state_dict": tiny().state_dict()}, path)
    rc = fspkit_main(["score", str(path), "--data", "digits", "--arch", "robnet_free", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "does not match" in err
    rc = fspkit_main(["score", str(path), "--data", "digits", "--quiet"])
    assert rc == 1 and "--arch" in capsys.readouterr().err


@pytest.mark.realdata
def test_score_small_checkpoint_on_real_cifar10(tmp_path):

    real = SHARED_DATA
    if not (real / "cifar-10-batches-py").is_dir():
        pytest.skip(f"real CIFAR-10 not found at {real / 'cifar-10-batches-py'}")
    torch.manual_seed(0)
    model = robnet.build_model("robnet_large", C=4, layers=4)
    path = tmp_path / "small.pt"
    checkpoint.save(path, model, arch={"name": "robnet_large", "C": 4, "layers": 4})
    out = tmp_path / "cifar.json"
    rc = fspkit_main(["score", str(path), "--data", "cifar10", "--data-dir", str(real), "--n", "256",
                      "--batch-size", "128", "--attack-steps", "5", "--json", str(out), "--quiet"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert report["n"] == 256 and report["dataset"] == "cifar10" and report["split"] == "test"
    assert [c["hw"] for c in report["cells"]] == [[32, 32], [16, 16], [8, 8], [8, 8]]
    assert all(c["fsp_mean"] > 0 and math.isfinite(c["fsp_mean"]) for c in report["cells"])
    assert report["adv_acc"] <= report["clean_acc"]


@pytest.mark.slow
def test_cli_without_command_prints_short_help_like_robnet(monkeypatch, capsys):
    """Before: a bare `fspkit` started a 4-minute study; now both tools print a short help naming the demo."""
    import fspkit.cli.app

    seen = []
    monkeypatch.setattr(fspkit.cli.app, "cmd_demo", lambda args: seen.append(args) or 0)
    assert fspkit_main([]) == 0
    assert seen == [] and "Try first:  fspkit demo" in capsys.readouterr().out
    assert fspkit_main(["demo", "--help"]) == 0
    assert "--out" in capsys.readouterr().out
    assert fspkit_main(["--help"]) == 0
    assert "score" in capsys.readouterr().out


# ----------------------------------------------------------------------------- one attack language


def _score(ckpt, *extra):
    return fspkit_main(["score", str(ckpt), "--data", "digits", "--n", "16", "--batch-size", "16", "--quiet",
                        *map(str, extra)])


def test_attack_spec_acceptance_and_same_schema_as_robnet_eval(digits_ckpt, tmp_path):
    """Issue 7's acceptance: `fspkit score CKPT --data digits --attack pgd5:eps=0.1` works and records the
    attack as robnet eval does (asdict(AttackConfig) + spec)."""
    out = tmp_path / "s.json"
    assert _score(digits_ckpt, "--attack", "pgd5:eps=0.1", "--json", out) == 0
    fsp = _strict(out.read_text())
    ev_out = tmp_path / "e.json"
    assert robnet_main(["eval", str(digits_ckpt), "--data", "digits", "--subset", "16", "--attacks", "pgd5:eps=0.1",
                        "--json", str(ev_out), "--quiet", "--no-masking-checks"]) == 0
    ev = _strict(ev_out.read_text())
    assert fsp["attack"] == ev["results"][0]["attack"]
    assert fsp["attack"]["spec"] == "pgd5:eps=0.1" and fsp["attack"]["steps"] == 5
    assert {"versions", "device", "seed", "deterministic", "created", "settings"} <= set(fsp)
    assert {"fspkit", "robnet", "torch"} <= set(fsp["versions"])
    assert fsp["settings"]["attack"] == "pgd5:eps=0.1" and fsp["amp"] is False and fsp["precision"] == "float32"
    # same attack, same seed: the robust accuracy agrees between the two tools
    assert fsp["adv_acc"] == ev["results"][0]["accuracy"]


@pytest.mark.parametrize(("args", "spec"), [
    ([], "pgd20"),
    (["--attack", "fgsm"], "fgsm"),
    (["--attack", "none"], "clean"),
    (["--attack", "pgd20:eps=4/255,step_size=1/255"], f"pgd20:eps={4 / 255!r},step_size={1 / 255!r}"),
    (["--attack", "pgd", "--attack-steps", "3", "--eps", "4/255"], f"pgd3:eps={4 / 255!r}"),
    (["--eps", "8/255", "--attack-steps", "3", "--step-size", "1/255"], f"pgd3:step_size={1 / 255!r}"),
    (["--attack", "fgsm", "--eps", "0.1"], "fgsm:eps=0.1,step_size=0.1"),
    (["--attack", "pgd7:random_start=false", "--eps", "0.1"], "pgd7:eps=0.1,random_start=false"),
])
def test_attack_flags(args, spec, digits_ckpt, tmp_path):
    """The old --eps/--steps/--step-size still work, as shorthands over the spec's fields."""
    out = tmp_path / "s.json"
    assert _score(digits_ckpt, *args, "--json", out) == 0
    assert _strict(out.read_text())["attack"]["spec"] == spec


@pytest.mark.parametrize(("args", "match"), [
    (["--attack", "pgd20:eps=4/255", "--eps", "8/255"],
     "--eps and --attack pgd20:eps=4/255 both set eps: give it once"),
    (["--attack", "none", "--attack-steps", "3"],
     "--attack-steps set a gradient attack's settings, but --attack none runs no attack"),
    (["--attack", "pgdd"], "parse_attack: unknown attack 'pgdd'"),
    (["--eps", "8"], "eps 8.0 is above 1, larger than the whole [0, 1] pixel range"),
    (["--attack", "pgd20:eps=2"], "is above 1"),
])
def test_bad_attack_flags(args, match, digits_ckpt, capsys):
    _one_line(capsys, _score(digits_ckpt, *args), match)


# ----------------------------------------------------------------------------- 8.6 outputs before compute


def test_outputs_checked_before_any_compute(digits_ckpt, tmp_path, capsys, monkeypatch):
    import importlib

    def no_compute(*a, **k):
        raise AssertionError("scored before the outputs were checked")

    # fspkit re-exports the function `score`, which hides the module of the same name
    monkeypatch.setattr(importlib.import_module("fspkit.score"), "score", no_compute)
    before = digits_ckpt.read_bytes()
    for flag in ("--json", "--csv"):
        for target, match in ((tmp_path / "no" / "x", "does not exist"), (tmp_path, "is a folder"),
                              (digits_ckpt, "refusing to write over an input")):
            assert _one_line(capsys, _score(digits_ckpt, flag, target), f"{flag} {target}", match) == ""
    same = tmp_path / "both"
    _one_line(capsys, _score(digits_ckpt, "--json", same, "--csv", same),
              f"--json and --csv both name {same}: give each output its own file")
    assert digits_ckpt.read_bytes() == before


def test_unwritable_output_is_refused(digits_ckpt, tmp_path, capsys, monkeypatch):
    import robnet.io.results

    real = robnet.io.results.os.access
    monkeypatch.setattr(robnet.io.results.os, "access", lambda p, mode: False if str(p) == str(tmp_path) else
                        real(p, mode))
    _one_line(capsys, _score(digits_ckpt, "--json", tmp_path / "r.json"), f"folder {tmp_path} is not writable")


# ----------------------------------------------------------------------------- 8.8 / 8.9 / 8.10 / 8.12


def test_nan_weights_refused(tmp_path, capsys):
    model = tiny(in_channels=1)
    with torch.no_grad():
        model.classifier.bias[3] = math.nan
    path = tmp_path / "nan.pt"
    checkpoint.save(path, model, arch={"name": "robnet_large", "C": 4, "layers": 4, "in_channels": 1})
    _one_line(capsys, _score(path), f"{path} has non-finite weights: 1 of", "(first: classifier.bias)")


@pytest.mark.parametrize(("classes", "match"), [
    (100, "has 100 outputs but digits has 10 classes: wrong --data for this checkpoint? Hint: --allow-more-classes"),
    (5, "has 5 outputs but digits has 10 classes: labels 5..9 can never be predicted"),
])
def test_class_count_mismatch(classes, match, tmp_path, capsys):
    path = tmp_path / "c.pt"
    checkpoint.save(path, tiny(in_channels=1, num_classes=classes),
                    arch={"name": "robnet_large", "C": 4, "layers": 4, "in_channels": 1, "num_classes": classes})
    _one_line(capsys, _score(path), match)
    if classes == 100:
        assert _score(path, "--allow-more-classes", "--attack-steps", "1") == 0


def test_amp_is_opt_in_and_recorded(digits_ckpt, tmp_path, capsys):
    out = tmp_path / "a.json"
    assert _score(digits_ckpt, "--amp", "--attack-steps", "2", "--json", out) == 0
    assert "warning: attacks ran under bf16 autocast" in capsys.readouterr().out
    rec = _strict(out.read_text())
    assert rec["amp"] is True and rec["precision"] == "bfloat16" and rec["settings"]["amp"] is True


@pytest.mark.parametrize(("args", "match"), [
    (["--device", "tpu"], "device 'tpu' is not a device torch knows"),
    (["--device", "meta"], "robnet runs on cpu, cuda, mps, not meta"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (["--workers", "-1"], "--workers must be >= 0, got -1"),
])
def test_one_line_errors(args, match, digits_ckpt, capsys):
    _one_line(capsys, _score(digits_ckpt, *args), match)


def test_channels_check_is_shared_with_robnet_eval(tmp_path, capsys):
    path = tmp_path / "rgb.pt"
    checkpoint.save(path, tiny(), arch={"name": "robnet_large", "C": 4, "layers": 4})
    _one_line(capsys, _score(path), f"{path} expects 3-channel images but digits has 1: wrong --data")


def test_missing_values_become_null_with_a_reason():
    rec = _mark_missing({"n": 3, "fsp_deep_mean": math.inf,
                         "cells": [{"fsp_mean": 1.5, "fsp_rel_mean": math.nan, "fsp_rel_std": math.nan}]})
    assert rec["fsp_deep_mean"] is None and "overflowed" in rec["fsp_deep_mean_missing"]
    cell = rec["cells"][0]
    assert cell["fsp_mean"] == 1.5 and "fsp_mean_missing" not in cell
    assert cell["fsp_rel_mean"] is None and "clean FSP matrix is exactly zero" in cell["fsp_rel_mean_missing"]
    assert cell["fsp_rel_std"] is None and cell["fsp_rel_std_missing"]

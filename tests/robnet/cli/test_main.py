"""The robnet command line (robnet.cli.app): demo, models, train, eval.

Each reliability item that reaches ``robnet eval`` has a test that reproduces it: output
paths checked before any compute (8.6), non-finite models and empty selections refused, strict
JSON (8.8), model/data class counts (8.9), float32 attacks by default with ``--amp`` recorded
(8.10), one-line errors for bad devices, channels, transfer sources, radii and attack lists, and
masking checks at the attacks' radius (8.12).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

import robnet
import robnet.cli.app
from robnet.attacks.evaluation import evaluate
from robnet.attacks.spec import parse_attack
from robnet.cli.app import main as robnet_main
from robnet.io import checkpoint


def _save(path: Path, model: torch.nn.Module, **arch: Any) -> Path:
    checkpoint.save(path, model, arch={"name": "robnet_large", "C": 4, "layers": 3, **arch})
    return path


def _digits_model(seed: int = 0, num_classes: int = 10, in_channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return robnet.build_model("robnet_large", C=4, layers=3, in_channels=in_channels, num_classes=num_classes)


@pytest.fixture
def digits_ckpt(tmp_path: Path) -> Path:
    return _save(tmp_path / "m.pt", _digits_model(), in_channels=1)


def _strict(text: str) -> Any:
    """json.loads that refuses NaN/Infinity (Python's json accepts them by default)."""
    def refuse(name: str) -> Any:
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def _one_line_error(capsys: pytest.CaptureFixture[str], rc: int, *matches: str, prog: str = "robnet eval") -> str:
    """Assert exit 1 and exactly one stderr line holding every match; return stdout."""
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert rc == 1, (rc, err)
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error: "), err
    for match in matches:
        assert match in err, (match, err)
    return captured.out


EVAL = ["eval", "{ckpt}", "--data", "digits", "--subset", "16", "--batch-size", "16", "--attacks", "clean,fgsm:eps=0.1",
        "--quiet"]


def _eval(ckpt: Path, *extra: str) -> int:
    return robnet_main([a.format(ckpt=ckpt) for a in EVAL] + list(extra))


# ----------------------------------------------------------------------------- moved from test_evaluate


def test_robnet_eval_cli_json(digits_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    rc = robnet_main(["eval", str(digits_ckpt), "--data", "digits", "--subset", "40", "--attacks",
                      "clean,fgsm:eps=0.1,pgd5:eps=0.1,mifgsm:eps=0.1,deepfool", "--batch-size", "20",
                      "--json", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "clean" in text and "pgd5:eps=0.1" in text and "attacks in float32" in text
    report = _strict(out.read_text())
    assert report["n"] == 40 and report["seed"] == 0 and report["device"] == "cpu"
    assert report["dataset"] == "digits" and report["split"] == "test"
    assert {"torch", "robnet", "numpy", "python"} <= set(report["versions"])
    names = [r["name"] for r in report["results"]]
    assert names == ["clean", "fgsm:eps=0.1", "pgd5:eps=0.1", "mifgsm:eps=0.1", "deepfool"]
    pgd = report["results"][2]
    assert pgd["attack"]["steps"] == 5 and pgd["attack"]["eps"] == pytest.approx(0.1)
    assert pgd["n"] == 40 and 0 <= pgd["ci95"][0] <= pgd["accuracy"] <= pgd["ci95"][1] <= 1
    assert isinstance(report["warnings"], list)
    # one record schema: the provenance block, the attack as asdict + its spec, the precision
    assert {"versions", "device", "seed", "deterministic", "created", "settings"} <= set(report)
    assert report["settings"]["attacks"] == names and report["settings"]["samples"] == 40
    assert pgd["attack"] == {**{k: v for k, v in pgd["attack"].items() if k != "spec"}, "spec": "pgd5:eps=0.1"}
    assert report["amp"] is False and report["precision"] == "float32"
    # masking checks at the attacks' radius (8.12: they used 8/255 whatever the attacks used)
    assert {k: report["masking_checks"][k] for k in ("ran", "eps", "step_size")} == {
        "ran": True, "eps": pytest.approx(0.1), "step_size": pytest.approx(2 / 255)}
    assert report["argv"][:2] == ["eval", str(digits_ckpt)]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["eval", "{missing}", "--data", "digits"], "checkpoint not found"),
        (["eval", "{ckpt}", "--data", "digits", "--attacks", "pgdd"], "unknown attack"),
        (["eval", "{ckpt}", "--data", "digits", "--subset", "1000"], "larger than the test split"),
        (["train", "--data", "digits", "--out", "{tmp}/r", "--arch", "robnet_smal"],
         "unknown architecture 'robnet_smal'"),
    ],
)
def test_robnet_cli_errors(args: list[str], match: str, digits_ckpt: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    fill = {"missing": str(tmp_path / "none.pt"), "ckpt": str(digits_ckpt), "tmp": str(tmp_path)}
    rc = robnet_main([a.format(**fill) for a in args] + ["--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and match in err


def test_robnet_models_lists_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    assert robnet_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "robnet_large" in out and "6,842,710" in out and "36,479,194" in out


def _tiny_imagenet(root: Path, n_per_class: int = 3, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A Tiny-ImageNet layout (val split) of random PNGs; returns the images as an in-memory array."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    wnids = ["n01", "n02"]
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    g = torch.Generator().manual_seed(0)
    rows, images, labels = [], [], []
    for k in range(n_per_class * len(wnids)):
        img = torch.randint(0, 256, (size, size, 3), generator=g, dtype=torch.uint8)
        name = f"val_{k}.png"
        Image.fromarray(img.numpy()).save(base / "val" / "images" / name)
        rows.append(f"{name}\t{wnids[k % 2]}\t0\t0\t{size}\t{size}")
        images.append(img.permute(2, 0, 1))
        labels.append(k % 2)
    (base / "val" / "val_annotations.txt").write_text("\n".join(rows) + "\n")
    for wnid in wnids:  # one training image per class
        (base / "train" / wnid / "images").mkdir(parents=True)
        Image.fromarray(images[0].permute(1, 2, 0).numpy()).save(base / "train" / wnid / "images" / f"{wnid}_0.png")
    return torch.stack(images), torch.tensor(labels)


def test_streamed_folder_dataset_eval_equals_in_memory(tmp_path: Path) -> None:
    from robnet.data.datasets import ArrayDataset

    images, labels = _tiny_imagenet(tmp_path)
    torch.manual_seed(0)
    model = robnet.build_model("robnet_large", C=4, layers=3, num_classes=2)
    path = tmp_path / "tiny.pt"
    checkpoint.save(path, model, arch={"name": "robnet_large", "C": 4, "layers": 3, "num_classes": 2})
    out = tmp_path / "eval.json"
    rc = robnet_main(["eval", str(path), "--data", "tinyimagenet", "--data-dir", str(tmp_path), "--split", "val",
                      "--attacks", "clean,fgsm", "--batch-size", "4", "--workers", "0", "--subset", "5",
                      "--json", str(out), "--quiet", "--no-masking-checks"])
    assert rc == 0
    streamed = _strict(out.read_text())
    memory = ArrayDataset(name="t", split="val", images=images[:5], labels=labels[:5], classes=("n01", "n02"))
    ref = evaluate(model.eval(), memory, [("clean", parse_attack("clean")), ("fgsm", parse_attack("fgsm"))],
                   batch_size=4, progress=False, masking_checks=False)
    assert [r["correct"] for r in streamed["results"]] == [r.correct for r in ref.results]
    assert streamed["n"] == 5
    assert streamed["masking_checks"]["ran"] is False
    # fspkit score streams the same folder
    from fspkit.cli import main as fspkit_main

    fsp_json = tmp_path / "fsp.json"
    assert fspkit_main(["score", str(path), "--data", "tinyimagenet", "--data-dir", str(tmp_path), "--split", "val",
                        "--n", "6", "--steps", "2", "--workers", "0", "--json", str(fsp_json), "--quiet"]) == 0
    assert _strict(fsp_json.read_text())["n"] == 6


def test_training_refuses_a_streamed_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tiny_imagenet(tmp_path)
    rc = robnet_main(["train", "--data", "tinyimagenet", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"),
                      "--quiet"])
    assert rc == 1 and "streamed folder dataset" in capsys.readouterr().err


@pytest.mark.slow
def test_robnet_demo_runs_on_digits(capsys: pytest.CaptureFixture[str]) -> None:
    assert robnet_main(["demo", "--epochs", "1"]) == 0
    captured = capsys.readouterr()
    out = captured.out + captured.err  # the epoch line is a log line (stderr), hidden by --quiet
    assert "sep-convs/cell 7" in out and "epoch 1" in out and "digits test set, eps 0.1 (n=360)" in out
    assert out.count("epoch 1") == 1  # printed once


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_request_without_cuda_is_one_clear_line(digits_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = robnet_main(["eval", str(digits_ckpt), "--data", "digits", "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "CUDA is not available" in err


# ----------------------------------------------------------------------------- no arguments, usage errors


def test_no_arguments_print_a_short_help_naming_the_demo(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(robnet.cli.app, "cmd_demo", lambda args: seen.append(args) or 0)
    assert robnet_main([]) == 0
    out = capsys.readouterr().out
    assert seen == [] and "fspkit demo" in out and "robnet --help" in out  # nothing starts: help, exit 0


def test_usage_errors_exit_2_and_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert robnet_main(["eval"]) == 2  # missing checkpoint
    assert "the following arguments are required: checkpoint" in capsys.readouterr().err
    assert robnet_main(["eval", "x.pt", "--subset", "ten"]) == 2
    assert robnet_main(["frobnicate"]) == 2
    assert robnet_main(["eval", "--help"]) == 0
    assert "--allow-more-classes" in capsys.readouterr().out


# ----------------------------------------------------------------------------- 8.6 output paths


def test_json_output_is_checked_before_any_compute(digits_ckpt: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the whole evaluation ran, then the write failed; --json CKPT overwrote the checkpoint, rc 0."""
    import robnet.attacks.evaluation

    def no_compute(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("evaluate() ran before the output path was checked")

    monkeypatch.setattr(robnet.attacks.evaluation, "evaluate", no_compute)
    before = digits_ckpt.read_bytes()
    cases = [
        (str(tmp_path / "missing" / "r.json"), "does not exist"),
        (str(tmp_path), "is a folder: give a file name"),
        (str(digits_ckpt), "is the input file"),
    ]
    for target, match in cases:
        out = _one_line_error(capsys, _eval(digits_ckpt, "--json", target), f"--json {target}", match)
        assert out == ""  # nothing was evaluated or printed
    _one_line_error(capsys, _eval(digits_ckpt, "--json", str(digits_ckpt)), "refusing to write over an input")
    assert digits_ckpt.read_bytes() == before
    source = _save(tmp_path / "src.pt", _digits_model(seed=1), in_channels=1)
    _one_line_error(capsys, _eval(digits_ckpt, "--transfer-from", str(source), "--json", str(source)),
                    "is the input file")


def test_json_output_into_an_unwritable_folder(digits_ckpt: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable, the check cannot fail here")
        _one_line_error(capsys, _eval(digits_ckpt, "--json", str(locked / "r.json")), "is not writable")
    finally:
        locked.chmod(0o700)


def test_json_output_into_an_unwritable_folder_simulated(digits_ckpt: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same refusal where the suite runs as root (os.access reports the folder read-only)."""
    import robnet.io.results

    real = robnet.io.results.os.access
    monkeypatch.setattr(robnet.io.results.os, "access", lambda p, mode: False if str(p) == str(tmp_path / "ro") else
                        real(p, mode))
    (tmp_path / "ro").mkdir()
    _one_line_error(capsys, _eval(digits_ckpt, "--json", str(tmp_path / "ro" / "r.json")),
                    f"--json {tmp_path}/ro/r.json: folder {tmp_path}/ro is not writable")


# ----------------------------------------------------------------------------- 8.8 non-finite and empty


def test_nan_weight_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: evaluated to 9.38% with rc 0 and silent masking checks."""
    model = _digits_model()
    with torch.no_grad():
        model.classifier.weight[0, 0] = math.nan
    path = _save(tmp_path / "nan.pt", model, in_channels=1)
    _one_line_error(capsys, _eval(path), "model has non-finite weights: 1 of ", "(first: classifier.weight)",
                    "Hint: the checkpoint comes from a diverged run")


def test_empty_selections_are_refused(digits_ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: --subset 0 printed `nan [0.0, 100.0]` with rc 0."""
    _one_line_error(capsys, _eval(digits_ckpt, "--samples", "0"), "--samples must be >= 1, got 0")
    _one_line_error(capsys, _eval(digits_ckpt, "--subset", "0"), "--samples must be >= 1, got 0")  # the old spelling
    _one_line_error(capsys, _eval(digits_ckpt, "--batch-size", "0"), "--batch-size must be >= 1, got 0")


def test_json_is_strict(digits_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert _eval(digits_ckpt, "--json", str(out)) == 0
    text = out.read_text()
    assert "NaN" not in text and "Infinity" not in text
    _strict(text)


# ----------------------------------------------------------------------------- 8.9 class counts


@pytest.mark.parametrize(("classes", "match"), [
    (100, "model has 100 outputs but digits has 10 classes: wrong --data for this checkpoint? "
          "Hint: --allow-more-classes"),
    (5, "model has 5 outputs but digits has 10 classes: labels 5..9 can never be predicted"),
])
def test_class_count_mismatch_is_refused(classes: int, match: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a 100-class model reported 0% with rc 0; a 5-class one crashed under attack (IndexError)."""
    path = _save(tmp_path / f"c{classes}.pt", _digits_model(num_classes=classes), in_channels=1, num_classes=classes)
    _one_line_error(capsys, _eval(path), match)


def test_allow_more_classes_accepts_a_wider_model_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wide = _save(tmp_path / "c12.pt", _digits_model(num_classes=12), in_channels=1, num_classes=12)
    out = tmp_path / "r.json"
    assert _eval(wide, "--allow-more-classes", "--json", str(out)) == 0
    assert _strict(out.read_text())["settings"]["allow_more_classes"] is True
    narrow = _save(tmp_path / "c5.pt", _digits_model(num_classes=5), in_channels=1, num_classes=5)
    _one_line_error(capsys, _eval(narrow, "--allow-more-classes"), "5 outputs but digits has 10 classes")


# ----------------------------------------------------------------------------- 8.10 precision


def test_attacks_run_in_float32_unless_amp(digits_ckpt: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "amp.json"
    assert _eval(digits_ckpt, "--amp", "--json", str(out)) == 0
    printed = capsys.readouterr().out
    assert "attacks in bf16 autocast (--amp)" in printed
    assert "warning: attacks ran under bf16 autocast (amp): bf16 can mask gradients" in printed
    report = _strict(out.read_text())
    assert report["amp"] is True and report["precision"] == "bfloat16" and report["settings"]["amp"] is True
    assert any("bf16 autocast" in w for w in report["warnings"])


# ----------------------------------------------------------------------------- 8.12 one line, not a traceback


@pytest.mark.parametrize(("device", "match"), [
    ("tpu", "device 'tpu' is not a device torch knows. Hint: --device cpu, cuda, cuda:N or mps"),
    ("meta", "device 'meta': robnet runs on cpu, cuda, mps, not meta"),
])
def test_unsupported_devices_are_one_line(device: str, match: str, digits_ckpt: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, _eval(digits_ckpt, "--device", device), match)


def test_wrong_number_of_input_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rgb = _save(tmp_path / "rgb.pt", _digits_model(in_channels=3), in_channels=3)
    _one_line_error(capsys, _eval(rgb), "model expects 3-channel images but digits has 1: wrong --data")


@pytest.mark.parametrize("classes", [5, 100])
def test_transfer_source_with_another_class_count(classes: int, digits_ckpt: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    src = _save(tmp_path / "src.pt", _digits_model(num_classes=classes), in_channels=1, num_classes=classes)
    _one_line_error(capsys, _eval(digits_ckpt, "--transfer-from", str(src)),
                    f"transfer source has {classes} outputs but digits has 10 classes")


@pytest.mark.parametrize(("attacks", "match"), [
    (",", "attack list ',' has an empty item"),
    ("clean,,fgsm", "has an empty item"),
    ("pgd20:eps=8", "AttackConfig(pgd): eps 8.0 is above 1, larger than the whole [0, 1] pixel range"),
    ("fgsm,fgsm", "names 'fgsm' twice"),
])
def test_bad_attack_lists_are_refused(attacks: str, match: str, digits_ckpt: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _one_line_error(capsys, robnet_main(["eval", str(digits_ckpt), "--data", "digits", "--attacks", attacks]),
                    match)


def test_attack_with_several_overrides_in_the_list(digits_ckpt: Path, tmp_path: Path) -> None:
    """Before: the list was split at every comma, so 'pgd5:eps=0.1,step_size=0.05' failed."""
    out = tmp_path / "r.json"
    assert robnet_main(["eval", str(digits_ckpt), "--data", "digits", "--subset", "16", "--attacks",
                        "clean,pgd3:eps=0.1,step_size=0.05,fgsm:eps=0.05", "--json", str(out), "--quiet"]) == 0
    report = _strict(out.read_text())
    assert [r["name"] for r in report["results"]] == ["clean", "pgd3:eps=0.1,step_size=0.05", "fgsm:eps=0.05"]
    assert report["results"][1]["attack"]["step_size"] == 0.05
    assert report["masking_checks"]["eps"] == pytest.approx(0.1)
    assert report["masking_checks"]["step_size"] == pytest.approx(0.05)

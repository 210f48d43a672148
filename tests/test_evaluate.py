import json

import pytest
import torch
from torch import nn

import robnet
from robnet import checkpoint
from robnet.attack_spec import parse_attack
from robnet.cli import main as robnet_main
from robnet.data import load_dataset
from robnet.evaluate import evaluate, gradient_masking_checks, wilson_interval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _digits_model(seed=0):
    torch.manual_seed(seed)
    return robnet.build_model("robnet_large", C=4, layers=3, in_channels=1)


def test_evaluate_counts_match_a_manual_loop():
    model = _digits_model().eval()
    data = load_dataset("digits", split="test").subset(range(50))
    attacks = [("clean", parse_attack("clean")), ("fgsm", parse_attack("fgsm:eps=0.1"))]
    report = evaluate(model, data, attacks, batch_size=16, progress=False, masking_checks=False)
    x = data.images.float() / 255
    with torch.no_grad():
        clean = int((model(x).argmax(1) == data.labels).sum())
    from robnet.attacks import fgsm

    x_adv = fgsm(model, x, data.labels, eps=0.1)
    with torch.no_grad():
        adv = int((model(x_adv).argmax(1) == data.labels).sum())
    assert [r.correct for r in report.results] == [clean, adv]
    assert report.n == 50 and [r.n for r in report.results] == [50, 50]
    assert report.results[1].config["eps"] == pytest.approx(0.1)


def test_evaluate_restores_mode_and_transfer_with_self_equals_white_box():
    model = _digits_model()
    model.train()
    data = load_dataset("digits", split="test").subset(range(30))
    attacks = [("fgsm", parse_attack("fgsm:eps=0.1"))]
    white = evaluate(model, data, attacks, batch_size=30, progress=False, masking_checks=False)
    assert model.training
    other = _digits_model(seed=1)
    transfer = evaluate(model, data, attacks, batch_size=30, progress=False, source=model, transfer_from="self")
    assert transfer.results[0].correct == white.results[0].correct
    black = evaluate(model, data, attacks, batch_size=30, progress=False, source=other, transfer_from="other")
    assert black.transfer_from == "other" and black.to_dict()["transfer_from"] == "other"


class SoftmaxOut(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x) * 50, dim=1)


class Quantized(nn.Module):
    """Rounds its input: zero gradient almost everywhere (a classic masking defence)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 4) / 4)


def test_gradient_masking_checks_flag_known_cases():
    data = load_dataset("digits", split="test").subset(range(32))
    x, y = data.images.float() / 255, data.labels
    base = _digits_model().eval()
    probs = gradient_masking_checks(SoftmaxOut(base), x, y)
    assert any("look like probabilities" in w for w in probs)
    zero = gradient_masking_checks(Quantized(base), x, y)
    assert any("exactly zero input gradient" in w for w in zero)


@pytest.fixture
def digits_ckpt(tmp_path):
    path = tmp_path / "m.pt"
    checkpoint.save(path, _digits_model(), arch={"name": "robnet_large", "C": 4, "layers": 3, "in_channels": 1})
    return path


def test_robnet_eval_cli_json(digits_ckpt, tmp_path, capsys):
    out = tmp_path / "eval.json"
    rc = robnet_main(["eval", str(digits_ckpt), "--data", "digits", "--subset", "40", "--attacks",
                      "clean,fgsm:eps=0.1,pgd5:eps=0.1,mifgsm:eps=0.1,deepfool", "--batch-size", "20",
                      "--json", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "clean" in text and "pgd5:eps=0.1" in text
    report = json.loads(out.read_text())
    assert report["n"] == 40 and report["seed"] == 0 and report["device"] == "cpu"
    assert report["dataset"] == "digits" and report["split"] == "test"
    assert {"torch", "robnet", "numpy", "python"} <= set(report["versions"])
    names = [r["name"] for r in report["results"]]
    assert names == ["clean", "fgsm:eps=0.1", "pgd5:eps=0.1", "mifgsm:eps=0.1", "deepfool"]
    pgd = report["results"][2]
    assert pgd["attack"]["steps"] == 5 and pgd["attack"]["eps"] == pytest.approx(0.1)
    assert pgd["n"] == 40 and 0 <= pgd["ci95"][0] <= pgd["accuracy"] <= pgd["ci95"][1] <= 1
    assert isinstance(report["warnings"], list)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["eval", "{missing}", "--data", "digits"], "checkpoint not found"),
        (["eval", "{ckpt}", "--data", "digits", "--attacks", "pgdd"], "unknown attack"),
        (["eval", "{ckpt}", "--data", "digits", "--subset", "1000"], "larger than the test split"),
        (["train", "--data", "digits", "--out", "{tmp}/r", "--model", "robnet_smal"], "unknown model"),
    ],
)
def test_robnet_cli_errors(args, match, digits_ckpt, tmp_path, capsys):
    fill = {"missing": str(tmp_path / "none.pt"), "ckpt": str(digits_ckpt), "tmp": str(tmp_path)}
    rc = robnet_main([a.format(**fill) for a in args] + ["--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and match in err


def test_robnet_train_cli_and_resume(tmp_path, capsys):
    args = ["train", "--model", "robnet_large", "--C", "4", "--layers", "3", "--data", "digits", "--subset", "96",
            "--batch-size", "32", "--warmup-epochs", "0", "--attack-steps", "1", "--val-size", "32",
            "--val-attack-steps", "1", "--eps", "0.1", "--step-size", "0.05", "--out", str(tmp_path / "run"),
            "--quiet"]
    assert robnet_main([*args, "--epochs", "2", "--tensorboard"]) == 0
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    _, meta = checkpoint.load(tmp_path / "run" / "last.pt")
    assert meta["epoch"] == 1 and meta["dataset"] == "digits"
    assert meta["train_config"]["cutout"] == 16  # robnet_large uses Cutout 16 by default
    assert robnet_main([*args, "--epochs", "2", "--resume"]) == 0  # nothing left to do
    assert "done" in capsys.readouterr().out


def test_robnet_models_lists_the_zoo(capsys):
    assert robnet_main(["models"]) == 0
    out = capsys.readouterr().out
    assert "robnet_large" in out and "6,842,710" in out and "36,479,194" in out


def test_consistency_warning_only_beyond_the_margin():
    from robnet.evaluate import AttackResult, _consistency_warnings

    def res(name, correct):
        return AttackResult(name=name, config={}, correct=correct, n=1000, seconds=0.0)

    assert _consistency_warnings([res("fgsm", 500), res("pgd20", 505), res("pgd100", 503)]) == []
    warns = _consistency_warnings([res("fgsm", 500), res("pgd20", 530)])
    assert len(warns) == 1 and "pgd20 accuracy (0.5300) is more than 1% above fgsm (0.5000)" in warns[0]


def _tiny_imagenet(root, n_per_class=3, size=16):
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


def test_streamed_folder_dataset_eval_equals_in_memory(tmp_path, capsys):
    from robnet.data import ArrayDataset

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
    streamed = json.loads(out.read_text())
    memory = ArrayDataset(name="t", split="val", images=images[:5], labels=labels[:5], classes=("n01", "n02"))
    ref = evaluate(model.eval(), memory, [("clean", parse_attack("clean")), ("fgsm", parse_attack("fgsm"))],
                   batch_size=4, progress=False, masking_checks=False)
    assert [r["correct"] for r in streamed["results"]] == [r.correct for r in ref.results]
    assert streamed["n"] == 5
    # fspkit score streams the same folder
    from fspkit.cli import main as fspkit_main

    fsp_json = tmp_path / "fsp.json"
    assert fspkit_main(["score", str(path), "--data", "tinyimagenet", "--data-dir", str(tmp_path), "--split", "val",
                        "--n", "6", "--steps", "2", "--workers", "0", "--json", str(fsp_json), "--quiet"]) == 0
    assert json.loads(fsp_json.read_text())["n"] == 6


def test_training_refuses_a_streamed_dataset(tmp_path, capsys):
    _tiny_imagenet(tmp_path)
    rc = robnet_main(["train", "--data", "tinyimagenet", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r"),
                      "--quiet"])
    assert rc == 1 and "streamed folder dataset" in capsys.readouterr().err


def test_robnet_demo_runs_on_digits(capsys):
    assert robnet_main(["demo", "--epochs", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sep-convs/cell 7" in out and "epoch 1:" in out and "digits test set, eps 0.1 (n=360)" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_request_without_cuda_is_one_clear_line(digits_ckpt, capsys):
    rc = robnet_main(["eval", str(digits_ckpt), "--data", "digits", "--device", "cuda", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and len(err.splitlines()) == 1 and "CUDA is not available" in err

"""robnet.train.loop / robnet.train.config / robnet.train.files and the ``robnet train`` CLI."""

import csv
import json
import math
import socket
from dataclasses import replace

import pytest
import torch
from torch import nn

import robnet
import tests._ddp_worker as W
from robnet.cli.app import main as robnet_main
from robnet.data.datasets import ArrayDataset, load_dataset
from robnet.data.loader import DeviceLoader
from robnet.io import checkpoint
from robnet.train.config import LOG_FIELDS, EpochRecord, TrainConfig, check_training_data, format_epoch, read_log
from robnet.train.finetune import finetune
from robnet.train.loop import TrainingDiverged, param_groups, train_epoch
from robnet.train.run import train
from tests._paths import SHARED_DATA

REAL = SHARED_DATA
ARCH = {"name": "robnet_large", "C": 4, "layers": 3, "in_channels": 1}
TIMING = ("seconds", "images_per_s")


def _digits(n: int = 128, start: int = 0) -> ArrayDataset:
    return load_dataset("digits", split="train").subset(range(start, start + n))


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=3, warmup_epochs=1, batch_size=32, lr=0.05, crop_padding=1, flip=False, eps=0.1,
                step_size=0.03, attack_steps=2, val_attack_steps=2, seed=1)
    return TrainConfig(**{**base, **kw})


def _model(seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return robnet.build_model("robnet_large", C=4, layers=3, in_channels=1)


def _tiny_run(out, *, max_epochs=None, resume=False, attack_bn="train"):
    model = _model()
    result = train(model, _digits(128), config=_cfg(attack_bn=attack_bn), out_dir=out, arch=ARCH,
                   val_data=_digits(37, 1400), device="cpu", progress=False, resume=resume, max_epochs=max_epochs)
    return model, result


def _no_timing(records):
    return [{k: v for k, v in vars(r).items() if k not in TIMING} for r in records]


# ----------------------------------------------------------------------------- config


def test_official_schedule_and_lr_scaling():
    cfg = TrainConfig()
    assert cfg.epochs == 170 and cfg.warmup_epochs == 20
    assert cfg.peak_lr == pytest.approx(1.2 * 128 / 1536)
    assert TrainConfig(batch_size=1536).peak_lr == pytest.approx(1.2)
    assert cfg.lr_at(0) == pytest.approx(0.02)
    assert cfg.lr_at(10) == pytest.approx(0.02 + (0.1 - 0.02) * 10 / 20)
    assert cfg.lr_at(20) == pytest.approx(0.1)
    assert cfg.lr_at(95) == pytest.approx(0.001 + (0.1 - 0.001) / 2)
    assert cfg.lr_at(169) == pytest.approx(0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * 149 / 150)) / 2)
    assert cfg.attack_steps == 7 and cfg.eps == pytest.approx(8 / 255) and cfg.attack_bn == "train"
    assert cfg.amp is False and cfg.precision == "float32" and TrainConfig(amp=True).precision == "bf16"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"epochs": 0}, "epochs must be >= 1"), ({"warmup_epochs": 170}, "warmup_epochs"),
     ({"attack_bn": "frozen"}, "attack_bn must be one of"), ({"lr": -1.0}, "lr must be > 0"),
     ({"batch_size": 0}, "batch_size"),
     ({"lr": float("nan")}, "lr must be a finite number, got nan"),
     ({"lr": float("inf")}, "lr must be a finite number, got inf"),
     ({"warmup_lr": float("nan")}, "warmup_lr must be a finite number"),
     ({"min_lr": -0.1}, "min_lr must be >= 0"), ({"weight_decay": float("-inf")}, "weight_decay must be a finite"),
     ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
     ({"eps": 8.0}, r"eps must be in \[0, 1\] \(images are in \[0, 1\]\), got 8.0. Hint: write 8/255"),
     ({"eps": float("nan")}, "eps must be a finite number"), ({"step_size": 2.0}, r"step_size must be in \[0, 1\]"),
     ({"cutout": -1}, "cutout must be >= 0"), ({"attack_steps": -1}, "attack_steps must be >= 0")],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"epochs": 2.0}, "epochs must be an int, got float 2.0"), ({"seed": True}, "seed must be an int"),
     ({"lr": "0.1"}, "lr must be a number, got str"), ({"amp": None}, "amp must be a bool, got None"),
     ({"flip": 1}, "flip must be a bool")],
)
def test_config_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        TrainConfig(**kwargs)


def test_no_weight_decay_on_bn_and_bias():
    model = robnet.build_model("resnet18")
    decay, no_decay = param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 4 or p.ndim == 2 for p in decay["params"])
    n_bn = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert sum(p.numel() for p in no_decay["params"]) == n_bn + model.linear.bias.numel()


def test_training_data_checks():
    cfg = _cfg()
    with pytest.raises(TypeError, match="train_data must be an ArrayDataset"):
        check_training_data(cfg, [(torch.zeros(1, 8, 8), 0)])
    with pytest.raises(ValueError, match="training set of 16 images gives no full batch of 32"):
        check_training_data(cfg, _digits(16))
    with pytest.raises(ValueError, match="the training set is empty"):
        check_training_data(cfg, _digits(0))
    with pytest.raises(ValueError, match="global batch 32 is not divisible by 3 processes"):
        check_training_data(cfg, _digits(64), world_size=3)
    with pytest.raises(ValueError, match=r"cutout 9 is larger than the 8x8 images\. Hint: --cutout 0"):
        check_training_data(replace(cfg, cutout=9), _digits(64))
    check_training_data(replace(cfg, cutout=8), _digits(64))
    with pytest.raises(ValueError, match="crop_padding 8 is not smaller than the 8x8 images"):
        check_training_data(replace(cfg, crop_padding=8), _digits(64))
    other = ArrayDataset(name="x", split="val", images=torch.zeros(4, 1, 4, 4, dtype=torch.uint8),
                         labels=torch.zeros(4, dtype=torch.long), classes=("a",))
    with pytest.raises(ValueError, match=r"validation images are \(1, 4, 4\), training images \(1, 8, 8\)"):
        check_training_data(cfg, _digits(64), other)


# ----------------------------------------------------------------------------- records


def test_epoch_record_line_and_log_round_trip(tmp_path):
    rec = EpochRecord(epoch=2, epochs=6, lr=0.1, train_loss=1.34349, train_adv_acc=0.48412, val_clean_acc=0.92149,
                      val_adv_acc=0.5691, seconds=1.5, images_per_s=411.6, precision="float32")
    assert format_epoch(rec) == ("epoch 2/6  lr 0.1  loss 1.343  train-adv 0.484  val-clean 0.921  val-pgd 0.569  "
                                 "412 img/s")
    bf = replace(rec, val_clean_acc=None, val_adv_acc=None, precision="bf16", lr=0.000123456)
    assert format_epoch(bf).endswith("val-clean -  val-pgd -  412 img/s  (bf16)") and "lr 0.0001235" in format_epoch(bf)
    _, result = _tiny_run(tmp_path / "r", max_epochs=2)
    assert read_log(tmp_path / "r" / "log.csv") == result.history  # exact floats survive the CSV
    assert [h.epoch for h in result.history] == [1, 2] and {h.epochs for h in result.history} == {3}
    with pytest.raises(ValueError, match=r"epoch must be in \[1, epochs=3\], got 0"):
        EpochRecord(**{**vars(rec), "epoch": 0, "epochs": 3})
    (tmp_path / "bad.csv").write_text(",".join(LOG_FIELDS) + "\n1,3,x,1,1,,,1,1,float32\n")
    with pytest.raises(ValueError, match=r"bad\.csv line 2 is not an epoch row"):
        read_log(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------- resume and the run files


@pytest.mark.slow
def test_resume_is_bit_for_bit(tmp_path):
    full, full_result = _tiny_run(tmp_path / "a")
    _tiny_run(tmp_path / "b", max_epochs=1)  # "interrupted" after epoch 1
    resumed, resumed_result = _tiny_run(tmp_path / "b", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [h.train_loss for h in full_result.history] == [h.train_loss for h in resumed_result.history]
    assert len(resumed_result.history) == 3
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]  # counted from 1, each once
    assert {"train_loss", "train_adv_acc", "val_clean_acc", "val_adv_acc", "lr", "precision"} <= set(rows[0])
    # the checkpoints load as ordinary robnet checkpoints with the config recorded
    _, meta = checkpoint.load(tmp_path / "b" / "last.pt")
    assert meta["train_config"]["attack_bn"] == "train" and meta["epoch"] == 3 and meta["precision"] == "float32"
    _, best_meta = checkpoint.load(tmp_path / "b" / "best.pt")
    assert best_meta["epoch"] == resumed_result.best_epoch
    assert resumed_result.best_val_adv_acc == max(h.val_adv_acc for h in resumed_result.history)
    # nothing left behind by the atomic writes, and the lock is released
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["best.pt", "last.pt", "log.csv", "run.json"]
    record = json.loads((tmp_path / "b" / "run.json").read_text())
    assert [i["mode"] for i in record["invocations"]] == ["new", "resume"]
    assert [i["outcome"] for i in record["invocations"]] == ["completed", "completed"]


def test_resume_refuses_a_different_config(tmp_path):
    _tiny_run(tmp_path, max_epochs=1)
    with pytest.raises(ValueError, match=r"config differs in train.attack_bn \('train' recorded, 'eval' now\)"):
        _tiny_run(tmp_path, resume=True, attack_bn="eval")
    with pytest.raises(ValueError, match="nothing to resume"):
        _tiny_run(tmp_path / "empty", resume=True)
    with pytest.raises(ValueError, match="already holds a run"):
        _tiny_run(tmp_path)


def test_attack_bn_mode_is_respected(tmp_path):
    a, _ = _tiny_run(tmp_path / "t", max_epochs=1, attack_bn="train")
    b, _ = _tiny_run(tmp_path / "e", max_epochs=1, attack_bn="eval")
    # train-mode attacks update the BN running statistics during the attack, eval-mode ones don't
    ka = next(k for k in a.state_dict() if k.endswith("running_mean"))
    assert not torch.equal(a.state_dict()[ka], b.state_dict()[ka])


def test_divergence_stops_with_the_last_good_checkpoint(tmp_path):
    # epoch 1 at the warm-up lr 0.02; then lr 1e6 blows the weights up
    cfg = _cfg(lr=1e6, attack_steps=1, val_attack_steps=1)
    with pytest.raises(TrainingDiverged, match=r"training diverged in epoch 3: a weight became non-finite "
                       r"\(lr 5e\+05\); the last good checkpoint is kept: .*last.pt \(epoch 2\)\. Hint: lower"):
        train(_model(), _digits(64), config=cfg, out_dir=tmp_path, arch=ARCH, val_data=_digits(16, 1400),
              device="cpu", progress=False)
    model, meta = checkpoint.load(tmp_path / "last.pt")
    assert meta["epoch"] == 2 and all(torch.isfinite(t).all() for t in model.state_dict().values())
    assert [r.epoch for r in read_log(tmp_path / "log.csv")] == [1, 2]
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["invocations"][-1]["outcome"].startswith("failed: TrainingDiverged: training diverged in epoch 3")
    with pytest.raises(TrainingDiverged, match="no epoch was completed"):
        train(_model(), _digits(64), config=_cfg(lr=1e30, warmup_epochs=0, attack_steps=1), out_dir=tmp_path / "x",
              arch=ARCH, device="cpu", progress=False)


# ----------------------------------------------------------------------------- the parts


class _TwoHeads(nn.Module):
    """A trunk and two heads; ``forward(x, head)`` runs one head (a toy weight-sharing supernet)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.heads = nn.ModuleList([nn.Linear(4, 10), nn.Linear(4, 10)])
        self.calls: list[int] = []

    def forward(self, x: torch.Tensor, head: int) -> torch.Tensor:
        self.calls.append(head)
        return self.heads[head](self.trunk(x))


class _OneHead(nn.Module):
    def __init__(self, two: _TwoHeads, head: int) -> None:
        super().__init__()
        self.trunk, self.head = two.trunk, two.heads[head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


def _epoch_of(net, cfg, data, **kw):
    loader = DeviceLoader(data, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True)
    opt = torch.optim.SGD(param_groups(net, cfg.weight_decay), lr=0.0, momentum=cfg.momentum)
    return train_epoch(net, loader, opt, config=cfg, epoch=0, device=torch.device("cpu"), amp=False, **kw)


def test_train_epoch_step_args_equal_a_bound_model():
    cfg = _cfg(warmup_epochs=0, lr=0.1, attack_steps=2)
    torch.manual_seed(3)
    a = _TwoHeads()
    b = _TwoHeads()
    b.load_state_dict(a.state_dict())
    untouched = b.heads[1].weight.clone()
    sa = _epoch_of(a, cfg, _digits(64), step_args=lambda step: (0,))
    sb = _epoch_of(_OneHead(b, 0), cfg, _digits(64))
    assert sa == replace(sb, seconds=sa.seconds)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert torch.equal(a.heads[1].weight, untouched)  # never used, never updated
    a.calls.clear()
    _epoch_of(a, cfg, _digits(64), step_args=lambda step: (step % 2,))
    # 2 steps; each: 1 random start + 2 attack steps... the attack's forwards and the update use the step's head
    assert a.calls == [0] * a.calls.count(0) + [1] * a.calls.count(1) and a.calls.count(0) == a.calls.count(1)
    assert not torch.equal(a.heads[1].weight, untouched)


def test_train_epoch_refuses_a_mismatched_loader():
    cfg = _cfg()
    loader = DeviceLoader(_digits(64), batch_size=16, drop_last=True)
    opt = torch.optim.SGD(_model().parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"loader gives 16 images per batch on each of 1 process.* config\.batch_size "
                       r"is 32"):
        train_epoch(_model(), loader, opt, config=cfg, epoch=0, device=torch.device("cpu"), amp=False)


def test_finetune_equals_train_on_the_same_schedule(tmp_path):
    cfg = _cfg(epochs=2)
    a, b = _model(), _model()
    records = finetune(a, _digits(64), epochs=2, config=cfg, val_data=_digits(16, 1400))
    result = train(b, _digits(64), config=cfg, out_dir=tmp_path, arch=ARCH, val_data=_digits(16, 1400), device="cpu",
                   progress=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    assert _no_timing(records) == _no_timing(result.history)
    assert a.training  # left in the mode it came in


def test_finetune_stretches_the_schedule():
    cfg = _cfg(epochs=10, warmup_epochs=4, lr=0.1, warmup_lr=0.02, min_lr=0.001)
    records = finetune(_model(), _digits(32), epochs=3, config=cfg)
    short = replace(cfg, epochs=3, warmup_epochs=1)  # 4 of 10 warm-up epochs -> 1 of 3 (rounded down)
    assert [r.lr for r in records] == [short.lr_at(e) for e in range(3)] == [0.02, 0.1, 0.001 + 0.099 / 2]
    assert [r.epoch for r in records] == [1, 2, 3] and records[0].val_adv_acc is None
    with pytest.raises(ValueError, match="finetune: epochs must be an int >= 1, got 0"):
        finetune(_model(), _digits(32), epochs=0, config=cfg)


# ----------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_matches_one_process(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(W.train_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp" / "rank0.pt", weights_only=True)
    # the same run in one process (global batch 32 in both)
    model = W.make_model()
    train(model, W.data(), config=W.config(), out_dir=tmp_path / "one",
          arch={"name": "tiny_cnn", "in_channels": 1}, val_data=W.data(40), device="cpu", progress=False)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ddp["state_dict"][k], v, rtol=1e-5, atol=1e-6)
    # evaluation under 2 processes counts every sample exactly once (101 is not divisible by 2)
    from robnet.attacks.evaluation import evaluate
    from robnet.attacks.spec import parse_attack

    test = load_dataset("digits", split="test").subset(range(101))
    one = evaluate(model, test, [("clean", parse_attack("clean")), ("fgsm", parse_attack("fgsm:eps=0.1"))],
                   batch_size=16, masking_checks=False, progress=False)
    assert [n for _, n in ddp["eval"]] == [101, 101]
    assert "sync_bn needs CUDA" in ddp["sync_bn_error"]
    assert [c for c, _ in ddp["eval"]] == [r.correct for r in one.results]
    # only rank 0 wrote the run folder, and its record shows one invocation
    assert json.loads((tmp_path / "ddp" / "run.json").read_text())["invocations"][0]["mode"] == "new"


@pytest.mark.slow
@pytest.mark.realdata
def test_one_epoch_on_real_cifar10(tmp_path):
    if not (REAL / "cifar-10-batches-py").is_dir():
        pytest.skip(f"real CIFAR-10 not found at {REAL / 'cifar-10-batches-py'}")
    from robnet.attacks.evaluation import evaluate
    from robnet.attacks.spec import parse_attack

    torch.manual_seed(0)
    train_set = load_dataset("cifar10", REAL, "train").subset(range(2000))
    test_set = load_dataset("cifar10", REAL, "test").subset(range(500))
    model = robnet.build_model("robnet_large", C=8, layers=5)
    cfg = TrainConfig(epochs=1, warmup_epochs=0, batch_size=50, lr=0.1, seed=0, val_attack_steps=3)
    train(model, train_set, config=cfg, out_dir=tmp_path, arch={"name": "robnet_large", "C": 8, "layers": 5},
          device="cpu", progress=False)
    report = evaluate(model, test_set, [(n, parse_attack(n)) for n in ("clean", "fgsm", "pgd20")], batch_size=250,
                      masking_checks=False, progress=False)
    clean, fgsm, pgd20 = (report.accuracy(n) for n in ("clean", "fgsm", "pgd20"))
    assert clean > 0.15  # chance is 0.10; n=500 puts 0.15 about 3.7 standard errors above it
    assert pgd20 <= fgsm <= clean


# ----------------------------------------------------------------------------- the CLI


CLI = ["train", "--model", "robnet_large", "--C", "4", "--layers", "3", "--data", "digits", "--subset", "96",
       "--batch-size", "32", "--warmup-epochs", "0", "--attack-steps", "1", "--val-size", "32",
       "--val-attack-steps", "1", "--eps", "0.1", "--step-size", "0.05", "--epochs", "2", "--quiet"]


def _cli(out, *extra):
    return robnet_main([*CLI, "--out", str(out), *extra])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_refuses_a_folder_holding_a_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert _cli(run) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"done: 2 epochs; checkpoints in {run}\nbest: epoch ")
    best = (run / "best.pt").read_bytes()
    assert _cli(run, "--lr", "0.2") == 1  # 8.1: no silent overwrite
    assert _error(capsys) == (f"robnet train: error: run folder {run} already holds a run (run.json, last.pt, "
                              "best.pt, log.csv): continue it with --resume, replace it with --overwrite, or choose "
                              "another --out")
    assert (run / "best.pt").read_bytes() == best and [r.epoch for r in read_log(run / "log.csv")] == [1, 2]
    assert _cli(run, "--overwrite", "--epochs", "1") == 0
    assert [r.epoch for r in read_log(run / "log.csv")] == [1]
    record = json.loads((run / "run.json").read_text())
    assert [i["mode"] for i in record["invocations"]] == ["new", "overwrite"]
    assert record["invocations"][1]["argv"] == [*CLI, "--out", str(run), "--overwrite", "--epochs", "1"]
    assert record["overwritten"][0]["config"]["train"]["epochs"] == 2 and record["config"]["train"]["epochs"] == 1
    capsys.readouterr()
    assert _cli(run, "--overwrite", "--resume") == 1
    assert "--resume and --overwrite exclude each other" in _error(capsys)


@pytest.mark.parametrize(
    ("extra", "changed"),
    [(["--subset", "128"], "data.subset (96 recorded, 128 now)"),
     (["--val-size", "0.25"], "data.val_images (32 recorded, 24 now)"),
     (["--C", "8"], "arch.C (4 recorded, 8 now)"),
     (["--genotype", " ".join(["11"] * 14)],
      "arch.genotype (<not set> recorded, '11 11 11 11 11 11 11 11 11 11 11 11 ... now)"),
     (["--data", "digits", "--eps", "0.2"], "train.eps (0.1 recorded, 0.2 now)")],
)
def test_cli_resume_refuses_other_settings(tmp_path, capsys, extra, changed):
    run = tmp_path / "run"
    assert _cli(run, "--epochs", "2") == 0
    capsys.readouterr()
    assert _cli(run, "--resume", *extra) == 1  # 8.5, 8.12: one line naming what changed, not size mismatches
    err = _error(capsys)
    assert err.startswith(f"robnet train: error: cannot resume {run}: the config differs in ") and changed in err
    record = json.loads((run / "run.json").read_text())
    assert len(record["invocations"]) == 1  # a refused invocation changes nothing


def test_cli_resume_records_every_invocation(tmp_path, capsys):
    run = tmp_path / "run"
    assert _cli(run, "--epochs", "3", "--tensorboard") == 0
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    _, meta = checkpoint.load(run / "last.pt")
    assert meta["epoch"] == 3 and meta["dataset"] == "digits" and meta["train_config"]["cutout"] == 0
    assert _cli(run, "--epochs", "3", "--resume") == 0  # nothing left to do
    record = json.loads((run / "run.json").read_text())
    assert [i["argv"][-1] for i in record["invocations"]] == ["--tensorboard", "--resume"]
    assert record["config"]["data"]["subset"] == 96 and record["config"]["data"]["val_images"] == 32


def test_cli_same_seed_same_weights_and_log(tmp_path, capsys):
    # 8.7: the seed reaches the weight initialisation
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert _cli(tmp_path / name, "--seed", seed, "--epochs", "1") == 0
    a, b, c = (checkpoint.load(tmp_path / n / "last.pt")[0].state_dict() for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    logs = [_no_timing(read_log(tmp_path / n / "log.csv")) for n in "ab"]
    assert logs[0] == logs[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--lr", "inf"], "TrainConfig: lr must be a finite number, got inf"),
     (["--lr", "inf"], "TrainConfig: lr must be a finite number, got inf"),
     (["--eps", "8"], r"TrainConfig: eps must be in [0, 1] (images are in [0, 1]), got 8.0. Hint: write 8/255"),
     (["--subset", "0"], "--subset must be >= 1, got 0"),
     (["--subset", "100000"], "--subset 100000 is larger than the training split (1437 samples)"),
     (["--val-size", "1.5"], "--val-size 1.5: give a fraction in (0, 1) or a whole number of images"),
     (["--val-size", "nan"], "--val-size nan: give a fraction"),
     (["--cutout", "9"], "cutout 9 is larger than the 8x8 images. Hint: --cutout 0 turns it off"),
     (["--batch-size", "128"], "training set of 64 images gives no full batch of 128"),
     (["--epochs", "0"], "TrainConfig: epochs must be >= 1, got 0"),
     (["--model", "robnet_smal"], "unknown architecture 'robnet_smal'. Did you mean robnet_large"),
     (["--arch", "resnet18"], "unknown key(s) ['C', 'layers'] for zoo model 'resnet18'; it accepts num_classes")],
)
def test_cli_bad_inputs_one_line_and_no_folder(tmp_path, capsys, extra, message):
    out = tmp_path / "never" / "run"
    assert _cli(out, *extra) == 1
    err = _error(capsys)
    assert err.startswith("robnet train: error: ") and message in err
    assert not (tmp_path / "never").exists()  # 8.12: nothing created before the checks pass


def test_cli_divergence_is_an_error(tmp_path, capsys):
    run = tmp_path / "run"
    assert _cli(run, "--lr", "1e6", "--warmup-epochs", "1", "--epochs", "4", "--attack-steps", "0") == 1
    err = _error(capsys)
    assert "training diverged in epoch" in err and f"the last good checkpoint is kept: {run / 'last.pt'}" in err
    _, meta = checkpoint.load(run / "last.pt")
    assert [r.epoch for r in read_log(run / "log.csv")] == list(range(1, meta["epoch"] + 1))

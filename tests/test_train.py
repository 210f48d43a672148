import csv
import math
import socket
import sys
from pathlib import Path

import pytest
import torch

import robnet
from robnet import checkpoint
from robnet.data import load_dataset
from robnet.train import TrainConfig, param_groups, train

sys.path.insert(0, str(Path(__file__).parent))
import _ddp_worker as W

REAL = Path(__file__).resolve().parents[2] / "shared" / "data"


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


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"epochs": 0}, "epochs must be >= 1"), ({"warmup_epochs": 170}, "warmup_epochs"),
     ({"attack_bn": "frozen"}, "attack_bn must be one of"), ({"lr": -1.0}, "lr must be > 0"),
     ({"batch_size": 0}, "batch_size")],
)
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_no_weight_decay_on_bn_and_bias():
    model = robnet.build_model("resnet18")
    decay, no_decay = param_groups(model, 1e-4)
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim == 4 or p.ndim == 2 for p in decay["params"])
    n_bn = sum(p.numel() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert sum(p.numel() for p in no_decay["params"]) == n_bn + model.linear.bias.numel()


def _tiny_run(out, *, max_epochs=None, resume=False, attack_bn="train"):
    torch.manual_seed(0)
    model = robnet.build_model("robnet_large", C=4, layers=3, in_channels=1)
    cfg = TrainConfig(epochs=3, warmup_epochs=1, batch_size=32, lr=0.05, crop_padding=1, flip=False, eps=0.1,
                      step_size=0.03, attack_steps=2, attack_bn=attack_bn, val_attack_steps=2, seed=1)
    data = load_dataset("digits", split="train")
    result = train(model, data.subset(range(128)), config=cfg, out_dir=out,
                   arch={"name": "robnet_large", "C": 4, "layers": 3, "in_channels": 1},
                   val_data=data.subset(range(1400, 1437)), device="cpu", progress=False, resume=resume,
                   max_epochs=max_epochs)
    return model, result


def test_resume_is_bit_for_bit(tmp_path):
    full, full_result = _tiny_run(tmp_path / "a")
    _tiny_run(tmp_path / "b", max_epochs=1)  # "interrupted" after epoch 1
    resumed, resumed_result = _tiny_run(tmp_path / "b", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert [h.train_loss for h in full_result.history] == [h.train_loss for h in resumed_result.history]
    assert len(resumed_result.history) == 3
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert {"train_loss", "train_adv_acc", "val_clean_acc", "val_adv_acc", "lr"} <= set(rows[0])
    # the checkpoints load as ordinary robnet checkpoints with the config recorded
    _, meta = checkpoint.load(tmp_path / "b" / "last.pt")
    assert meta["train_config"]["attack_bn"] == "train" and meta["epoch"] == 2
    assert (tmp_path / "b" / "best.pt").exists()
    # nothing left behind by the atomic writes
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["best.pt", "last.pt", "log.csv"]


def test_resume_refuses_a_different_config(tmp_path):
    _tiny_run(tmp_path, max_epochs=1)
    with pytest.raises(ValueError, match="config differs in attack_bn"):
        _tiny_run(tmp_path, resume=True, attack_bn="eval")
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        _tiny_run(tmp_path / "empty", resume=True)


def test_attack_bn_mode_is_respected(tmp_path):
    a, _ = _tiny_run(tmp_path / "t", max_epochs=1, attack_bn="train")
    b, _ = _tiny_run(tmp_path / "e", max_epochs=1, attack_bn="eval")
    # train-mode attacks update the BN running statistics during the attack, eval-mode ones don't
    ka = next(k for k in a.state_dict() if k.endswith("running_mean"))
    assert not torch.equal(a.state_dict()[ka], b.state_dict()[ka])


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
    from robnet.attack_spec import parse_attack
    from robnet.evaluate import evaluate

    test = load_dataset("digits", split="test").subset(range(101))
    one = evaluate(model, test, [("clean", parse_attack("clean")), ("fgsm", parse_attack("fgsm:eps=0.1"))],
                   batch_size=16, masking_checks=False, progress=False)
    assert [n for _, n in ddp["eval"]] == [101, 101]
    assert "sync_bn needs CUDA" in ddp["sync_bn_error"]
    assert [c for c, _ in ddp["eval"]] == [r.correct for r in one.results]


@pytest.mark.realdata
def test_one_epoch_on_real_cifar10(tmp_path):
    if not (REAL / "cifar-10-batches-py").is_dir():
        pytest.skip(f"real CIFAR-10 not found at {REAL / 'cifar-10-batches-py'}")
    from robnet.attack_spec import parse_attack
    from robnet.evaluate import evaluate

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

"""Kills at any moment leave a training run folder consistent after ``--resume``.

Two ways: a kill simulated inside each write window of an epoch (deterministic, in-process), and
the acceptance test: ``robnet train`` in a subprocess, SIGKILLed at 20 seeded random moments, each
followed by ``--resume``, ends equal to an uninterrupted run.
"""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import robnet
import robnet.train.files as tf
from robnet.data.datasets import load_dataset
from robnet.io import checkpoint
from robnet.io.rundir import LOCK_FILE, file_identity
from robnet.train.config import TrainConfig, read_log
from robnet.train.run import train

ARCH = {"name": "robnet_large", "C": 4, "layers": 3, "in_channels": 1}
TIMING = ("seconds", "images_per_s")


class Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the code under test handles it."""


def _run(out, *, resume=False, epochs=3):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = robnet.build_model("robnet_large", C=4, layers=3, in_channels=1)
    data = load_dataset("digits", split="train")
    # validation PGD accuracy 0.083, 0.042, 0.125: epochs 1 and 3 are new bests, epoch 2 is not
    cfg = TrainConfig(epochs=epochs, warmup_epochs=1, batch_size=32, lr=0.1, crop_padding=1, flip=False, eps=0.1,
                      step_size=0.03, attack_steps=1, val_attack_steps=1, seed=2)
    train(model, data.subset(range(64)), config=cfg, out_dir=out, arch=ARCH, val_data=data.subset(range(1400, 1424)),
          device="cpu", progress=False, resume=resume)
    return model


def _state(path: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load_raw(path)["state_dict"]


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _no_timing(records):
    return [{k: v for k, v in vars(r).items() if k not in TIMING} for r in records]


def _assert_consistent(run: Path, reference: Path | None = None) -> None:
    """best.pt is the best last.pt records; log.csv holds each of last.pt's epochs exactly once."""
    raw = checkpoint.load_raw(run / "last.pt")
    extra = raw["extra"]
    best = extra["best"]
    assert file_identity(run / "best.pt") == {"sha256": best["sha256"], "size": best["size"]}
    assert checkpoint.load_raw(run / "best.pt")["meta"]["epoch"] == best["epoch"]
    log = read_log(run / "log.csv")
    assert [r.epoch for r in log] == list(range(1, extra["epochs_done"] + 1))
    assert [vars(r) for r in log] == extra["history"]
    assert not list(run.glob(".*.tmp")) and not (run / tf.PENDING_BEST).exists() and not (run / LOCK_FILE).exists()
    if reference is not None:
        assert _same_weights(raw["state_dict"], _state(reference / "last.pt"))
        assert _same_weights(_state(run / "best.pt"), _state(reference / "best.pt"))
        assert _no_timing(log) == _no_timing(read_log(reference / "log.csv"))


def _assert_log_within_last(run: Path) -> None:
    """At any moment: log.csv holds epochs 1..k, each once, with k at most what last.pt committed
    (it may lag by the epoch whose log write a kill interrupted; resume rewrites it)."""
    if not (run / "log.csv").exists():
        return
    done = checkpoint.load_raw(run / "last.pt")["extra"]["epochs_done"] if (run / "last.pt").exists() else 0
    epochs = [r.epoch for r in read_log(run / "log.csv")]
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) <= done


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    _run(out)
    return out


class _OsWithHook:
    """``os`` for robnet.train.files whose ``replace`` first asks ``hook`` (which may raise Killed)."""

    def __init__(self, hook):
        self._hook = hook

    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, src, dst):
        self._hook("replace", Path(dst).name)
        return os.replace(src, dst)


def _kill_at(monkeypatch, target: tuple[str, str], nth: int) -> list[tuple[str, str]]:
    """Raise Killed at the ``nth`` call of ``target`` = (operation, file name) in the epoch's writes."""
    calls: list[tuple[str, str]] = []

    def hook(op: str, name: str) -> None:
        calls.append((op, name))
        if calls.count(target) == nth and calls[-1] == target:
            raise Killed(f"{op} {name}")

    real_save, real_log = tf.ckpt.save, tf._write_log

    def save(path, *args, **kwargs):
        hook("save", Path(path).name)
        return real_save(path, *args, **kwargs)

    def write_log(folder, history):
        hook("log", "log.csv")
        return real_log(folder, history)

    monkeypatch.setattr(tf.ckpt, "save", save)
    monkeypatch.setattr(tf, "_write_log", write_log)
    monkeypatch.setattr(tf, "os", _OsWithHook(hook))
    return calls


# Each window of an epoch's writes, as (operation, file) and its occurrence: the kill comes *before*
# that call. Epochs 1 and 3 write a best candidate; all three write last.pt and log.csv.
WINDOWS = [(("save", tf.PENDING_BEST), 2), (("save", "last.pt"), 3), (("replace", "best.pt"), 2),
           (("log", "log.csv"), 3), (("save", "last.pt"), 2)]


@pytest.mark.parametrize(("window", "nth"), WINDOWS, ids=lambda w: "-".join(map(str, w)) if isinstance(w, tuple)
                         else str(w))
def test_a_kill_in_each_write_window_is_repaired_on_resume(tmp_path, monkeypatch, reference, window, nth):
    run = tmp_path / "run"
    calls = _kill_at(monkeypatch, window, nth)
    with pytest.raises(Killed):
        _run(run)
    monkeypatch.undo()
    assert calls[-1] == window
    _assert_log_within_last(run)  # already before the repair
    (run / ".best.pt.4242.deadbeef.tmp").write_bytes(b"a torn write")  # what a real SIGKILL mid-write leaves
    _run(run, resume=True)
    _assert_consistent(run, reference)


def test_a_kill_after_the_commit_point_completes_best_on_resume(tmp_path, monkeypatch, reference, caplog):
    run = tmp_path / "run"
    _kill_at(monkeypatch, ("replace", "best.pt"), 2)  # at the last epoch, after last.pt was committed
    with pytest.raises(Killed):
        _run(run)
    monkeypatch.undo()
    recorded = checkpoint.load_raw(run / "last.pt")["extra"]["best"]
    assert recorded["epoch"] == 3 and checkpoint.load_raw(run / "best.pt")["meta"]["epoch"] == 1  # 8.3 reproduced
    with caplog.at_level("WARNING", logger="robnet.train.files"):
        _run(run, resume=True)
    assert "completed the interrupted update of best.pt (epoch 3)" in caplog.text
    _assert_consistent(run, reference)


def test_a_kill_before_the_commit_point_drops_the_candidate(tmp_path, monkeypatch, reference, caplog):
    run = tmp_path / "run"
    _kill_at(monkeypatch, ("save", "last.pt"), 3)  # best candidate of epoch 3 written, epoch 3 not committed
    with pytest.raises(Killed):
        _run(run)
    monkeypatch.undo()
    assert (run / tf.PENDING_BEST).exists()
    with caplog.at_level("WARNING", logger="robnet.train.files"):
        _run(run, resume=True)
    assert "dropped a best.pt candidate that its epoch never committed" in caplog.text
    _assert_consistent(run, reference)


def test_a_changed_best_is_reported(tmp_path, reference, caplog):
    run = tmp_path / "run"
    _run(run, epochs=3)
    (run / "best.pt").write_bytes(b"not the best")
    with caplog.at_level("WARNING", logger="robnet.train.files"):
        _run(run, resume=True)  # nothing left to train
    assert "best.pt does not hold the recorded best (epoch" in caplog.text


# ----------------------------------------------------------------------------- the acceptance test

EPOCHS = 10
CLI = [sys.executable, "-m", "robnet.cli", "train", "--model", "robnet_large", "--C", "4", "--layers", "3",
       "--data", "digits", "--subset", "96", "--batch-size", "32", "--epochs", str(EPOCHS), "--warmup-epochs", "1",
       "--attack-steps", "2", "--val-size", "32", "--val-attack-steps", "2", "--eps", "0.1", "--step-size", "0.05",
       "--lr", "0.05", "--seed", "3", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _cli(out: Path, *extra: str, log: Path) -> subprocess.Popen:
    with log.open("a") as err:
        return subprocess.Popen([*CLI, "--out", str(out), *extra], stdout=subprocess.DEVNULL, stderr=err, env=ENV)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns  # an atomic replace makes a new inode


def _holds_lock(run: Path, pid: int) -> bool:
    try:
        return json.loads((run / LOCK_FILE).read_text())["pid"] == pid
    except (OSError, ValueError, KeyError):
        return False


def _wait(proc: subprocess.Popen, until) -> None:
    while proc.poll() is None and not until():
        time.sleep(0.005)


def _timed(out: Path, log: Path) -> tuple[float, float, float]:
    """Run to the end; returns the seconds from the start to the lock, from the lock to the first
    committed epoch, and the mean seconds per later epoch."""
    t0 = time.perf_counter()
    proc = _cli(out, log=log)
    _wait(proc, lambda: _holds_lock(out, proc.pid))
    t_lock = time.perf_counter()
    _wait(proc, lambda: _stamp(out / "last.pt") is not None)
    t_first = time.perf_counter()
    assert proc.wait() == 0, log.read_text()
    return t_lock - t0, t_first - t_lock, (time.perf_counter() - t_first) / (EPOCHS - 1)


def _attempt(run: Path, rng: random.Random, times: tuple[float, float, float], log: Path) -> int:
    """Start ``robnet train`` (resuming once a run exists) and SIGKILL it at a seeded random moment.

    A quarter of the attempts die during start-up, before the run folder is opened; a third once
    the process holds the folder's lock, before its first epoch is committed (the resume repair,
    the epoch, its checkpoint writes); the rest within the epoch after the first one the process
    commits. Timing from those events, not from the start, keeps the kills spread across the run
    however loaded the machine is. Returns the exit status (-9: killed).
    """
    startup, first, per_epoch = times
    before = _stamp(run / "last.pt")
    proc = _cli(run, *(["--resume"] if (run / "run.json").exists() else []), log=log)
    phase = rng.random()
    if phase < 0.25:
        delay = rng.uniform(0.0, startup)
    elif phase < 0.6:
        delay = rng.uniform(0.0, first)
        _wait(proc, lambda: _holds_lock(run, proc.pid))
    else:
        delay = rng.uniform(0.0, 0.8 * per_epoch)
        _wait(proc, lambda: _stamp(run / "last.pt") != before)
    deadline = time.perf_counter() + delay
    _wait(proc, lambda: time.perf_counter() >= deadline)
    if proc.poll() is None:
        proc.kill()
    return proc.wait()


@pytest.mark.slow
def test_sigkill_at_20_random_moments_then_resume(tmp_path):
    log = tmp_path / "stderr.txt"
    ref, run = tmp_path / "ref", tmp_path / "run"
    times = _timed(ref, log=log)
    rng = random.Random(8)
    kills: list[int] = []
    done: list[int] = []  # epochs committed after each attempt
    for _ in range(20):
        rc = _attempt(run, rng, times, log)
        assert rc in (0, -9), log.read_text()
        kills.append(rc)
        _assert_log_within_last(run)  # before any repair
        done.append(checkpoint.load_raw(run / "last.pt")["extra"]["epochs_done"] if (run / "last.pt").exists() else 0)
    assert kills.count(-9) >= 10, kills  # most attempts were really killed ...
    assert len(set(done)) >= 4, (done, times)  # ... at moments spread across the run
    assert _cli(run, "--resume", log=log).wait() == 0, log.read_text()
    _assert_consistent(run, ref)
    assert len(read_log(run / "log.csv")) == EPOCHS
    record = json.loads((run / "run.json").read_text())
    assert record["invocations"][0]["mode"] == "new" and {i["mode"] for i in record["invocations"][1:]} == {"resume"}

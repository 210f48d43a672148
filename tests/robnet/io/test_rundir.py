"""robnet.io.rundir: refusal, the exclusive lock (live, stale, released), stray temporaries, the run record."""

import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from robnet.io.rundir import (
    LOCK_FILE,
    NOT_SET,
    RECORD_FILE,
    RunDir,
    RunExistsError,
    RunLockedError,
    config_diff,
    file_identity,
    run_lock,
    write_csv,
)

CONFIG = {"train": {"lr": 0.1, "epochs": 3}, "data": {"name": "digits", "subset": None}}
FILES = ("last.pt", "best.pt", "log.csv", "tensorboard")


def _open(path, mode="new", config=CONFIG, **kw):
    return RunDir.open(path, kind="train", config=config, mode=mode, files=FILES, **kw)


def _record(path: Path) -> dict:
    return json.loads((path / RECORD_FILE).read_text())


_HOLDER = """
import sys, time
from robnet.io.rundir import RunDir
run = RunDir.open(sys.argv[1], kind="train", config={}, mode=sys.argv[2])
print("locked", flush=True)
time.sleep(120)
"""


def _holder(folder: Path, mode: str = "new") -> subprocess.Popen:
    """A separate process that opens ``folder`` as a run and sleeps holding its lock."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), mode], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_new_run_records_the_invocation_and_releases_the_lock(tmp_path):
    run_path = tmp_path / "a" / "run"
    with _open(run_path, argv=["train", "--out", "x"]) as run:
        assert run.mode == "new" and run.is_open and (run_path / LOCK_FILE).exists()
        holder = json.loads((run_path / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert run.config == CONFIG and run.file("last.pt") == run_path / "last.pt"
    assert not run.is_open and not (run_path / LOCK_FILE).exists()
    record = _record(run_path)
    assert (record["format"], record["version"], record["kind"], record["config"]) == ("robnet.run", 1, "train",
                                                                                      CONFIG)
    [inv] = record["invocations"]
    assert inv["argv"] == ["train", "--out", "x"] and inv["mode"] == "new" and inv["outcome"] == "completed"
    assert inv["pid"] == os.getpid() and set(inv["versions"]) == {"robnet", "torch", "numpy", "python"}
    assert "ended" in inv and "started" in inv
    run.close()  # idempotent


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    with _open(tmp_path):
        (tmp_path / "last.pt").write_bytes(b"weights")
    with pytest.raises(RunExistsError, match=rf"^run folder {tmp_path} already holds a run \(run\.json, last\.pt\): "
                       r"continue it with --resume, replace it with --overwrite, or choose another --out$"):
        _open(tmp_path)
    assert not (tmp_path / LOCK_FILE).exists()  # released after the refusal too
    # a run's file alone (a run folder of an older robnet) also counts
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "log.csv").write_text("epoch\n")
    with pytest.raises(RunExistsError, match=r"already holds a run \(log\.csv\)"):
        _open(tmp_path / "old")
    # unrelated files do not make a run
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("mine")
    _open(tmp_path / "plain").close()


def test_resume_appends_and_compares_the_config(tmp_path):
    _open(tmp_path, argv=["a"]).close()
    with _open(tmp_path, "resume", argv=["a", "--resume"]) as run:
        assert run.mode == "resume" and run.resumed_from_record
    assert [i["argv"] for i in _record(tmp_path)["invocations"]] == [["a"], ["a", "--resume"]]
    changed = {"train": {"lr": 0.2, "epochs": 3}, "data": {"name": "digits", "subset": 96}, "model": "x"}
    with pytest.raises(ValueError, match=rf"^cannot resume {tmp_path}: the config differs in train\.lr \(0\.1 "
                       r"recorded, 0\.2 now\), data\.subset \(None recorded, 96 now\), model \(<not set> recorded, "
                       r"'x' now\)\. Hint: resume with the recorded settings \(see run\.json\)"):
        _open(tmp_path, "resume", config=changed)
    assert len(_record(tmp_path)["invocations"]) == 2  # a refused invocation is not recorded
    many = {"train": {f"k{i}": i for i in range(6)}}  # 4 keys named, the other 6 counted
    with pytest.raises(ValueError, match=r"data\.subset \(None recorded, <not set> now\) and 6 more\. Hint"):
        _open(tmp_path, "resume", config=many)
    with pytest.raises(ValueError, match=r"it holds a 'train' run, not a 'search' run"):
        RunDir.open(tmp_path, kind="search", config=CONFIG, mode="resume")
    with pytest.raises(ValueError, match=rf"^nothing to resume: run folder {tmp_path / 'none'} does not exist"):
        _open(tmp_path / "none", "resume")
    assert not (tmp_path / "none").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=rf"^nothing to resume: run folder {tmp_path / 'empty'} holds no run"):
        _open(tmp_path / "empty", "resume")


def test_resume_of_a_folder_without_record_warns_and_records(tmp_path, caplog):
    (tmp_path / "last.pt").write_bytes(b"old")
    with caplog.at_level(logging.WARNING, logger="robnet.io.rundir"):
        _open(tmp_path, "resume").close()
    assert "has no run record (written by an older robnet)" in caplog.text
    assert _record(tmp_path)["config"] == CONFIG


def test_overwrite_deletes_only_the_runs_files(tmp_path, caplog):
    _open(tmp_path, argv=["first"]).close()
    for name in ("last.pt", "best.pt", "log.csv", "notes.txt"):
        (tmp_path / name).write_text(name)
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events").write_text("e")
    new = {"train": {"lr": 0.5}}
    with caplog.at_level(logging.WARNING, logger="robnet.io.rundir"), _open(tmp_path, "overwrite", config=new):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", RECORD_FILE]
    assert "--overwrite deleted last.pt, best.pt, log.csv, tensorboard" in caplog.text
    record = _record(tmp_path)
    assert record["config"] == new and [i["mode"] for i in record["invocations"]] == ["new", "overwrite"]
    assert record["overwritten"][0]["config"] == CONFIG
    (tmp_path / RECORD_FILE).write_text("{torn")
    _open(tmp_path, "overwrite").close()  # an unreadable record is replaced, not a dead end
    assert [i["mode"] for i in _record(tmp_path)["invocations"]] == ["overwrite"]


def test_bad_records_and_arguments(tmp_path):
    _open(tmp_path).close()
    (tmp_path / RECORD_FILE).write_text("{torn")
    with pytest.raises(ValueError, match=r"run\.json is unreadable .* Hint: --overwrite starts the run over"):
        _open(tmp_path, "resume")
    (tmp_path / RECORD_FILE).write_text(json.dumps({"format": "robnet.run", "version": 99, "config": {},
                                                    "invocations": []}))
    with pytest.raises(ValueError, match="has format version 99; this robnet reads up to 1"):
        _open(tmp_path, "resume")
    (tmp_path / RECORD_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"is not a robnet run record\. Hint"):
        _open(tmp_path, "resume")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"run folder .*file is a file: give a folder for --out"):
        _open(tmp_path / "file")
    with pytest.raises(ValueError, match=r"mode must be one of \('new', 'resume', 'overwrite'\), got 'append'"):
        _open(tmp_path / "m", "append")
    with pytest.raises(TypeError, match="config must be a mapping, got list"):
        _open(tmp_path / "m", config=[1])
    assert not (tmp_path / "m").exists()


def test_the_lock_is_released_on_an_exception(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), _open(tmp_path):
        raise RuntimeError("boom\nsecond line")
    assert not (tmp_path / LOCK_FILE).exists()
    assert _record(tmp_path)["invocations"][-1]["outcome"] == "failed: RuntimeError: boom"
    _open(tmp_path, "resume").close()


def test_a_second_live_run_is_refused_in_one_line(tmp_path):
    first = _open(tmp_path)
    with pytest.raises(RunLockedError, match=rf"^run folder {tmp_path} is in use by pid {os.getpid()} on host "
                       rf"{socket.gethostname()}, since .*: wait for that run to finish, or choose another --out$"):
        _open(tmp_path, "resume")
    first.close()
    _open(tmp_path, "resume").close()


def test_a_lock_from_another_process_live_then_killed(tmp_path, caplog):
    """8.2: a live run in another process refuses ours; once it is SIGKILLed its lock is stale and taken over."""
    proc = _holder(tmp_path)
    try:
        (tmp_path / ".last.pt.1.deadbeef.tmp").write_bytes(b"a live writer's temporary")
        with pytest.raises(RunLockedError, match=f"is in use by pid {proc.pid} on host"):
            _open(tmp_path, "resume")
        assert (tmp_path / ".last.pt.1.deadbeef.tmp").exists()  # never cleaned under another's lock
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / LOCK_FILE).exists()  # a killed process cannot clean up
    with caplog.at_level(logging.WARNING, logger="robnet.io.rundir"), _open(tmp_path, "resume", config={}):
        pass
    assert f"took over the stale lock of pid {proc.pid} on host {socket.gethostname()}" in caplog.text
    assert "removed 1 stray temporary file(s) of an interrupted write: .last.pt.1.deadbeef.tmp" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == [RECORD_FILE]


def test_two_robnet_train_runs_into_one_folder(tmp_path, capsys):
    """8.2 from the command line: the second run refuses with one line and changes nothing."""
    from robnet.cli.app import main as robnet_main

    proc = _holder(tmp_path, "new")
    try:
        before = (tmp_path / RECORD_FILE).read_bytes()
        rc = robnet_main(["train", "--data", "digits", "--subset", "64", "--C", "4", "--layers", "3", "--epochs", "1",
                          "--warmup-epochs", "0", "--batch-size", "32", "--out", str(tmp_path), "--resume", "--quiet"])
        err = capsys.readouterr().err.strip()
        assert rc == 1 and len(err.splitlines()) == 1
        assert err.startswith(f"robnet train: error: run folder {tmp_path} is in use by pid {proc.pid}")
        assert (tmp_path / RECORD_FILE).read_bytes() == before
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_run_lock(tmp_path):
    with run_lock(tmp_path / "missing", enabled=False) as p:  # a no-op on other DDP ranks
        assert p == tmp_path / "missing"
    with pytest.raises(ValueError, match="does not exist"), run_lock(tmp_path / "missing"):
        pass
    (tmp_path / ".x.tmp").write_text("stray")
    with run_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).exists() and not (tmp_path / ".x.tmp").exists()
        with pytest.raises(RunLockedError, match="is in use by pid"), run_lock(tmp_path):
            pass
    assert not (tmp_path / LOCK_FILE).exists()


def test_config_diff():
    a = {"t": {"lr": 0.1, "sizes": (1, 2), "x": float("nan")}, "gone": 1, "empty": {}}
    b = {"t": {"lr": 0.1, "sizes": [1, 2], "x": None, "new": {"deep": True}}, "empty": {}}
    assert config_diff(a, b) == [("gone", 1, NOT_SET), ("t.new.deep", NOT_SET, True)]  # recorded order first
    assert config_diff(a, a) == [] and repr(NOT_SET) == "<not set>"


def test_file_identity_and_csv(tmp_path):
    data = os.urandom(3 << 20)  # over one read chunk
    (tmp_path / "f").write_bytes(data)
    assert file_identity(tmp_path / "f") == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    write_csv(tmp_path / "log.csv", [{"a": 1, "b": None}, {"a": 2.5, "b": "x,y"}], ["a", "b"])
    assert (tmp_path / "log.csv").read_text() == 'a,b\n1,\n2.5,"x,y"\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f", "log.csv"]

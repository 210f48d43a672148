"""Run folders that cannot be clobbered: refusal, an exclusive lock, a record of every invocation.

A *run folder* is where a long job (``robnet train``, next the search) keeps its files. Opening
one with :meth:`RunDir.open` guarantees, before any of its files is touched:

* **No clobbering.** A folder that already holds a run (its record ``run.json``, or one of the
  run's files) is refused unless the caller resumes it (``mode="resume"``) or explicitly replaces
  it (``mode="overwrite"``, which deletes only the run's own files).
* **One writer.** An exclusive ``fcntl.flock`` on ``DIR/.lock``, which holds the owner's pid,
  host and start time. The kernel drops a flock when its process dies (even by SIGKILL), so a
  lock file left by a killed run is *stale*: it is detected (the flock is free), reported and
  taken over. A second live run refuses with one line naming the owner. The lock is released
  (and its file removed) on every exit of the ``with`` block.
* **No stray temporaries.** Temporary files of atomic writes killed mid-way (``.NAME.*.tmp``)
  are removed, after the lock is taken (never a live writer's).
* **A record of every invocation.** ``run.json`` (written atomically) holds the run's kind, its
  config (whatever plain data decides the run's results: training recipe, data and model
  settings) and a list of invocations, appended, never overwritten: argv, mode, pid, host,
  versions, start, and on a clean exit end time and outcome.
* **Same settings on resume.** ``mode="resume"`` compares the config with the recorded one and
  refuses, in one line naming each changed key, when they differ.

Locks need a file system with working ``flock`` (local disks; NFS on Linux >= 2.6.12 emulates
it with fcntl locks). The folder is created by :meth:`RunDir.open`, so callers validate their
arguments first: a refused invocation never leaves a new folder behind.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from robnet.io.files import atomic_write, fsync_dir, remove_stray_temporaries
from robnet.io.results import to_jsonable, versions, write_json

__all__ = ["LOCK_FILE", "NOT_SET", "RECORD_FILE", "RunDir", "RunExistsError", "RunLockedError", "config_diff",
           "file_identity", "run_lock", "write_csv"]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Mode = Literal["new", "resume", "overwrite"]
MODES: tuple[str, ...] = ("new", "resume", "overwrite")

RECORD_FILE = "run.json"
LOCK_FILE = ".lock"
FORMAT = "robnet.run"
VERSION = 1
_SHOWN_DIFFS = 4  # differing keys named in a refusal; the rest are counted


class RunExistsError(ValueError):
    """The folder already holds a run and the caller neither resumes nor overwrites it."""


class RunLockedError(ValueError):
    """Another live process holds the run folder's lock."""


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ----------------------------------------------------------------------------- plain helpers


def file_identity(path: PathLike) -> dict[str, Any]:
    """``{"sha256": hex digest, "size": bytes}`` of a file: what a record stores to recognise it."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return {"sha256": h.hexdigest(), "size": size}


def write_csv(path: PathLike, rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str]) -> Path:
    """Write ``rows`` as a whole CSV file atomically (never a torn or half-appended file)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, buf.getvalue())


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        if not value and prefix:
            out[prefix] = {}
        return out
    return {prefix: value}


class _NotSet:
    """A key one config has and the other lacks (``<not set>`` in messages)."""

    def __repr__(self) -> str:
        return "<not set>"


NOT_SET: Any = _NotSet()


def config_diff(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(dotted key, recorded value, current value)`` for every leaf where two configs differ.

    Both sides are compared as JSON data (tuples are lists, non-finite floats ``None``); a key
    missing on one side is :data:`NOT_SET` there.
    """
    a = _flatten(json.loads(json.dumps(to_jsonable(recorded))))
    b = _flatten(json.loads(json.dumps(to_jsonable(current))))
    missing = NOT_SET
    keys = [*a, *(k for k in b if k not in a)]  # the recorded config's order, then new keys
    return [(k, a.get(k, missing), b.get(k, missing)) for k in keys if a.get(k, missing) != b.get(k, missing)]


# ----------------------------------------------------------------------------- the lock


def _holder_text() -> str:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": _now()})


def _describe_holder(text: str) -> str:
    try:
        info = json.loads(text)
        return f"pid {info['pid']} on host {info['host']}, since {info['since']}"
    except (ValueError, KeyError, TypeError):
        return "an unknown process (unreadable lock file)"


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace").strip()


def _acquire_lock(folder: Path) -> tuple[int, str]:
    """Take the exclusive lock on ``folder/.lock``; returns (fd, text left by a dead holder or "")."""
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_fd(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunLockedError(f"run folder {folder} is in use by {_describe_holder(holder)}: wait for that "
                                 "run to finish, or choose another --out") from None
        # A releasing holder unlinks the file while still holding it: if ours is no longer the
        # file at `path`, we locked a dead inode and must start over.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        stale = _read_fd(fd)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (_holder_text() + "\n").encode())
        os.fsync(fd)
        return fd, stale


def _release_lock(folder: Path, fd: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder / LOCK_FILE)  # while still holding it: see _acquire_lock
    os.close(fd)


def _lock_and_clean(folder: Path) -> int:
    """Lock ``folder`` (reporting a stale lock taken over), then remove its stray temporaries."""
    fd, stale = _acquire_lock(folder)
    try:
        if stale:
            log.warning("run folder %s: took over the stale lock of %s (that process is gone)", folder,
                        _describe_holder(stale))
        removed = remove_stray_temporaries(folder)
        if removed:
            log.warning("run folder %s: removed %d stray temporary file(s) of an interrupted write: %s", folder,
                        len(removed), ", ".join(sorted(p.name for p in removed)))
    except BaseException:
        _release_lock(folder, fd)
        raise
    return fd


@contextlib.contextmanager
def run_lock(folder: PathLike, *, enabled: bool = True) -> Iterator[Path]:
    """Hold the run folder's exclusive lock for the ``with`` block (no record, no refusal logic:
    for callers that keep their own record, e.g. the search's ``search.json``).

    A stale lock is taken over and stray temporaries are removed, as in :meth:`RunDir.open`.
    ``enabled=False`` makes it a no-op (DDP ranks other than 0).

    Raises:
        RunLockedError: another live process holds the lock.
        ValueError: ``folder`` is not an existing folder.
    """
    path = Path(folder)
    if not enabled:
        yield path
        return
    if not path.is_dir():
        raise ValueError(f"run folder {path} does not exist (or is not a folder)")
    fd = _lock_and_clean(path)
    try:
        yield path
    finally:
        _release_lock(path, fd)


# ----------------------------------------------------------------------------- the run folder


def _existing(folder: Path, files: Iterable[str]) -> list[str]:
    names = [RECORD_FILE, *files]
    return [n for n in names if (folder / n).exists()]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class RunDir:
    """An open, locked run folder (use :meth:`open`, as a context manager).

    Attributes:
        path: the folder.
        kind: what kind of run it holds (``"train"``, ``"search"``, ...).
        mode: how it was opened: ``"new"``, ``"resume"`` or ``"overwrite"``.
        config: the run's config as recorded (plain JSON data).
        record: the whole run record (``run.json``'s content).
        resumed_from_record: whether ``run.json`` existed when the folder was opened.
    """

    def __init__(self, path: Path, *, kind: str, mode: Mode, record: dict[str, Any], lock_fd: int,
                 resumed_from_record: bool) -> None:
        self.path = path
        self.kind = kind
        self.mode = mode
        self.record = record
        self.resumed_from_record = resumed_from_record
        self._lock_fd: int | None = lock_fd

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.record["config"])

    @property
    def is_open(self) -> bool:
        return self._lock_fd is not None

    def file(self, name: str) -> Path:
        """Path of one of the run's files."""
        return self.path / name

    @classmethod
    def open(cls, path: PathLike, *, kind: str, config: Mapping[str, Any], mode: Mode = "new",
             files: Sequence[str] = (), argv: Sequence[str] | None = None) -> RunDir:
        """Create or reopen the run folder ``path``, lock it and record this invocation.

        Args:
            path: the folder (created with its parents when missing).
            kind: the kind of run; reopening a folder of another kind is refused.
            config: plain data deciding the run's results; recorded, and compared on resume.
            mode: ``"new"`` (refuse a folder holding a run), ``"resume"`` (the folder must hold a
                run with the same kind and config) or ``"overwrite"`` (delete the run's ``files``
                and start over; earlier invocations stay in the record).
            files: the run's own files and folders, relative to ``path`` (e.g. ``last.pt``); any
                of them present marks the folder as holding a run, and ``"overwrite"`` deletes them.
            argv: the command line of this invocation (recorded; None for library calls).

        Returns:
            The open run folder; close it (or leave its ``with`` block) to release the lock.

        Raises:
            RunExistsError: ``mode="new"`` and the folder holds a run.
            RunLockedError: another live process holds the lock.
            ValueError: a bad mode; resuming a folder that holds no run, another kind of run, or
                one recorded with another config (the message names what changed).
        """
        if mode not in MODES:
            raise ValueError(f"RunDir.open: mode must be one of {MODES}, got {mode!r}")
        if not isinstance(config, Mapping):
            raise TypeError(f"RunDir.open: config must be a mapping, got {type(config).__name__}")
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"run folder {folder} is a file: give a folder for --out")
        if mode == "resume" and not folder.exists():
            raise ValueError(f"nothing to resume: run folder {folder} does not exist. Hint: drop --resume to start "
                             "a run")
        folder.mkdir(parents=True, exist_ok=True)
        fd = _lock_and_clean(folder)
        try:
            plain = json.loads(json.dumps(to_jsonable(config)))
            record, had_record = _prepare_record(folder, kind=kind, config=plain, mode=mode, files=files)
            record["invocations"].append({"argv": None if argv is None else list(argv), "mode": mode,
                                          "pid": os.getpid(), "host": socket.gethostname(), "started": _now(),
                                          "versions": versions()})
            write_json(folder / RECORD_FILE, record)
        except BaseException:
            _release_lock(folder, fd)
            raise
        return cls(folder, kind=kind, mode=mode, record=record, lock_fd=fd, resumed_from_record=had_record)

    def close(self, outcome: str = "completed") -> None:
        """Record this invocation's end and outcome, then release the lock (idempotent)."""
        if self._lock_fd is None:
            return
        try:
            last = self.record["invocations"][-1]
            last.update({"ended": _now(), "outcome": outcome})
            write_json(self.path / RECORD_FILE, self.record)
        finally:
            fd, self._lock_fd = self._lock_fd, None
            _release_lock(self.path, fd)

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close("completed")
            return
        first = str(exc).splitlines()[0] if exc is not None and str(exc) else ""
        self.close(f"failed: {exc_type.__name__}" + (f": {first}" if first else ""))

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"RunDir({str(self.path)!r}, kind={self.kind!r}, mode={self.mode!r}, {state})"


def _read_record(folder: Path) -> dict[str, Any]:
    path = folder / RECORD_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"run record {path} is unreadable ({e}). Hint: --overwrite starts the run over") from None
    ok = (isinstance(record, dict) and record.get("format") == FORMAT and isinstance(record.get("config"), dict)
          and isinstance(record.get("invocations"), list))
    if not ok:
        raise ValueError(f"{path} is not a robnet run record. Hint: choose another --out, or --overwrite")
    if not isinstance(record.get("version"), int) or record["version"] > VERSION:
        raise ValueError(f"run record {path} has format version {record.get('version')!r}; this robnet reads "
                         f"up to {VERSION}. Hint: upgrade robnet")
    return record


def _fresh_record(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "kind": kind, "created": _now(), "config": config,
            "invocations": []}


def _prepare_record(folder: Path, *, kind: str, config: dict[str, Any], mode: Mode,
                    files: Sequence[str]) -> tuple[dict[str, Any], bool]:
    """Check ``folder`` against ``mode`` and return the record to append this invocation to."""
    present = _existing(folder, files)
    had_record = RECORD_FILE in present
    if mode == "new":
        if present:
            raise RunExistsError(f"run folder {folder} already holds a run ({', '.join(present)}): continue it "
                                 "with --resume, replace it with --overwrite, or choose another --out")
        return _fresh_record(kind, config), False
    if mode == "overwrite":
        record = _fresh_record(kind, config)
        if had_record:
            try:
                record = _read_record(folder)
                record.setdefault("overwritten", []).append({"at": _now(), "kind": record.get("kind"),
                                                             "config": record["config"]})
            except ValueError as e:
                log.warning("run folder %s: replacing an unreadable run record (%s)", folder, e)
        for name in files:
            _remove(folder / name)
        if present:
            fsync_dir(folder)
            log.warning("run folder %s: --overwrite deleted %s", folder, ", ".join(n for n in present
                                                                                  if n != RECORD_FILE) or "nothing")
        record.update({"kind": kind, "config": config})
        return record, had_record
    if not present:
        raise ValueError(f"nothing to resume: run folder {folder} holds no run. Hint: drop --resume to start one")
    if not had_record:
        log.warning("run folder %s has no run record (written by an older robnet): its settings cannot be "
                    "checked; recording the current ones", folder)
        return _fresh_record(kind, config), False
    record = _read_record(folder)
    if record.get("kind") != kind:
        raise ValueError(f"cannot resume {folder}: it holds a {record.get('kind')!r} run, not a {kind!r} run. "
                         "Hint: choose another --out")
    diffs = config_diff(record["config"], config)
    if diffs:
        shown = ", ".join(f"{k} ({_short(a)} recorded, {_short(b)} now)" for k, a, b in diffs[:_SHOWN_DIFFS])
        more = f" and {len(diffs) - _SHOWN_DIFFS} more" if len(diffs) > _SHOWN_DIFFS else ""
        raise ValueError(f"cannot resume {folder}: the config differs in {shown}{more}. Hint: resume with the "
                         "recorded settings (see run.json), or start a new run with another --out")
    return record, True

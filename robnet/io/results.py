"""One schema for everything robnet and fspkit write: provenance, seeds, strict JSON and JSON Lines.

Every result file (``robnet eval --json``, ``fspkit score --json``, training logs, search records)
carries the same provenance block::

    {"versions": {"robnet": ..., "torch": ..., "numpy": ..., "python": ...},
     "device": "cuda:0", "seed": 0, "deterministic": false, "created": "2026-11-26T11:00:00+00:00",
     "settings": {...the frozen config, asdict...}}

JSON is strict (RFC 8259): NaN and infinities are written as ``null``; a writer that knows why a
value is missing records the reason beside it (``"pgd_acc": null, "pgd_acc_missing": "..."``).
JSON Lines files are appended one object per line and fsynced, so a crash leaves at most a torn
last line, which :func:`read_jsonl` tolerates (and reports).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from robnet.io.files import atomic_write, fsync_dir

__all__ = [
    "JsonlRead",
    "append_jsonl",
    "check_output_path",
    "config_hash",
    "derive_seed",
    "dumps",
    "provenance",
    "read_jsonl",
    "to_jsonable",
    "versions",
    "write_json",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    import numpy as np
    import torch

    import robnet

    return {"robnet": robnet.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _deterministic() -> bool:
    import torch

    return bool(torch.are_deterministic_algorithms_enabled())


def provenance(*, seed: int | None, device: Any = None, settings: Any = None) -> dict[str, Any]:
    """The provenance block of a result: versions, device, seed, deterministic flag, time, settings.

    ``settings`` may be a dataclass (recorded with ``asdict``) or any plain mapping.
    """
    return {"versions": versions(), "device": None if device is None else str(device), "seed": seed,
            "deterministic": _deterministic(),
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "settings": to_jsonable(settings) if settings is not None else None}


def derive_seed(*keys: int | str) -> int:
    """A seed in ``[0, 2**63)`` derived from ``keys`` (e.g. ``(run_seed, "candidate", 17)``).

    Stable across processes, machines and Python versions (BLAKE2b of the keys' text, unlike
    ``hash()``), so shards and resumed runs draw the same randomness for the same keys.
    """
    if not keys:
        raise ValueError("derive_seed needs at least one key")
    for k in keys:
        if isinstance(k, bool) or not isinstance(k, int | str):
            raise TypeError(f"derive_seed keys must be int or str, got {type(k).__name__} {k!r}")
    text = "\x1f".join(f"{type(k).__name__}:{k}" for k in keys)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data from ``obj``: dataclasses and mappings become dicts, tuples and sets lists,
    paths and devices strings, numpy/torch scalars Python numbers, and non-finite floats ``None``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, bool) or obj is None or isinstance(obj, str | int):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(obj, "ndim", 0) == 0:
        return to_jsonable(item())
    tolist = getattr(obj, "tolist", None)  # numpy arrays / tensors
    if callable(tolist):
        return to_jsonable(tolist())
    return str(obj)


def dumps(obj: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`); never writes NaN or Infinity."""
    return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, sort_keys=False)


def config_hash(obj: Any) -> str:
    """A short stable hash of a config (its canonical JSON), to tell run folders' configs apart."""
    text = json.dumps(to_jsonable(obj), sort_keys=True, allow_nan=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict, indented JSON, atomically."""
    return atomic_write(path, dumps(obj, indent=2) + "\n")


def append_jsonl(path: PathLike, records: Mapping[str, Any] | Iterable[Mapping[str, Any]], *,
                 fsync: bool = True) -> None:
    """Append one record (a mapping) or several as JSON Lines, then flush and fsync.

    One ``write`` call per batch of records; a kill can tear at most the last line. A torn last
    line left by an earlier writer is cut off first (with a warning), so the new records start on
    a line of their own: appended to the fragment, they would be unreadable and dropped as torn.
    """
    rows = [records] if isinstance(records, Mapping) else list(records)
    if not rows:
        return
    text = "".join(dumps(r) + "\n" for r in rows)
    target = Path(path)
    new = not target.exists()
    if not new:
        _cut_torn_tail(target)
    with open(target, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    if new and fsync:
        fsync_dir(target.parent)


def _cut_torn_tail(target: Path) -> None:
    """Truncate ``target`` after its last newline when it does not end with one (a torn append)."""
    with open(target, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Scan back in blocks for the last newline: the torn fragment is at most one batch of records.
        end, block = size, 1 << 16
        keep = 0
        while end > 0:
            start = max(0, end - block)
            f.seek(start)
            chunk = f.read(end - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            end = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log.warning("%s: cut a torn last line (%d bytes) before appending (a writer was interrupted mid-append)",
                target, size - keep)


@dataclasses.dataclass(frozen=True)
class JsonlRead:
    """What :func:`read_jsonl` found: the records (with their 1-based line numbers), and whether the
    last line was torn."""

    records: list[dict[str, Any]]
    torn_tail: bool
    lines: list[int] = dataclasses.field(default_factory=list, compare=False)

    @property
    def numbered(self) -> list[tuple[int, dict[str, Any]]]:
        """``(line, record)`` pairs."""
        return list(zip(self.lines, self.records, strict=True))


def _json_line(target: Path, i: int, line: bytes) -> Any:
    try:
        return json.loads(line)
    except UnicodeDecodeError:
        raise ValueError(f"{target}: line {i} is not UTF-8 text; the file was not written by append_jsonl") from None


def read_jsonl(path: PathLike, *, repair: bool = False) -> JsonlRead:
    """Read a JSON Lines file written by :func:`append_jsonl`, streaming it line by line.

    A torn last line (a writer killed mid-append: no trailing newline, or not valid JSON) is
    tolerated and dropped; with ``repair=True`` it is also cut off the file, so the next append
    starts on a fresh line. A bad line anywhere else raises ``ValueError`` naming the line.
    """
    target = Path(path)
    if not target.exists():
        return JsonlRead([], False)
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    good_end = 0  # byte offset just past the last good line
    torn = False
    with open(target, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for i, line in enumerate(f, 1):
            if not line.endswith(b"\n"):  # the append did not finish, valid JSON or not
                torn = bool(line.strip()) or torn
                break
            if line.strip():
                try:
                    value = _json_line(target, i, line)
                except json.JSONDecodeError as e:
                    if f.tell() == size:  # only the final line may be torn
                        torn = True
                        break
                    raise ValueError(f"{target}: line {i} is not valid JSON ({e.msg}); the file was not written "
                                     "by append_jsonl or was edited by hand") from None
                if not isinstance(value, dict):
                    raise ValueError(f"{target}: line {i} holds a {type(value).__name__}, expected a JSON object")
                records.append(value)
                numbers.append(i)
            good_end = f.tell()
    if torn:
        log.warning("%s: dropped a torn last line (a writer was interrupted mid-append)", target)
        if repair:
            with open(target, "rb") as f:
                atomic_write(target, f.read(good_end))
    return JsonlRead(records, torn, numbers)


def check_output_path(path: PathLike, *, inputs: Sequence[PathLike] = (), what: str = "output") -> Path:
    """Check, before any compute, that ``path`` can be written: its folder exists, it is not a
    folder, it is writable, and it is none of ``inputs`` (never write over an input).

    Raises ``ValueError`` with one line naming the path and the problem.
    """
    p = Path(path)
    if p.exists() and p.is_dir():
        raise ValueError(f"{what} {p} is a folder: give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{what} {p}: folder {parent} does not exist (create it first)")
    for src in inputs:
        s = Path(src)
        same = False
        if p.exists() and s.exists():
            same = os.path.samefile(p, s)
        else:
            same = p.resolve() == s.resolve()
        if same:
            raise ValueError(f"{what} {p} is the input file {s}: refusing to write over an input")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise ValueError(f"{what} {p} is not writable")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {p}: folder {parent} is not writable")
    return p

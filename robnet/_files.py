"""File handling shared by the package: one atomic writer.

(md5, download and safe extraction move here from ``robnet.data``.)
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

PathLike = str | os.PathLike[str]


def temp_name(path: Path) -> Path:
    """The temporary sibling ``.NAME.<pid>.<random>.tmp`` that an atomic write goes through.

    Run folders clean stray ones (a writer killed mid-write) with :func:`remove_stray_temporaries`.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (not possible on every platform, e.g. Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on a clean exit it is fsynced and renamed
    over ``path`` (``os.replace``), on an exception it is removed and ``path`` is untouched.

    A crash at any moment leaves either the old file or the new one, never a torn one.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(target)
    try:
        # "x" (not mkstemp) so the file gets the usual umask permissions.
        with open(tmp, mode.replace("w", "x"), **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def atomic_write(path: PathLike, data: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Write ``data`` (bytes, text, or a callable that writes into a binary file) to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        if callable(data):
            data(f)
        else:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def remove_stray_temporaries(folder: PathLike) -> list[Path]:
    """Delete ``.*.tmp`` files left in ``folder`` by writers that were killed; returns what was removed."""
    removed = []
    for p in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    return removed

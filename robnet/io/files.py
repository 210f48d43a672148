"""File handling shared by the package: one atomic writer, md5, download, safe extraction.

Every file the package writes whole (checkpoints, downloads, JSON results) goes through
:func:`atomic_open`: a temporary sibling, fsync, ``os.replace``. A crash at any moment leaves the
old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import IO, Any

from tqdm.auto import tqdm

PathLike = str | os.PathLike[str]

log = logging.getLogger(__name__)


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
        with open(tmp, mode.replace("w", "x"), encoding=None if "b" in mode else "utf-8") as f:
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


# --------------------------------------------------------------------------------------------
# Checksums, download, extraction


def file_md5(path: PathLike) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def download_file(url: str, dest: PathLike, *, md5: str, progress: bool | None = None,
                  timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, verifying its md5; nothing is left behind on failure.

    The bytes stream through :func:`atomic_open` (a temporary sibling of ``dest``), hashed on the
    way, and are renamed onto ``dest`` only when the md5 matches.

    Args:
        url: an ``http://`` or ``https://`` URL.
        dest: the file to create (its folder is created if needed).
        md5: the expected hex md5.
        progress: show a tqdm bar on stderr; None: only when stderr is a terminal.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a Path.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"download_file: only http(s) URLs are supported, got {url!r}")
    dest = Path(dest)
    h = hashlib.md5(usedforsecurity=False)
    log.info("downloading %s to %s", url, dest)
    with atomic_open(dest, "wb") as out:
        try:
            resp = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.URLError as e:
            why = f"HTTP {e.code} {e.reason}" if isinstance(e, urllib.error.HTTPError) else e.reason
            raise ConnectionError(f"could not download {url}: {why}. Hint: check the "
                                  f"network, or fetch the file by hand and put it at {dest}") from e
        with resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                      file=sys.stderr, disable=not _show_progress(progress)) as bar:
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        got = h.hexdigest()
        if got != md5:  # raised inside atomic_open: the temporary file is removed, dest untouched
            raise ValueError(f"md5 mismatch for the download of {url}: got {got}, expected {md5}; the "
                             "download is damaged or not the official file, so it was deleted. Hint: try "
                             "again, or check that the URL points at the official file")
    return dest


def safe_extract(archive: PathLike, dest: PathLike) -> None:
    """Extract a tar archive into ``dest``, refusing members that could escape it (absolute paths,
    ``..``, links, devices): the whole archive is checked before anything is written."""
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
                kind = "link or special file" if not (m.isfile() or m.isdir()) else "path outside the folder"
                raise ValueError(f"refusing to extract {archive}: member {m.name!r} is a {kind}. Hint: "
                                 "the official archive holds only plain files; delete it and download again")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python < 3.11.4; the members were checked above
            tar.extractall(dest, members=members)


def extract_folder(archive: PathLike, member: str, dest: PathLike, *, what: str) -> Path:
    """Extract the folder ``member`` of a tar archive into ``dest`` (created; existing entries of
    the same names are replaced), through a temporary folder next to ``dest``.

    Args:
        archive: the tar file.
        member: the top-level folder inside the archive whose contents are wanted.
        dest: where the contents go.
        what: the archive's human name for the error message, e.g. ``"CIFAR-10"``.

    Returns:
        ``dest`` as a Path.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        safe_extract(archive, tmp)
        src = tmp / member
        if not src.is_dir():
            raise ValueError(f"{archive} does not contain the folder {member}/. Hint: it is not the official "
                             f"{what} archive; delete it and download again")
        dest.mkdir(parents=True, exist_ok=True)
        for item in src.iterdir():
            target = dest / item.name
            if item.is_dir() and target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %s into %s", archive, dest)
    return dest

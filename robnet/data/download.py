"""Official dataset files: where to get them, their md5s, fetching and verifying them.

``root`` is the folder that holds the dataset's standard folder (torchvision's convention): for
CIFAR-10 the one containing ``cifar-10-batches-py/``, for CIFAR-100 ``cifar-100-python/``, for
SVHN the ``.mat`` files themselves. Every CIFAR and SVHN file is md5-checked on load (the values
of :data:`CHECKSUMS`); ``download=True`` fetches the official file (:data:`URLS`), verifies its md5
and (for CIFAR) extracts it (:mod:`robnet.io.files`). A missing file or folder, here or in the
image folders (:mod:`robnet.data.folders`), raises :class:`DatasetNotFoundError` with a hint on
how to get it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from robnet.io.files import download_file, extract_folder, file_md5

__all__ = ["CHECKSUMS", "URLS", "DatasetNotFoundError"]

log = logging.getLogger(__name__)


# Official download locations, by file name. ``load_dataset(..., url=...)`` overrides them.
URLS: dict[str, str] = {
    "cifar-10-python.tar.gz": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar-100-python.tar.gz": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    "train_32x32.mat": "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
    "test_32x32.mat": "http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
}

# md5 of every official file (the same values torchvision checks). ``checksums=`` overrides them.
CHECKSUMS: dict[str, dict[str, str]] = {
    "cifar10": {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
    "svhn": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
}



class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset file or folder is missing (both a ``FileNotFoundError`` and a ``ValueError``)."""


@dataclass(frozen=True, kw_only=True)
class _FileSpec:
    """Where a file dataset lives, how to get it and what its files hold."""

    title: str  # human name for messages
    folder: str  # the standard folder under root ("" = root itself)
    splits: Mapping[str, tuple[str, ...]]  # split -> data files
    meta: str | None = None
    labels_key: str = "labels"
    names_key: str = "label_names"
    archive: str | None = None  # download: one archive holding the folder, or None (each file itself)
    noun: str = "file"
    source: str = ""
    classes: tuple[str, ...] = ()


_FILE_SPECS: dict[str, _FileSpec] = {
    "cifar10": _FileSpec(
        title="CIFAR-10", folder="cifar-10-batches-py",
        splits={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        meta="batches.meta", archive="cifar-10-python.tar.gz", noun="batch",
        source="the official python batches (cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)"),
    "cifar100": _FileSpec(
        title="CIFAR-100", folder="cifar-100-python", splits={"train": ("train",), "test": ("test",)},
        meta="meta", labels_key="fine_labels", names_key="fine_label_names",
        archive="cifar-100-python.tar.gz", noun="batch",
        source="the official python batches (cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)"),
    "svhn": _FileSpec(
        title="SVHN", folder="", splits={"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
        source="the official train_32x32.mat / test_32x32.mat (from http://ufldl.stanford.edu/housenumbers/)",
        classes=tuple(str(d) for d in range(10))),
}


def _resolve_url(filename: str, url: str | None) -> str:
    if url is None:
        return URLS[filename]
    return url + filename if url.endswith("/") else url


def _ensure_files(spec: _FileSpec, root: Path, needed: Sequence[str], *, download: bool, url: str | None,
                  md5s: Mapping[str, str], progress: bool | None) -> list[Path]:
    """Paths of ``needed`` files under root/folder, md5-verified (downloaded first if asked)."""
    folder = root / spec.folder if spec.folder else root
    paths = [folder / f for f in needed]
    digests: dict[Path, str] = {}  # each file is hashed once per call unless it is replaced

    def digest(p: Path) -> str:
        if p not in digests:
            digests[p] = file_md5(p)
        return digests[p]

    def ok(p: Path) -> bool:
        return p.is_file() and digest(p) == md5s[p.name]

    if download and not all(ok(p) for p in paths):
        if spec.archive is not None:
            archive = root / spec.archive
            if not ok(archive):
                download_file(_resolve_url(spec.archive, url), archive, md5=md5s[spec.archive],
                              progress=progress)
            extract_folder(archive, spec.folder, folder, what=spec.title)
            digests.clear()
        else:
            for p in paths:
                if not ok(p):
                    download_file(_resolve_url(p.name, url), p, md5=md5s[p.name], progress=progress)
                    digests.pop(p, None)
    for p in paths:
        if not p.is_file():
            hint = f"pass download=True (or `--download`), or put {spec.source} under {root}"
            if spec.folder and (root / p.name).is_file():
                hint = (f"{root} looks like the {spec.folder}/ folder itself: pass its parent "
                        f"{root.parent} as root (the folder that holds the dataset's standard folder)")
            raise DatasetNotFoundError(f"{spec.title} not found: {p} is missing. Hint: {hint}")
        got = digest(p)
        if got != md5s[p.name]:
            raise ValueError(f"md5 mismatch for {p}: got {got}, expected {md5s[p.name]}; the file is damaged "
                             f"or not the official {spec.noun}: delete it and download again (download=True "
                             "or `--download`)")
    log.info("%s: md5 verified for %d files under %s", spec.title, len(paths), folder)
    return paths

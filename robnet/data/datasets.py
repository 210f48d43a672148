"""Datasets: checksummed loaders for the in-memory and the streamed image sets.

Two kinds of dataset come out of :func:`load_dataset`:

* :class:`ArrayDataset` for sets that fit in memory (``cifar10``, ``cifar100``, ``svhn`` and the
  embedded default ``digits``): uint8 images ``(N, C, H, W)`` plus int64 labels. Iterate with
  :class:`robnet.data.loader.DeviceLoader` (GPU-resident, on-device augmentation).
* :class:`FolderDataset` for ``tinyimagenet`` and ``imagenet`` (validation), streamed from disk
  with Pillow; iterate with :func:`robnet.data.loader.make_loader` (a standard ``DataLoader``).

``root`` is the folder that holds the dataset's standard folder (torchvision's convention): for
CIFAR-10 the one containing ``cifar-10-batches-py/``, for CIFAR-100 ``cifar-100-python/``, for
SVHN the ``.mat`` files themselves, for Tiny-ImageNet ``tiny-imagenet-200/`` and for ImageNet
``imagenet/val/<wnid>/*.JPEG``. Every CIFAR and SVHN file is md5-checked on load;
``download=True`` fetches the official file, verifies its md5 and (for CIFAR) extracts it
(:mod:`robnet.io.files`).
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import logging
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from robnet.io.files import download_file, extract_folder, file_md5
from robnet.io.unpickle import NUMPY_ARRAYS, RestrictedUnpickler

__all__ = [
    "CHECKSUMS",
    "DATASETS",
    "URLS",
    "ArrayDataset",
    "DatasetNotFoundError",
    "FolderDataset",
    "ImageReadError",
    "imagenet_wnids",
    "load_dataset",
    "load_memory_dataset",
    "stable_permutation",
]

log = logging.getLogger(__name__)


DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "svhn", "digits", "tinyimagenet", "imagenet")

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

# Decision: the embedded ``digits`` set (scikit-learn's 1797 8x8 images) is split once, with this
# fixed seed, into 1437 train / 360 test images.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360


class DatasetNotFoundError(FileNotFoundError, ValueError):
    """A dataset file or folder is missing (both a ``FileNotFoundError`` and a ``ValueError``)."""


class ImageReadError(ValueError):
    """An image file of a :class:`FolderDataset` cannot be decoded; the message names the file."""


# --------------------------------------------------------------------------------------------
# In-memory datasets


@dataclass(frozen=True, eq=False, repr=False)
class ArrayDataset:
    """An image classification set held in memory.

    Attributes:
        name: dataset name, e.g. ``"cifar10"``.
        split: ``"train"``, ``"test"`` or ``"val"`` (see :func:`train_val_split`).
        images: uint8 tensor ``(N, C, H, W)`` (CPU).
        labels: int64 tensor ``(N,)`` with values in ``[0, len(classes))``.
        classes: class names; label ``k`` is ``classes[k]``.
    """

    name: str
    split: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        what = f"ArrayDataset {self.name!r}/{self.split!r}"
        images, labels = self.images, self.labels
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
            got = (f"{images.dtype} tensor of shape {tuple(images.shape)}"
                   if isinstance(images, torch.Tensor) else type(images).__name__)
            raise TypeError(f"{what}: images must be a uint8 tensor of shape (N, C, H, W), got {got}. "
                            "Hint: keep images as uint8 0..255; the loaders convert to float on the device")
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1:
            got = (f"{labels.dtype} tensor of shape {tuple(labels.shape)}"
                   if isinstance(labels, torch.Tensor) else type(labels).__name__)
            raise TypeError(f"{what}: labels must be an int64 tensor of shape (N,), got {got}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{what}: {len(self.images)} images but {len(self.labels)} labels")
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes or not all(isinstance(c, str) for c in self.classes):
            raise TypeError(f"{what}: classes must be a non-empty sequence of str, got {self.classes!r}")
        if len(self.labels) and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes)):
            raise ValueError(f"{what}: labels must lie in [0, {len(self.classes)}), got "
                             f"[{int(self.labels.min())}, {int(self.labels.max())}]")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """One ``(uint8 image (C, H, W), label)`` pair, so the set also works with a DataLoader."""
        return self.images[index], int(self.labels[index])

    def __repr__(self) -> str:
        return (f"ArrayDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"image_shape={self.image_shape}, num_classes={self.num_classes})")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> ArrayDataset:
        """The samples at ``indices`` (in that order) as a new dataset with the same name and split.

        Args:
            indices: integer positions in ``[-N, N)``.
        """
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices)
        if idx.numel() == 0:
            idx = idx.to(torch.int64)
        if idx.dim() != 1 or idx.dtype in (torch.bool,) or idx.is_floating_point() or idx.is_complex():
            raise TypeError(f"subset of {self!r}: expected a 1-D sequence of integer indices, got "
                            f"{idx.dtype} of shape {tuple(idx.shape)}. Hint: for a boolean mask use "
                            "mask.nonzero().flatten()")
        idx = idx.to(torch.int64).cpu()
        n = len(self)
        if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise ValueError(f"subset of {self!r}: indices must lie in [{-n}, {n}), got "
                             f"[{int(idx.min())}, {int(idx.max())}]")
        return ArrayDataset(name=self.name, split=self.split, images=self.images[idx].clone(),
                            labels=self.labels[idx].clone(), classes=self.classes)


def stable_permutation(n: int, seed: int) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on ``seed`` (SplitMix64 keys, argsorted).

    Library-version independent on purpose: the validation split of a search must not change
    when numpy or torch changes its random streams.
    """
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed % (1 << 64))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.argsort(z, kind="stable")


# --------------------------------------------------------------------------------------------
# Official files: safe unpickling, checksums


def _load_pickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            obj = RestrictedUnpickler(f, allowlist=NUMPY_ARRAYS, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"cannot read {path}: {e}. Hint: only the official python pickles are accepted "
                         "(numpy arrays, lists and dicts; no other objects); delete it and download "
                         "again") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, kw_only=True)
class _FileSpec:
    """Where a file dataset lives and how to get it."""

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


def _load_cifar(name: str, spec: _FileSpec, paths: Sequence[Path], split: str) -> ArrayDataset:
    *data_paths, meta_path = paths
    meta = _load_pickle(meta_path)
    if spec.names_key not in meta:
        raise ValueError(f"{meta_path}: no {spec.names_key!r} entry (keys: {sorted(meta)}); not an official "
                         f"{spec.title} meta file")
    classes = tuple(_text(c) for c in meta[spec.names_key])
    images, labels = [], []
    for p in data_paths:
        d = _load_pickle(p)
        if "data" not in d or spec.labels_key not in d:
            raise ValueError(f"{p}: expected 'data' and {spec.labels_key!r} entries, got keys {sorted(d)}; "
                             f"not an official {spec.title} batch")
        x = np.asarray(d["data"])
        y = np.asarray(d[spec.labels_key], dtype=np.int64)
        if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32 or len(y) != len(x):
            raise ValueError(f"{p}: expected uint8 data of shape (n, 3072) and n labels, got {x.dtype} "
                             f"{x.shape} and {len(y)} labels; not an official {spec.title} batch")
        # each row: 1024 R, 1024 G, 1024 B values, row-major 32x32 planes = (C, H, W)
        images.append(x.reshape(-1, 3, 32, 32))
        labels.append(y)
    return ArrayDataset(name=name, split=split, images=torch.from_numpy(np.concatenate(images)),
                        labels=torch.from_numpy(np.concatenate(labels)), classes=classes)


def _load_svhn(name: str, spec: _FileSpec, path: Path, split: str) -> ArrayDataset:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as e:  # scipy raises several types for unreadable files
        raise ValueError(f"cannot read {path}: {e}. Hint: delete it and download again") from e
    x, y = mat.get("X"), mat.get("y")
    if x is None or y is None or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or y.size != x.shape[3]:
        raise ValueError(f"{path}: expected X of shape (32, 32, 3, N) and N labels y; not an official "
                         "SVHN file")
    images = np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)).astype(np.uint8, copy=False))  # (N, C, H, W)
    labels = y.reshape(-1).astype(np.int64)
    labels[labels == 10] = 0  # SVHN labels the digit 0 as 10
    return ArrayDataset(name=name, split=split, images=torch.from_numpy(images),
                        labels=torch.from_numpy(labels), classes=spec.classes)


def _load_digits(split: str) -> ArrayDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = np.asarray(bunch.images)  # (1797, 8, 8), values 0..16
    # 0..16 -> 0..255: multiply by 16 (16 * 16 = 256 clips to 255)
    images = np.clip(raw * 16, 0, 255).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    perm = stable_permutation(len(labels), DIGITS_SPLIT_SEED)
    idx = np.sort(perm[:DIGITS_TEST_SIZE] if split == "test" else perm[DIGITS_TEST_SIZE:])
    return ArrayDataset(name="digits", split=split, images=torch.from_numpy(images[idx].copy()),
                        labels=torch.from_numpy(labels[idx].copy()), classes=tuple(str(d) for d in range(10)))


def load_dataset(name: str, root: str | os.PathLike[str] | None = None, split: str = "train", *,
                 download: bool = False, url: str | None = None, checksums: Mapping[str, str] | None = None,
                 progress: bool | None = None) -> ArrayDataset | FolderDataset:
    """Load a dataset split.

    ======================  ==========================================  ===================  =============
    name                    files under ``root``                        splits               returns
    ======================  ==========================================  ===================  =============
    ``cifar10``             ``cifar-10-batches-py/`` (md5-checked)      train 50000, test    ArrayDataset
    ``cifar100``            ``cifar-100-python/`` (md5, fine labels)    train 50000, test    ArrayDataset
    ``svhn``                ``train_32x32.mat``, ``test_32x32.mat``     train 73257, test    ArrayDataset
    ``digits``              none (scikit-learn's bundled set)           train 1437, test 360 ArrayDataset
    ``tinyimagenet``        ``tiny-imagenet-200/``                      train, test (= val)  FolderDataset
    ``imagenet``            ``imagenet/val/<wnid>/*.JPEG``              test (= val)         FolderDataset
    ======================  ==========================================  ===================  =============

    ``digits``: the 1797 8x8 images, 1 channel, values ``0..16`` scaled by 16 and clipped to
    ``0..255``; split once with the fixed seed :data:`DIGITS_SPLIT_SEED` into 1437 train / 360
    test images. ImageNet images are resized (shorter side 256) and center-cropped to 224.

    Args:
        name: one of :data:`DATASETS` (case-insensitive).
        root: the folder holding the dataset's standard folder (ignored for ``digits``).
        split: ``"train"`` or ``"test"``; ``"val"`` is accepted for tinyimagenet/imagenet (their
            labelled validation sets serve as test sets).
        download: fetch the official file (cifar10, cifar100, svhn) when missing or damaged, with
            a progress bar; the md5 is verified before anything is kept.
        url: download location overriding :data:`URLS`; ending in ``/`` it is a base the file
            name is appended to (a mirror), otherwise the full URL of the one file needed.
        checksums: md5 per file name overriding :data:`CHECKSUMS` (tests, re-packed mirrors).
        progress: show download progress; None: only when stderr is a terminal.

    Returns:
        An :class:`ArrayDataset` (in-memory sets) or a :class:`FolderDataset` (streamed).
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in DATASETS:
        close = difflib.get_close_matches(str(name).lower(), DATASETS, n=2)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}.{hint}")
    valid_splits = {"imagenet": ("test", "val"),
                    "tinyimagenet": ("train", "test", "val")}.get(key, ("train", "test"))
    if split not in valid_splits:
        extra = " (only the ImageNet validation set is supported)" if key == "imagenet" else ""
        raise ValueError(f"dataset {key!r}: unknown split {split!r}; expected one of "
                         f"{', '.join(valid_splits)}{extra}")
    if key == "digits":
        return _load_digits(split)
    if root is None:
        raise ValueError(f"dataset {key!r} is read from files: pass root, the folder that holds its standard "
                         "folder (the CLI's --data-dir). Hint: the embedded 'digits' set needs no files")
    root_path = Path(root).expanduser()
    if key in ("tinyimagenet", "imagenet"):
        if download:
            hint = (f"unzip http://cs231n.stanford.edu/tiny-imagenet-200.zip under {root_path}"
                    if key == "tinyimagenet" else
                    f"put the ImageNet validation images under {root_path / 'imagenet' / 'val'}/<wnid>/")
            raise ValueError(f"download=True is not supported for {key!r} (cifar10, cifar100 and svhn only). "
                             f"Hint: {hint}")
        return _tinyimagenet(root_path, split) if key == "tinyimagenet" else _imagenet_val(root_path)
    spec = _FILE_SPECS[key]
    md5s = {**CHECKSUMS[key], **(checksums or {})}
    needed = [*spec.splits[split], *([spec.meta] if spec.meta else [])]
    if download:
        root_path.mkdir(parents=True, exist_ok=True)
    paths = _ensure_files(spec, root_path, needed, download=download, url=url, md5s=md5s,
                          progress=progress)
    if key == "svhn":
        return _load_svhn(key, spec, paths[0], split)
    return _load_cifar(key, spec, paths, split)


def load_memory_dataset(name: str, root: str | os.PathLike[str] | None = None, split: str = "train", *,
                        download: bool = False) -> ArrayDataset:
    """:func:`load_dataset` for the in-memory sets (cifar10, cifar100, svhn, digits) that the
    GPU-resident training/evaluation paths need; a clear error for the streamed folder sets."""
    ds = load_dataset(name, root, split, download=download)
    if not isinstance(ds, ArrayDataset):
        raise ValueError(f"{name} is a streamed folder dataset; training runs on in-memory sets (cifar10, "
                         "cifar100, svhn, digits) with the data resident on the device. Hint: robnet eval and "
                         "fspkit score do stream folder sets; for training, iterate "
                         "robnet.data.loader.make_loader(load_dataset(...)) in your own loop")
    return ds

# --------------------------------------------------------------------------------------------
# Folder datasets (streamed)

_IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


def _pil_image() -> Any:
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow ships with matplotlib
        raise ImportError("reading tinyimagenet/imagenet images needs Pillow. Hint: pip install pillow "
                          "(it also comes with matplotlib: pip install 'fspkit[plots]')") from e
    return Image


class FolderDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images streamed from disk: ``(uint8 tensor (3, H, W), label)`` per item.

    Args:
        samples: ``(image path, label)`` pairs.
        classes: class names (for the ImageNet layouts, the sorted wnids).
        name: dataset name.
        split: split name.
        resize: resize so the shorter side has this length (bilinear), or None.
        crop: center-crop to ``crop x crop`` after resizing, or None.
    """

    def __init__(self, samples: Sequence[tuple[str | os.PathLike[str], int]], classes: Sequence[str], *,
                 name: str, split: str, resize: int | None = None, crop: int | None = None) -> None:
        _pil_image()
        for attr, value in (("resize", resize), ("crop", crop)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"FolderDataset: {attr} must be a positive int or None, got {value!r}")
        self.samples = [(str(p), int(y)) for p, y in samples]
        self.classes = tuple(classes)
        self.name = name
        self.split = split
        self.resize = resize
        self.crop = crop
        bad = [y for _, y in self.samples if not 0 <= y < len(self.classes)]
        if bad:
            raise ValueError(f"FolderDataset {name!r}: labels must lie in [0, {len(self.classes)}), "
                             f"got {bad[0]}")

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"FolderDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
                f"num_classes={self.num_classes}, resize={self.resize}, crop={self.crop})")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def labels(self) -> torch.Tensor:
        """All labels, int64 ``(N,)`` (no image is read)."""
        return torch.tensor([y for _, y in self.samples], dtype=torch.int64)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        image_mod = _pil_image()
        try:
            arr = self._read(path, image_mod)  # (H, W, 3)
        except (OSError, SyntaxError, EOFError, image_mod.DecompressionBombError) as e:
            reason = " ".join(str(e).split()) or type(e).__name__
            raise ImageReadError(f"cannot read image {path}: {reason}. Hint: replace or remove the file (a "
                                 "damaged or truncated copy?)") from None
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), label

    def _read(self, path: str, image_mod: Any) -> np.ndarray:
        with image_mod.open(path) as im:
            im = im.convert("RGB")
            if self.resize is not None:
                w, h = im.size
                scale = self.resize / min(w, h)
                # torchvision's Resize(int): the shorter side becomes `resize`, the longer one scales
                size = (self.resize, int(h * scale)) if w <= h else (int(w * scale), self.resize)
                if size != (w, h):
                    im = im.resize(size, image_mod.Resampling.BILINEAR)
            if self.crop is not None:
                w, h = im.size
                if w < self.crop or h < self.crop:
                    raise ValueError(f"{path}: image {w}x{h} is smaller than the crop {self.crop}. Hint: set "
                                     "resize >= crop")
                left, top = round((w - self.crop) / 2), round((h - self.crop) / 2)
                im = im.crop((left, top, left + self.crop, top + self.crop))
            return np.array(im, dtype=np.uint8)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS)


def _tinyimagenet(root: Path, split: str) -> FolderDataset:
    base = root / "tiny-imagenet-200"
    hint = ("Hint: unzip tiny-imagenet-200.zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip) under "
            f"{root}")
    wnids_file = base / "wnids.txt"
    if not wnids_file.is_file():
        if (root / "wnids.txt").is_file():
            hint = f"Hint: {root} looks like tiny-imagenet-200/ itself: pass its parent {root.parent}"
        raise DatasetNotFoundError(f"Tiny-ImageNet not found: {wnids_file} is missing. {hint}")
    wnids = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    index = {w: i for i, w in enumerate(wnids)}
    samples: list[tuple[Path, int]] = []
    if split == "train":
        for w in wnids:
            folder = base / "train" / w / "images"
            if not folder.is_dir():
                raise DatasetNotFoundError(f"Tiny-ImageNet train split incomplete: {folder} is missing. "
                                           f"{hint}")
            samples += [(p, index[w]) for p in _images_in(folder)]
    else:
        ann = base / "val" / "val_annotations.txt"
        if not ann.is_file():
            raise DatasetNotFoundError(f"Tiny-ImageNet val split incomplete: {ann} is missing. {hint}")
        for lineno, line in enumerate(ann.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in index:
                raise ValueError(f"{ann}, line {lineno}: expected '<file>\\t<wnid>\\t...' with a wnid from "
                                 f"wnids.txt, got {line!r}")
            path = base / "val" / "images" / parts[0]
            if not path.is_file():
                raise DatasetNotFoundError(f"Tiny-ImageNet val image {path} is missing. {hint}")
            samples.append((path, index[parts[1]]))
        samples.sort(key=lambda s: str(s[0]))
    return FolderDataset(samples, wnids, name="tinyimagenet", split=split)


def _imagenet_val(root: Path) -> FolderDataset:
    folder = root / "imagenet" / "val"
    if not folder.is_dir():
        hint = f"put the validation images under {folder}/<wnid>/*.JPEG (the ImageFolder layout)"
        if (root / "val").is_dir():
            hint = f"{root} looks like the imagenet/ folder itself: pass its parent {root.parent}"
        raise DatasetNotFoundError(f"ImageNet not found: {folder} is missing. Hint: {hint}")
    present = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not present:
        raise DatasetNotFoundError(f"ImageNet: {folder} has no class folders. Hint: use the ImageFolder "
                                   f"layout {folder}/<wnid>/*.JPEG (the validation tarball is flat; sort it "
                                   "into class folders first)")
    wnids = imagenet_wnids()
    index = {w: i for i, w in enumerate(wnids)}
    for name in present:
        if name not in index:
            close = difflib.get_close_matches(name, wnids, n=1)
            guess = f" Did you mean {close[0]}?" if close else ""
            raise ValueError(f"ImageNet: {folder / name} is not one of the 1,000 ILSVRC-2012 class folders (wnids "
                             f"such as {wnids[0]}).{guess} Hint: move other folders out of {folder}; labels are "
                             "the standard class indices, so only the official wnids can be read")
    # Labels are the standard indices (position in the sorted 1,000 wnids), whichever folders are present.
    samples = [(p, index[w]) for w in present for p in _images_in(folder / w)]
    return FolderDataset(samples, wnids, name="imagenet", split="val", resize=256, crop=224)


@functools.cache
def imagenet_wnids() -> tuple[str, ...]:
    """The 1,000 ILSVRC-2012 class wnids in the standard order (sorted): label ``k`` of ImageNet-1k
    models and of ``load_dataset("imagenet", ...)`` is ``imagenet_wnids()[k]``. Shipped with the
    package (``robnet/imagenet_wnids.txt``)."""
    text = importlib.resources.files(__package__).joinpath("imagenet_wnids.txt").read_text(encoding="ascii")
    wnids = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(wnids) != 1000 or list(wnids) != sorted(set(wnids)):
        raise RuntimeError(f"robnet/imagenet_wnids.txt is damaged ({len(wnids)} entries, expected 1,000 sorted "
                           "unique wnids). Hint: reinstall robnet")
    return wnids



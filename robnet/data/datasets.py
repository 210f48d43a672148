"""Datasets: :func:`load_dataset` and the in-memory image sets.

Two kinds of dataset come out of :func:`load_dataset`:

* :class:`ArrayDataset` for sets that fit in memory (``cifar10``, ``cifar100``, ``svhn`` and the
  embedded default ``digits``): uint8 images ``(N, C, H, W)`` plus int64 labels. Iterate with
  :class:`robnet.data.loader.DeviceLoader` (GPU-resident, on-device augmentation).
* :class:`~robnet.data.folders.FolderDataset` for ``tinyimagenet`` and ``imagenet`` (validation),
  streamed from disk with Pillow; iterate with :func:`robnet.data.loader.make_loader` (a standard
  ``DataLoader``).

``root`` is the folder that holds the dataset's standard folder (torchvision's convention): for
CIFAR-10 the one containing ``cifar-10-batches-py/``, for CIFAR-100 ``cifar-100-python/``, for
SVHN the ``.mat`` files themselves, for Tiny-ImageNet ``tiny-imagenet-200/`` and for ImageNet
``imagenet/val/<wnid>/*.JPEG``. Every CIFAR and SVHN file is md5-checked on load;
``download=True`` fetches the official file, verifies its md5 and (for CIFAR) extracts it
(:mod:`robnet.data.download`).
"""

from __future__ import annotations

import difflib
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robnet.data.download import _FILE_SPECS, CHECKSUMS, _ensure_files, _FileSpec
from robnet.data.folders import FolderDataset, _imagenet_val, _tinyimagenet
from robnet.io.unpickle import NUMPY_ARRAYS, RestrictedUnpickler

__all__ = [
    "DATASETS",
    "ArrayDataset",
    "load_dataset",
    "load_memory_dataset",
    "stable_permutation",
]


DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "svhn", "digits", "tinyimagenet", "imagenet")

# Decision: the embedded ``digits`` set (scikit-learn's 1797 8x8 images) is split once, with this
# fixed seed, into 1437 train / 360 test images.
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360


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
# Reading the sets: official CIFAR pickles (restricted unpickler), SVHN .mat files, digits


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


def _load_file_set(key: str, root: Path, split: str, *, download: bool, url: str | None,
                   checksums: Mapping[str, str] | None, progress: bool | None) -> ArrayDataset:
    """An md5-checked set read from its official files (cifar10, cifar100, svhn)."""
    spec = _FILE_SPECS[key]
    md5s = {**CHECKSUMS[key], **(checksums or {})}
    needed = [*spec.splits[split], *([spec.meta] if spec.meta else [])]
    if download:
        root.mkdir(parents=True, exist_ok=True)
    paths = _ensure_files(spec, root, needed, download=download, url=url, md5s=md5s, progress=progress)
    if key == "svhn":
        return _load_svhn(key, spec, paths[0], split)
    return _load_cifar(key, spec, paths, split)


def _dataset_key(name: str, split: str) -> str:
    """The lower-cased dataset name, once ``name`` and its ``split`` are known to be valid."""
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
    return key


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
        url: download location overriding :data:`~robnet.data.download.URLS`; ending in ``/`` it
            is a base the file name is appended to (a mirror), otherwise the full URL of the one
            file needed.
        checksums: md5 per file name overriding :data:`~robnet.data.download.CHECKSUMS` (tests,
            re-packed mirrors).
        progress: show download progress; None: only when stderr is a terminal.

    Returns:
        An :class:`ArrayDataset` (in-memory sets) or a :class:`~robnet.data.folders.FolderDataset`
        (streamed).
    """
    key = _dataset_key(name, split)
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
    return _load_file_set(key, root_path, split, download=download, url=url, checksums=checksums,
                          progress=progress)


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

"""Image-folder datasets, streamed from disk: Tiny-ImageNet and the ImageNet validation set.

:class:`FolderDataset` reads ``(uint8 image (3, H, W), label)`` pairs with Pillow; iterate it with
:func:`robnet.data.loader.make_loader` (a standard ``DataLoader``).
:func:`~robnet.data.datasets.load_dataset` builds one from ``root/tiny-imagenet-200/`` (classes:
the sorted wnids of ``wnids.txt``) or ``root/imagenet/val/<wnid>/*.JPEG`` (labels: the standard
ILSVRC-2012 indices, :func:`imagenet_wnids`, whichever class folders are present; images resized
to 256 and center-cropped to 224).
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from robnet.data.download import DatasetNotFoundError

__all__ = ["FolderDataset", "ImageReadError", "imagenet_wnids"]


class ImageReadError(ValueError):
    """An image file of a :class:`FolderDataset` cannot be decoded; the message names the file."""


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
    package (``robnet/data/imagenet_wnids.txt``)."""
    text = importlib.resources.files(__package__).joinpath("imagenet_wnids.txt").read_text(encoding="ascii")
    wnids = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(wnids) != 1000 or list(wnids) != sorted(set(wnids)):
        raise RuntimeError(f"robnet/data/imagenet_wnids.txt is damaged ({len(wnids)} entries, expected 1,000 sorted "
                           "unique wnids). Hint: reinstall robnet")
    return wnids



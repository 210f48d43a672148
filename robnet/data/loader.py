"""Batches for training and evaluation: the GPU-resident loader, on-device augmentation, splits.

* :class:`DeviceLoader` iterates an in-memory :class:`~robnet.data.datasets.ArrayDataset`: the whole set
  moves to the device once (as uint8); each batch is gathered, cropped, flipped and cut out on the
  device, vectorised over the batch, and sharded across ranks.
* :func:`make_loader` wraps streamed sets (:class:`~robnet.data.folders.FolderDataset`) in a standard
  ``DataLoader`` whose workers report an unreadable image as one line naming the file.
* :func:`train_val_split` carves a seeded validation set out of a training split.

Randomness never comes from a global RNG: splits use a fixed, library-version-independent
hash permutation of ``seed`` and the loader draws from a ``torch.Generator`` seeded from
``(seed, epoch)``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from robnet.data.datasets import ArrayDataset, stable_permutation
from robnet.data.folders import ImageReadError

__all__ = ["Augment", "DeviceLoader", "augment_batch", "make_loader", "train_val_split"]

# --------------------------------------------------------------------------------------------
# Splits


def train_val_split(ds: ArrayDataset, *, val_size: int | float,
                    seed: int) -> tuple[ArrayDataset, ArrayDataset]:
    """Split a training set into (train, validation) parts, deterministically for ``seed``.

    The search selects architectures on the validation part, never on the test set, so a
    dataset whose split is ``"test"`` is refused. Both parts keep the original sample order; the
    validation part is named split ``"val"``, the rest keeps ``ds.split``. Not stratified.

    Args:
        ds: the dataset to split (normally the ``"train"`` split).
        val_size: number of validation samples (int in ``[1, N-1]``) or a fraction in ``(0, 1)``.
        seed: selects the split; the permutation is a fixed hash of ``seed`` (independent of the
            numpy/torch version).

    Returns:
        ``(train_part, val_part)``, disjoint, together exactly ``ds``.
    """
    if not isinstance(ds, ArrayDataset):
        raise TypeError(f"train_val_split: expected an ArrayDataset, got {type(ds).__name__}")
    if ds.split == "test":
        raise ValueError(f"train_val_split: refusing to carve a validation set out of the test split of "
                         f"{ds.name!r}. Hint: the search must never select on the test set; split the "
                         "'train' split instead")
    n = len(ds)
    if isinstance(val_size, bool) or not isinstance(val_size, int | float):
        raise TypeError(f"train_val_split: val_size must be an int or a float fraction, got {val_size!r}")
    if isinstance(val_size, float):
        if not 0.0 < val_size < 1.0:
            raise ValueError(f"train_val_split: a fractional val_size must lie in (0, 1), got {val_size}")
        n_val = round(val_size * n)
    else:
        n_val = val_size
    if not 1 <= n_val <= n - 1:
        raise ValueError(f"train_val_split: val_size {val_size!r} gives {n_val} validation samples out of "
                         f"{n}; expected between 1 and {n - 1}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"train_val_split: seed must be an int, got {seed!r}")
    perm = stable_permutation(n, seed)
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])
    train = ds.subset(train_idx)
    val = ds.subset(val_idx)
    return train, ArrayDataset(name=val.name, split="val", images=val.images, labels=val.labels,
                               classes=val.classes)



# --------------------------------------------------------------------------------------------
# On-device augmentation and the GPU-resident loader


@dataclass(frozen=True, kw_only=True)
class Augment:
    """On-device training augmentation (the standard CIFAR recipe).

    Attributes:
        crop_padding: zero-pad each side by this many pixels, then crop back to the original size
            at a per-sample uniform offset in ``[0, 2 * crop_padding]`` (0: no crop).
        flip: flip each sample horizontally with probability 1/2.
        cutout: side of the square zeroed by Cutout (DeVries & Taylor 2017), 0: off. Its center
            is uniform over the image and the square is clipped at the borders.
    """

    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0

    def __post_init__(self) -> None:
        for attr in ("crop_padding", "cutout"):
            value = getattr(self, attr)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"Augment.{attr} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"Augment.{attr} must be >= 0, got {value}")
        if not isinstance(self.flip, bool):
            raise TypeError(f"Augment.flip must be a bool, got {self.flip!r}")

    @property
    def active(self) -> bool:
        """Whether this augmentation changes anything."""
        return self.crop_padding > 0 or self.flip or self.cutout > 0


@dataclass(frozen=True)
class _AugParams:
    """Per-sample random draws: crop offsets (N, 2), flip (N,), cutout centers (N, 2)."""

    offsets: torch.Tensor
    flips: torch.Tensor
    centers: torch.Tensor

    def take(self, idx: torch.Tensor | slice) -> _AugParams:
        return _AugParams(self.offsets[idx], self.flips[idx], self.centers[idx])

    def to(self, device: torch.device) -> _AugParams:
        return _AugParams(self.offsets.to(device), self.flips.to(device), self.centers.to(device))


def _draw_params(n: int, aug: Augment, height: int, width: int, generator: torch.Generator) -> _AugParams:
    offsets = torch.randint(0, 2 * aug.crop_padding + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if aug.flip else torch.zeros(n, dtype=torch.bool)
    centers = torch.stack([torch.randint(0, height, (n,), generator=generator),
                           torch.randint(0, width, (n,), generator=generator)], dim=1)
    return _AugParams(offsets, flips, centers)


def _apply_augment(x: torch.Tensor, aug: Augment, params: _AugParams) -> torch.Tensor:
    """Crop (zero padding), flip and Cutout ``x`` (B, C, H, W) with the given per-sample draws."""
    b, _, h, w = x.shape
    p = aug.crop_padding
    dev = x.device
    if p > 0 or aug.flip:
        padded = F.pad(x, (p, p, p, p)) if p > 0 else x  # (B, C, H+2p, W+2p)
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        rows = params.offsets[:, 0:1] + ar_h  # (B, H)
        # crop then flip == read the crop's columns right to left
        cols = params.offsets[:, 1:2] + torch.where(params.flips[:, None], w - 1 - ar_w, ar_w)  # (B, W)
        batch = torch.arange(b, device=dev)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if aug.cutout > 0:
        half = aug.cutout // 2
        lo = params.centers - half  # (B, 2); [lo, lo + cutout) clipped to the image
        hi = lo + aug.cutout
        ar_h = torch.arange(h, device=dev)
        ar_w = torch.arange(w, device=dev)
        in_h = (ar_h >= lo[:, 0:1]) & (ar_h < hi[:, 0:1])  # (B, H)
        in_w = (ar_w >= lo[:, 1:2]) & (ar_w < hi[:, 1:2])  # (B, W)
        x = x.masked_fill((in_h[:, :, None] & in_w[:, None, :])[:, None], 0)
    return x


def augment_batch(x: torch.Tensor, augment: Augment, *, generator: torch.Generator) -> torch.Tensor:
    """Randomly crop (zero padding), flip and Cutout a batch on its own device.

    Draws come from ``generator`` (a CPU generator; the draws are moved to ``x.device``), so the
    result is a pure function of the generator state. Works on uint8 or float batches.

    Args:
        x: images ``(B, C, H, W)``.
        augment: what to apply.
        generator: the randomness source.

    Returns:
        A new tensor of the same shape and dtype.
    """
    if x.dim() != 4:
        raise ValueError(f"augment_batch: expected images (B, C, H, W), got shape {tuple(x.shape)}")
    params = _draw_params(x.shape[0], augment, x.shape[2], x.shape[3], generator).to(x.device)
    return _apply_augment(x, augment, params)


def _epoch_seed(seed: int, epoch: int) -> int:
    # The key keeps the module name the loader was born in: changing it would change every
    # epoch's order and augmentation, and with them resumed and reproduced runs.
    digest = hashlib.sha256(f"robnet.data.DeviceLoader:{seed}:{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class DeviceLoader:
    """Batches of an in-memory dataset, with the whole set resident on the device.

    The images move to ``device`` once, as uint8; each batch is gathered, augmented and converted
    to float ``/ 255`` on the device, vectorised over the batch. The order and augmentation of
    epoch ``e`` are a pure function of ``(seed, e)`` (call :meth:`set_epoch` before each epoch,
    as with ``DistributedSampler``), so training resumes exactly and all ranks share one
    permutation. Per-sample draws belong to permutation positions, so the augmented epoch does
    not depend on the number of ranks.

    Sharding (``world_size > 1``): rank ``r`` takes positions ``r, r + W, r + 2W, ...`` of the
    epoch's permutation.

    * ``drop_last=False`` (evaluation): the ranks' parts are disjoint and together exactly the
      dataset (no padding, no duplicates), so summed correct counts give exact accuracy. Ranks
      may then differ by one batch.
    * ``drop_last=True`` (DDP training): the permutation is first cut to a multiple of
      ``world_size`` and every rank drops its incomplete last batch, so all ranks run the same
      number of equal-size batches and stay in lockstep.

    Args:
        ds: the dataset.
        batch_size: samples per batch (per rank).
        device: where batches live.
        shuffle: a fresh permutation each epoch; otherwise dataset order.
        augment: training augmentation, or None.
        seed: the randomness seed.
        drop_last: see above.
        rank: this process's rank.
        world_size: number of processes.
        channels_last: return batches in channels_last memory format.
    """

    def __init__(self, ds: ArrayDataset, *, batch_size: int, device: torch.device | str = "cpu",
                 shuffle: bool = False, augment: Augment | None = None, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1,
                 channels_last: bool = False) -> None:
        if not isinstance(ds, ArrayDataset):
            raise TypeError(f"DeviceLoader: expected an ArrayDataset, got {type(ds).__name__}. Hint: use "
                            "make_loader for folder datasets")
        ints = (("batch_size", batch_size), ("world_size", world_size), ("rank", rank), ("seed", seed))
        for attr, value in ints:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"DeviceLoader: {attr} must be an int, got {value!r}")
        if batch_size < 1:
            raise ValueError(f"DeviceLoader: batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"DeviceLoader: need world_size >= 1 and 0 <= rank < world_size, got rank "
                             f"{rank}, world_size {world_size}")
        if augment is not None and not isinstance(augment, Augment):
            raise TypeError(f"DeviceLoader: augment must be an Augment or None, got {type(augment).__name__}")
        self.dataset = ds
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.shuffle = shuffle
        self.augment = augment if augment is not None and augment.active else None
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.epoch = 0
        self._images = ds.images.to(self.device)  # (N, C, H, W) uint8, moved once
        self._labels = ds.labels.to(self.device)
        n = len(ds)
        usable = (n // world_size) * world_size if drop_last else n
        self._positions = torch.arange(rank, usable, world_size)  # this rank's permutation positions
        n_rank = len(self._positions)
        self._num_batches = n_rank // batch_size if drop_last else math.ceil(n_rank / batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"DeviceLoader.set_epoch: epoch must be an int >= 0, got {epoch!r}")
        self.epoch = epoch

    def __len__(self) -> int:
        return self._num_batches

    def _plan(self) -> tuple[torch.Tensor, _AugParams | None]:
        """This rank's sample indices and augmentation draws for the current epoch (on the device)."""
        n = len(self.dataset)
        g = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        perm = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        params = None
        if self.augment is not None:
            _, h, w = self.dataset.image_shape
            params = _draw_params(n, self.augment, h, w, g).take(self._positions)
        take = self._num_batches * self.batch_size if self.drop_last else len(self._positions)
        idx = perm[self._positions][:take].to(self.device)
        if params is not None:
            params = params.take(slice(0, take)).to(self.device)
        return idx, params

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        idx, params = self._plan()
        for start in range(0, len(idx), self.batch_size):
            sl = slice(start, start + self.batch_size)
            batch_idx = idx[sl]
            x = self._images[batch_idx]
            if self.augment is not None and params is not None:
                x = _apply_augment(x, self.augment, params.take(sl))
            x = x.to(torch.float32).div_(255)
            x = x.contiguous(memory_format=self._memory_format)
            yield x, self._labels[batch_idx]


# --------------------------------------------------------------------------------------------
# Streamed datasets


class _Unreadable:
    """Stands for a batch holding an unreadable image: built in a worker, raised in the main process."""

    def __init__(self, message: str) -> None:
        self.message = message


class _Guarded(Dataset[Any]):
    """``ds`` whose unreadable images become :class:`_Unreadable` markers instead of exceptions, so a
    worker does not wrap the error in its traceback."""

    def __init__(self, ds: Dataset[tuple[torch.Tensor, int]]) -> None:
        self.dataset = ds

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except ImageReadError as e:
            return _Unreadable(str(e))


def _collate_float(batch: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor] | _Unreadable:
    bad = next((item for item in batch if isinstance(item, _Unreadable)), None)
    if bad is not None:
        return bad
    shapes = {tuple(x.shape) for x, _ in batch}
    if len(shapes) > 1:
        raise ValueError(f"make_loader: images of different sizes in one batch ({sorted(shapes)[:3]}...). "
                         "Hint: give the FolderDataset a resize and crop")
    x = torch.stack([x for x, _ in batch]).to(torch.float32).div_(255)
    y = torch.tensor([y for _, y in batch], dtype=torch.int64)
    return x, y


class _FolderLoader(DataLoader[Any]):
    """A DataLoader that raises an unreadable image as one :class:`~robnet.data.folders.ImageReadError` line
    naming the file, in the main process, whichever process decoded it."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        for batch in super().__iter__():
            if isinstance(batch, _Unreadable):
                raise ImageReadError(batch.message)
            yield batch


def make_loader(ds: Dataset[tuple[torch.Tensor, int]], *, batch_size: int, shuffle: bool, num_workers: int,
                seed: int, drop_last: bool = False, pin_memory: bool = False) -> DataLoader[Any]:
    """A standard DataLoader yielding ``(float32 images in [0, 1] (B, C, H, W), int64 labels)``.

    An image that cannot be decoded raises :class:`~robnet.data.folders.ImageReadError` naming the file
    (one line, also when a worker process read it).

    Args:
        ds: a :class:`~robnet.data.folders.FolderDataset` (or any dataset of ``(uint8 image, label)`` pairs).
        batch_size: samples per batch.
        shuffle: reshuffle every epoch, from a generator seeded with ``seed``.
        num_workers: worker processes decoding images (0: in this process).
        seed: shuffle seed.
        drop_last: drop the incomplete last batch.
        pin_memory: pin batches for faster host-to-GPU copies.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"make_loader: batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"make_loader: num_workers must be an int >= 0, got {num_workers!r}")
    generator = torch.Generator().manual_seed(seed)
    return _FolderLoader(_Guarded(ds), batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                         generator=generator, collate_fn=_collate_float, drop_last=drop_last,
                         pin_memory=pin_memory, persistent_workers=num_workers > 0)

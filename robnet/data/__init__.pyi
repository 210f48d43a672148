"""Datasets and loaders.

* :func:`load_dataset`: CIFAR-10/100, SVHN and the embedded ``digits`` in memory
  (:class:`ArrayDataset`, md5-checked official files), Tiny-ImageNet and ImageNet-val streamed
  from folders (:class:`FolderDataset`).
* :class:`DeviceLoader`: batches resident on the device with on-device augmentation (epoch-seeded,
  so a resumed run draws the same batches); :func:`train_val_split`; :func:`make_loader` for
  streamed sets.
"""

from .datasets import DATASETS, ArrayDataset, load_dataset, load_memory_dataset
from .download import DatasetNotFoundError
from .folders import FolderDataset, ImageReadError
from .loader import Augment, DeviceLoader, make_loader, train_val_split

__all__ = [
    "DATASETS", "ArrayDataset", "Augment", "DatasetNotFoundError", "DeviceLoader", "FolderDataset", "ImageReadError",
    "load_dataset", "load_memory_dataset", "make_loader", "train_val_split",
]

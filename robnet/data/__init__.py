"""Datasets and loaders.

* :func:`load_dataset`: CIFAR-10/100, SVHN and the embedded ``digits`` in memory
  (:class:`ArrayDataset`, md5-checked official files), Tiny-ImageNet and ImageNet-val streamed
  from folders (:class:`FolderDataset`).
* :class:`DeviceLoader`: batches resident on the device with on-device augmentation (epoch-seeded,
  so a resumed run draws the same batches); :func:`train_val_split`; :func:`make_loader` for
  streamed sets.
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

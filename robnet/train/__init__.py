"""PGD adversarial training with the official RobNets recipe as the default (docs/design.md §3).

* :class:`TrainConfig` (frozen, validated) and :class:`EpochRecord` (:mod:`~robnet.train.config`).
* :func:`adversarial_step`, :func:`train_epoch`, :func:`validate` (:mod:`~robnet.train.loop`).
* :func:`finetune` and the epoch-by-epoch :class:`Finetuner` (:mod:`~robnet.train.finetune`).
* The resumable :func:`train` in a run folder (:mod:`~robnet.train.run`), whose files are written in
  an order a kill cannot break (:mod:`~robnet.train.files`).
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

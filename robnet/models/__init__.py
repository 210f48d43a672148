"""The RobNets search space and the model zoo.

* :mod:`~robnet.models.genotype`: the search space as a plain value (no torch): a cell's 14 edges
  with 2-bit codes, density, budgets, sampling (docs/design.md §1-2).
* :mod:`~robnet.models.ops` and :mod:`~robnet.models.network`: cells and networks with the official
  state_dict names; :mod:`~robnet.models.baselines`: the CIFAR ResNets, WRN and DenseNet.
* :mod:`~robnet.models.supernet`: the weight-sharing supernet of the one-shot search.
* :mod:`~robnet.models.zoo`: ``build_model(name)`` over a plain registry; ``register`` for your own.
* :mod:`~robnet.models.arch`: a model's architecture as plain data (what checkpoints record).
* :mod:`~robnet.models.normalize`: input normalization as a layer inside the model (``with_normalization``).
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

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

from .arch import (
    ArchLike,
    arch_from_model,
    build_from_arch,
    compare_state_dict,
    describe_arch,
    estimate_params,
    normalize_arch,
)
from .baselines import densenet121, resnet18, resnet50, wrn28_10
from .genotype import (
    ROBNET_FREE,
    ROBNET_LARGE,
    Genotype,
    count_cells,
    deep_cells,
    iter_cells,
    reduction_cells,
    sample,
)
from .network import GenotypeLike, RobNet, RobNetCell, as_genotype, build_robnet, robnet_num_params
from .normalize import DATASET_STATS, Normalize, NormalizedModel, NormalizeSpec, parse_normalization, with_normalization
from .supernet import FULL_GENOTYPE, SubNet, SuperNet, SuperNetConfig, build_supernet
from .zoo import build_model, default_num_classes, list_models, register, unregister

__all__ = [
    "DATASET_STATS",
    "FULL_GENOTYPE",
    "ROBNET_FREE",
    "ROBNET_LARGE",
    "ArchLike",
    "Genotype",
    "GenotypeLike",
    "Normalize",
    "NormalizeSpec",
    "NormalizedModel",
    "RobNet",
    "RobNetCell",
    "SubNet",
    "SuperNet",
    "SuperNetConfig",
    "arch_from_model",
    "as_genotype",
    "build_from_arch",
    "build_model",
    "build_robnet",
    "build_supernet",
    "compare_state_dict",
    "count_cells",
    "deep_cells",
    "default_num_classes",
    "densenet121",
    "describe_arch",
    "estimate_params",
    "iter_cells",
    "list_models",
    "normalize_arch",
    "parse_normalization",
    "reduction_cells",
    "register",
    "resnet18",
    "resnet50",
    "robnet_num_params",
    "sample",
    "unregister",
    "with_normalization",
    "wrn28_10",
]

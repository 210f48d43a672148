"""PGD adversarial training with the official RobNets recipe as the default (docs/design.md §3).

* :class:`TrainConfig` (frozen, validated) and :class:`EpochRecord` (:mod:`~robnet.train.config`).
* :func:`adversarial_step`, :func:`train_epoch`, :func:`validate` (:mod:`~robnet.train.loop`).
* :func:`finetune` and the epoch-by-epoch :class:`Finetuner` (:mod:`~robnet.train.finetune`).
* The resumable :func:`train` in a run folder (:mod:`~robnet.train.run`), whose files are written in
  an order a kill cannot break (:mod:`~robnet.train.files`).
"""

from .config import (
    BN_MODES,
    LOG_FIELDS,
    EpochRecord,
    TrainConfig,
    check_training_data,
    data_fingerprint,
    format_epoch,
    read_log,
    run_settings,
)
from .files import RUN_FILES
from .finetune import Finetuner, finetune
from .loop import (
    EpochTrainStats,
    TrainingDiverged,
    adversarial_step,
    param_groups,
    train_epoch,
    validate,
    wrap_model,
)
from .run import TrainResult, train

__all__ = [
    "BN_MODES", "LOG_FIELDS", "RUN_FILES", "EpochRecord", "EpochTrainStats", "Finetuner", "TrainConfig",
    "TrainResult", "TrainingDiverged", "adversarial_step", "check_training_data", "data_fingerprint", "finetune",
    "format_epoch", "param_groups", "read_log", "run_settings", "train", "train_epoch", "validate", "wrap_model",
]

"""PGD adversarial training with the official RobNets recipe as the default (docs/design.md §3).

* :class:`TrainConfig` (frozen, validated) and :class:`EpochRecord` (:mod:`~robnet.train.config`).
* :func:`adversarial_step`, :func:`train_epoch`, :func:`validate`, :func:`finetune` and the
  resumable :func:`train` (:mod:`~robnet.train.loop`).
* The run folder's files, written in an order a kill cannot break (:mod:`~robnet.train.files`).
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
from .loop import (
    EpochTrainStats,
    TrainingDiverged,
    TrainResult,
    adversarial_step,
    finetune,
    param_groups,
    train,
    train_epoch,
    validate,
    wrap_model,
)

__all__ = [
    "BN_MODES", "LOG_FIELDS", "RUN_FILES", "EpochRecord", "EpochTrainStats", "TrainConfig", "TrainResult",
    "TrainingDiverged", "adversarial_step", "check_training_data", "data_fingerprint", "finetune", "format_epoch",
    "param_groups", "read_log", "run_settings", "train", "train_epoch", "validate", "wrap_model",
]

"""The plain-data side of adversarial training: the recipe, the epoch record, the data checks.

* :class:`TrainConfig`: the recipe (official RobNets defaults, docs/design.md §3), validated on creation:
  every number finite, every range checked.
* :class:`EpochRecord`: what one epoch did; :func:`format_epoch` is its one-line form (log and
  CLIs, epochs counted from 1, 3 decimals) and :data:`LOG_FIELDS` its ``log.csv`` columns, read
  back by :func:`read_log`.
* :func:`check_training_data`: refuses data a config cannot train on, before anything is built.
* :func:`run_settings`: what a training run folder records and compares on resume.

:mod:`robnet.train.loop` re-exports all of these.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robnet.data.datasets import ArrayDataset
from robnet.models.arch import normalize_arch

__all__ = ["BN_MODES", "LOG_FIELDS", "EpochRecord", "TrainConfig", "check_training_data", "data_fingerprint",
           "format_epoch", "read_log", "run_settings"]

BN_MODES = ("train", "eval")
_INT_FIELDS = ("epochs", "warmup_epochs", "batch_size", "attack_steps", "crop_padding", "cutout", "seed",
               "val_attack_steps")
_FLOAT_FIELDS = ("lr", "warmup_lr", "min_lr", "momentum", "weight_decay", "eps", "step_size")
_BOOL_FIELDS = ("random_start", "flip", "amp", "channels_last", "compile", "sync_bn")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Adversarial training settings (all of them go verbatim into every checkpoint).

    The validation split is not a training setting: callers pass it (``val_data``), carved from
    the training set with :func:`robnet.data.loader.train_val_split`; ``robnet train --val-size``
    records its size with the run's data settings.

    Each field's ``metadata["help"]`` is its one-line help: ``robnet train``'s flags are generated
    from the fields (name, type, default, help).

    Attributes:
        epochs: total epochs including warm-up (official: 170 = 20 + 150).
        warmup_epochs: linear warm-up epochs.
        batch_size: global batch (split evenly over DDP ranks).
        lr: peak learning rate; None scales the official 1.2 at batch 1536 linearly.
        warmup_lr: learning rate at epoch 0 of the warm-up.
        min_lr: final cosine learning rate.
        momentum, weight_decay: SGD settings; no weight decay on BN parameters and biases.
        eps, step_size, attack_steps: the training attack (L-inf PGD, images in [0, 1]).
        random_start: uniform random start in the eps-ball.
        attack_bn: BatchNorm mode while the attack runs: "train" (official code: batch statistics,
            and the attack's forward passes update the running statistics) or "eval".
        crop_padding, flip, cutout: on-device augmentation (cutout 0 = off).
        seed: decides data order, augmentation and attack noise.
        val_attack_steps: PGD steps for the per-epoch validation accuracy.
        amp: bf16 autocast for training *and* the validation attacks (opt-in: bf16 during an
            attack can mask gradients, docs/design.md §3); recorded as each epoch's ``precision``.
        channels_last: NHWC memory format (default on: faster on CUDA, and 15-30% faster for RobNet
            fwd+bwd on the CPU measured in benchmarks/results/bench_train_step.md).
        compile: wrap the model in ``torch.compile``.
        sync_bn: under DDP, BatchNorm statistics over the global batch (``nn.SyncBatchNorm``,
            CUDA only); off: per-rank statistics, as in the official code.
    """

    epochs: int = field(default=170, metadata={"help": "total epochs including warm-up (official: 170 = 20 + 150)"})
    warmup_epochs: int = field(default=20, metadata={"help": "linear warm-up epochs (official: 20)"})
    batch_size: int = field(default=128, metadata={"help": "global batch, split evenly over the processes"})
    lr: float | None = field(
        default=None,
        metadata={"help": "peak learning rate (default: the official 1.2 at batch 1536, scaled with the batch)"})
    warmup_lr: float = field(default=0.02, metadata={"help": "learning rate at the first warm-up epoch"})
    min_lr: float = field(default=0.001, metadata={"help": "final cosine learning rate"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(
        default=1e-4,
        metadata={"help": "weight decay (none on BatchNorm parameters and biases)"})
    eps: float = field(
        default=8 / 255,
        metadata={"help": "training attack radius, L-inf in [0, 1] pixel units (e.g. 8/255)"})
    step_size: float = field(default=2 / 255, metadata={"help": "training attack step (e.g. 2/255)"})
    attack_steps: int = field(default=7, metadata={"help": "PGD steps of the training attack"})
    random_start: bool = field(
        default=True,
        metadata={"help": "uniform random start of the training attack in the eps-ball"})
    attack_bn: str = field(
        default="train",
        metadata={"help": "BatchNorm mode while the training attack runs (official: train)", "choices": BN_MODES})
    crop_padding: int = field(default=4, metadata={"help": "random-crop padding in pixels"})
    flip: bool = field(default=True, metadata={"help": "random horizontal flips"})
    cutout: int = field(default=0, metadata={"help": "Cutout square side in pixels (0: off)"})
    seed: int = field(default=0, metadata={"help": "data order, augmentation and attack noise"})
    val_attack_steps: int = field(default=20, metadata={"help": "PGD steps of the per-epoch validation accuracy"})
    amp: bool = field(
        default=False,
        metadata={"help": "bf16 autocast in training and validation attacks (opt-in: it can mask gradients)"})
    channels_last: bool = field(default=True, metadata={"help": "NHWC memory format"})
    compile: bool = field(default=False, metadata={"help": "wrap the model in torch.compile"})
    sync_bn: bool = field(
        default=False,
        metadata={"help": "under DDP, BatchNorm statistics over the global batch (CUDA only)"})

    def __post_init__(self) -> None:
        self._check_types()
        if self.epochs < 1:
            raise ValueError(f"TrainConfig: epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"TrainConfig: warmup_epochs must be in [0, epochs), got {self.warmup_epochs} of "
                             f"{self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"TrainConfig: batch_size must be >= 1, got {self.batch_size}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"TrainConfig: lr must be > 0, got {self.lr}")
        for name in ("warmup_lr", "min_lr", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig: {name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"TrainConfig: momentum must be in [0, 1), got {self.momentum}")
        for name in ("eps", "step_size"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"TrainConfig: {name} must be in [0, 1] (images are in [0, 1]), got "
                                 f"{getattr(self, name)}. Hint: write 8/255, not 8")
        for name in ("attack_steps", "val_attack_steps", "crop_padding", "cutout"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig: {name} must be >= 0, got {getattr(self, name)}")
        if self.attack_bn not in BN_MODES:
            raise ValueError(f"TrainConfig: attack_bn must be one of {BN_MODES}, got {self.attack_bn!r}")

    def _check_types(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"TrainConfig: {name} must be an int, got {type(value).__name__} {value!r}")
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if value is None and name == "lr":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"TrainConfig: {name} must be a number, got {type(value).__name__} {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"TrainConfig: {name} must be a finite number, got {value}")
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"TrainConfig: {name} must be a bool, got {getattr(self, name)!r}")

    @property
    def peak_lr(self) -> float:
        """Peak lr: given, or the official 1.2 at batch 1536 scaled linearly with the batch."""
        return self.lr if self.lr is not None else 1.2 * self.batch_size / 1536

    @property
    def precision(self) -> str:
        """``"bf16"`` under autocast, else ``"float32"`` (recorded with every epoch)."""
        return "bf16" if self.amp else "float32"

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based), as the official per-epoch CosineLRScheduler gives it."""
        peak = self.peak_lr
        if epoch < self.warmup_epochs:
            return self.warmup_lr + (peak - self.warmup_lr) * epoch / self.warmup_epochs
        ratio = (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs)
        return self.min_lr + (peak - self.min_lr) * (1 + math.cos(math.pi * ratio)) / 2


# ----------------------------------------------------------------------------- records


@dataclass(frozen=True, kw_only=True)
class EpochRecord:
    """What one epoch did: a row of ``log.csv``, an entry of ``last.pt``'s history, a log line.

    Attributes:
        epoch: the epoch, counted from 1.
        epochs: the planned number of epochs.
        lr: the epoch's learning rate.
        train_loss, train_adv_acc: mean loss and accuracy on the training attack's examples.
        val_clean_acc, val_adv_acc: validation accuracy (None without a validation set).
        seconds, images_per_s: training time of the epoch (validation excluded).
        precision: ``"float32"`` or ``"bf16"`` (autocast), for training and validation.
    """

    epoch: int
    epochs: int
    lr: float
    train_loss: float
    train_adv_acc: float
    val_clean_acc: float | None
    val_adv_acc: float | None
    seconds: float
    images_per_s: float
    precision: str

    def __post_init__(self) -> None:
        if not 1 <= self.epoch <= self.epochs:
            raise ValueError(f"EpochRecord: epoch must be in [1, epochs={self.epochs}], got {self.epoch}")


LOG_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(EpochRecord))


def format_epoch(record: EpochRecord) -> str:
    """The one-line form of an epoch (log, CLIs): counted from 1, accuracies and loss to 3 decimals.

    Example: ``epoch 2/6  lr 0.1  loss 1.343  train-adv 0.484  val-clean 0.921  val-pgd 0.569  412 img/s``.
    """
    def acc(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    bf16 = "  (bf16)" if record.precision != "float32" else ""
    return (f"epoch {record.epoch}/{record.epochs}  lr {record.lr:.4g}  loss {record.train_loss:.3f}  "
            f"train-adv {record.train_adv_acc:.3f}  val-clean {acc(record.val_clean_acc)}  "
            f"val-pgd {acc(record.val_adv_acc)}  {record.images_per_s:.0f} img/s{bf16}")


def _record_from_row(row: Mapping[str, str], where: str) -> EpochRecord:
    try:
        values: dict[str, Any] = {}
        for name in LOG_FIELDS:
            text = row[name]
            if name in ("epoch", "epochs"):
                values[name] = int(text)
            elif name == "precision":
                values[name] = text
            elif name in ("val_clean_acc", "val_adv_acc"):
                values[name] = None if text == "" else float(text)
            else:
                values[name] = float(text)
        return EpochRecord(**values)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where} is not an epoch row of a robnet log.csv ({type(e).__name__}: {e})") from None


def read_log(path: str | os.PathLike[str]) -> list[EpochRecord]:
    """The epoch records of a run's ``log.csv`` (see :data:`LOG_FIELDS`)."""
    p = Path(path)
    with p.open(newline="", encoding="utf-8") as f:
        return [_record_from_row(row, f"{p} line {i}") for i, row in enumerate(csv.DictReader(f), 2)]


# ----------------------------------------------------------------------------- inputs


def check_training_data(config: TrainConfig, train_data: ArrayDataset, val_data: ArrayDataset | None = None, *,
                        world_size: int = 1) -> None:
    """Refuse data that ``config`` cannot train on, before anything is built or written.

    Raises:
        TypeError: not an :class:`~robnet.data.datasets.ArrayDataset`.
        ValueError: an empty set, fewer images than one global batch, a batch not divisible by
            the processes, a Cutout square or crop padding larger than the images, a validation
            set of another image shape.
    """
    for name, ds in (("train_data", train_data), ("val_data", val_data)):
        if ds is not None and not isinstance(ds, ArrayDataset):
            raise TypeError(f"{name} must be an ArrayDataset (in-memory images), got {type(ds).__name__}")
    if len(train_data) == 0:
        raise ValueError("the training set is empty. Hint: check --subset / the dataset")
    if config.batch_size % world_size:
        raise ValueError(f"global batch {config.batch_size} is not divisible by {world_size} processes")
    per_rank = config.batch_size // world_size
    if len(train_data) // world_size < per_rank:
        raise ValueError(f"training set of {len(train_data)} images gives no full batch of {config.batch_size}. "
                         "Hint: lower --batch-size or train on more images")
    _, h, w = train_data.image_shape
    if config.cutout > min(h, w):
        raise ValueError(f"cutout {config.cutout} is larger than the {h}x{w} images. Hint: --cutout 0 turns it "
                         "off (16 is meant for 32x32 CIFAR)")
    if config.crop_padding >= min(h, w):
        raise ValueError(f"crop_padding {config.crop_padding} is not smaller than the {h}x{w} images (crops "
                         "would be mostly padding). Hint: --crop-padding 4 for 32x32, 1 for 8x8")
    if val_data is not None and len(val_data) and val_data.image_shape != train_data.image_shape:
        raise ValueError(f"validation images are {val_data.image_shape}, training images "
                         f"{train_data.image_shape}: they must come from the same dataset")


def data_fingerprint(train_data: ArrayDataset, val_data: ArrayDataset | None = None) -> dict[str, Any]:
    """What a run's data are, as plain data: name, split, sizes, shape, classes and a content digest
    (BLAKE2b of the images and labels of both parts), so resuming on other data is refused."""
    h = hashlib.blake2b(digest_size=16)
    for ds in (train_data, val_data):
        if ds is not None:
            h.update(ds.images.contiguous().numpy().data)
            h.update(ds.labels.contiguous().numpy().data)
        h.update(b"|")
    return {"name": train_data.name, "split": train_data.split, "train_images": len(train_data),
            "val_images": 0 if val_data is None else len(val_data), "image_shape": list(train_data.image_shape),
            "num_classes": train_data.num_classes, "digest": h.hexdigest()}


def run_settings(config: TrainConfig, arch: str | Mapping[str, Any], train_data: ArrayDataset,
                 val_data: ArrayDataset | None = None, *, data_options: Mapping[str, Any] | None = None,
                 ) -> dict[str, Any]:
    """The config a training run folder records and compares on resume: the recipe, the model
    (normalized arch) and the data (:func:`data_fingerprint` plus the caller's ``data_options``,
    e.g. the CLI's ``--subset`` and ``--val-size``)."""
    data = {**(data_options or {}), **data_fingerprint(train_data, val_data)}  # options first: named first
    return {"data": data, "arch": normalize_arch(arch), "train": asdict(config)}

"""The resumable training run: :func:`train` in a locked run folder (``last.pt``, ``best.pt``, ``log.csv``,
``run.json``), written in an order a kill cannot break (:mod:`robnet.train.files`)."""


from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robnet.data.datasets import ArrayDataset
from robnet.io.rundir import Mode, RunDir
from robnet.train.config import (
    EpochRecord,
    TrainConfig,
    check_training_data,
    format_epoch,
    run_settings,
)
from robnet.train.files import BEST, LAST, RUN_FILES, Progress, resume_state, save_epoch
from robnet.train.loop import (
    TrainingDiverged,
    _BoundArgs,
    _loaders,
    _record,
    _setup_model,
    train_epoch,
    validate,
    wrap_model,
)
from robnet.utils import dist_info, resolve_device

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What :func:`train` returns: the whole history (resumed epochs included) and the best epoch."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_adv_acc: float | None = None
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None


def _tensorboard_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError("TensorBoard logging needs the tensorboard package: pip install tensorboard "
                         f"(or drop --tensorboard; log.csv is always written) [{err}]") from err
    return SummaryWriter(log_dir=str(log_dir))


def _open_run(out_dir: str | os.PathLike[str] | RunDir, rank: int, resume: bool, overwrite: bool,
              settings: Callable[[], dict[str, Any]]) -> tuple[contextlib.AbstractContextManager[Any], Path]:
    if resume and overwrite:
        raise ValueError("train: resume and overwrite exclude each other")
    if isinstance(out_dir, RunDir):
        if not out_dir.is_open:
            raise ValueError(f"train: the run folder {out_dir.path} was already closed")
        if (out_dir.mode == "resume") != resume:
            raise ValueError(f"train: resume={resume} but the run folder was opened with mode {out_dir.mode!r}")
        return contextlib.nullcontext(out_dir), out_dir.path
    folder = Path(out_dir)
    if rank != 0:
        return contextlib.nullcontext(), folder
    mode: Mode = "resume" if resume else "overwrite" if overwrite else "new"
    return RunDir.open(folder, kind="train", config=settings(), mode=mode, files=RUN_FILES), folder


def _epoch_meta(meta: Mapping[str, Any] | None, config: TrainConfig, rec: EpochRecord) -> dict[str, Any]:
    return {**(meta or {}), "train_config": asdict(config), "epoch": rec.epoch, "val_adv_acc": rec.val_adv_acc,
            "val_clean_acc": rec.val_clean_acc, "precision": rec.precision}


def _diverged(err: TrainingDiverged, folder: Path, state: Progress) -> TrainingDiverged:
    kept = (f"the last good checkpoint is kept: {folder / LAST} (epoch {state.epochs_done})" if state.epochs_done
            else "no epoch was completed, no checkpoint was written")
    return TrainingDiverged(epoch=err.epoch, what=err.what, lr=err.lr, kept=kept, hint=err.hint)


def train(model: nn.Module, train_data: ArrayDataset, *, config: TrainConfig,
          out_dir: str | os.PathLike[str] | RunDir, arch: str | dict[str, Any], val_data: ArrayDataset | None = None,
          device: torch.device | str | None = None, resume: bool = False, overwrite: bool = False,
          progress: bool = True, meta: dict[str, Any] | None = None, max_epochs: int | None = None,
          tensorboard: bool = False, step_args: Callable[[int, int], tuple[Any, ...]] | None = None) -> TrainResult:
    """Adversarially train ``model`` with PGD in a run folder, checkpointing after every epoch.

    The folder is opened as a :class:`~robnet.io.rundir.RunDir` (locked; a folder holding a run is
    refused unless ``resume`` or ``overwrite``; resuming with other recipe, model or data
    settings is refused), or given open by the caller (the CLI records its argv that way). Only
    rank 0 writes. A kill at any moment leaves ``last.pt``, ``best.pt`` and ``log.csv``
    consistent after ``resume`` (see the module docstring).

    Args:
        model: the network (not yet wrapped in DDP; wrapping happens here when a process group exists).
        train_data: training images (the validation part already split off, see
            :func:`robnet.data.loader.train_val_split`).
        config: the recipe.
        out_dir: the run folder (a path, or a :class:`~robnet.io.rundir.RunDir` opened by the caller).
        arch: the architecture as data (zoo name, dict or genotype dict), stored in checkpoints.
        val_data: held-out split for model selection (``best.pt``); never the test set. Without
            it, ``best.pt`` is the last epoch.
        device: where to train (default: CUDA when available). Under torchrun each process uses
            its local GPU.
        resume: continue from ``out_dir/last.pt`` bit-for-bit (from epoch 1 if no epoch ended).
        overwrite: delete the run already in ``out_dir`` and start over.
        progress: show a tqdm bar (rank 0, TTY only).
        meta: extra plain data recorded in checkpoints (dataset name, command line, ...).
        max_epochs: stop after this many epochs of this call (for tests and time-boxed runs);
            the schedule still follows ``config.epochs``.
        tensorboard: also log the epoch records to ``out_dir/tensorboard`` (needs ``tensorboard``).
        step_args: ``(epoch, step) -> args`` for :func:`train_epoch`'s ``step_args`` (0-based);
            validation calls it with step ``-1``.

    Raises:
        TrainingDiverged: the loss or weights became non-finite (the last good checkpoint stays).
        ValueError: see :func:`check_training_data`, :class:`~robnet.io.rundir.RunDir`; a
            checkpoint that does not fit ``model`` or ``config``.
    """
    dev = torch.device(device) if device is not None else resolve_device()
    rank, world = dist_info()
    check_training_data(config, train_data, val_data, world_size=world)
    if max_epochs is not None and (isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1):
        raise ValueError(f"train: max_epochs must be an int >= 1 or None, got {max_epochs!r}")
    if config.sync_bn and world > 1 and dev.type != "cuda":
        raise ValueError("sync_bn needs CUDA: torch's SyncBatchNorm does not run on the CPU (gloo); "
                         "drop --sync-bn to keep per-rank BatchNorm statistics")
    run_cm, folder = _open_run(out_dir, rank, resume, overwrite,
                               lambda: run_settings(config, arch, train_data, val_data))
    with run_cm:
        if world > 1:
            torch.distributed.barrier()  # rank 0 has checked and locked the folder
        return _run(model, train_data, val_data, config=config, folder=folder, arch=arch, device=dev,
                    resume=resume, progress=progress, meta=meta, max_epochs=max_epochs,
                    tensorboard=tensorboard, step_args=step_args)


def _run(model: nn.Module, train_data: ArrayDataset, val_data: ArrayDataset | None, *, config: TrainConfig,
         folder: Path, arch: Any, device: torch.device, resume: bool, progress: bool, meta: dict[str, Any] | None,
         max_epochs: int | None, tensorboard: bool, step_args: Callable[[int, int], tuple[Any, ...]] | None,
         ) -> TrainResult:
    rank, world = dist_info()
    if config.sync_bn and world > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    optimizer = _setup_model(model, config, device)
    state = resume_state(folder, model, optimizer, config, fix_files=rank == 0) if resume else Progress()
    net = wrap_model(model, device=device, config=config, find_unused_parameters=step_args is not None)
    loader, val_loader = _loaders(config, train_data, val_data, device, rank, world)
    writer = _tensorboard_writer(folder / "tensorboard") if tensorboard and rank == 0 else None
    end = config.epochs if max_epochs is None else min(config.epochs, state.epochs_done + max_epochs)
    try:
        for epoch in range(state.epochs_done, end):
            per_step = (lambda step, e=epoch: step_args(e, step)) if step_args is not None else None
            try:
                stats = train_epoch(net, loader, optimizer, config=config, epoch=epoch, device=device,
                                    amp=config.amp, raw=model, step_args=per_step, progress=progress)
            except TrainingDiverged as err:
                raise _diverged(err, folder, state) from None
            val = None
            if val_loader is not None:
                evaluated = _BoundArgs(model, tuple(step_args(epoch, -1))) if step_args is not None else model
                val = validate(evaluated, val_loader, config=config, device=device, amp=config.amp)
            rec = _record(config, epoch, stats, val, config.epochs)
            best_acc = None if state.best is None else state.best["val_adv_acc"]
            improved = val is None or best_acc is None or val[1] > best_acc
            state.history.append(rec)
            state.epochs_done = epoch + 1
            if improved:
                state.best = {"epoch": rec.epoch, "val_adv_acc": rec.val_adv_acc}  # + file identity on rank 0
            if rank == 0:
                log.info(format_epoch(rec))
                save_epoch(folder, model, optimizer, state, arch=arch, meta=_epoch_meta(meta, config, rec),
                            improved=improved)
                if writer is not None:
                    for key in ("lr", "train_loss", "train_adv_acc", "val_clean_acc", "val_adv_acc", "images_per_s"):
                        if getattr(rec, key) is not None:
                            writer.add_scalar(key, getattr(rec, key), rec.epoch)
                    writer.flush()
            if world > 1:
                torch.distributed.barrier()
    finally:
        if writer is not None:
            writer.close()
    best = state.best
    return TrainResult(history=state.history, best_epoch=None if best is None else best["epoch"],
                       best_val_adv_acc=None if best is None else best["val_adv_acc"],
                       last_checkpoint=folder / LAST, best_checkpoint=folder / BEST)

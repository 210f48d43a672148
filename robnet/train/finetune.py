"""Finetuning an in-memory model: K epochs of PGD adversarial training, no run folder.

The search finetunes its candidates this way (paper §3: K = 3 epochs from the inherited supernet
weights). :class:`Finetuner` runs the epochs one at a time and can save and restore its state
between them (weights, optimizer, epoch), which successive halving needs: a candidate is trained
one epoch, evaluated, and continued only if it ranks in the better half. :func:`finetune` runs all
epochs at once.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import torch
from torch import nn

from robnet.data.datasets import ArrayDataset
from robnet.train.config import EpochRecord, TrainConfig, check_training_data, format_epoch
from robnet.train.loop import _loaders, _model_device, _record, _setup_model, train_epoch, validate

__all__ = ["Finetuner", "finetune"]

log = logging.getLogger(__name__)


class Finetuner:
    """``epochs`` epochs of PGD adversarial training of an in-memory ``model``, one at a time.

    Learning rate: ``config``'s schedule (warm-up, then cosine to ``min_lr``) stretched over
    ``epochs``: ``config.epochs`` becomes ``epochs`` and the warm-up keeps its share, rounded down
    (the official 20 of 170 is 0 of 3). The model is updated in place (moved to ``device``, in
    channels_last when ``config.channels_last``). Runs in this process only, also under torchrun.

    Args:
        model: the network to finetune.
        data: training images.
        epochs: the schedule's number of epochs.
        config: the recipe.
        device: where to train (default: the model's device).
        val_data: held-out images for a per-epoch validation accuracy (none when None).
    """

    def __init__(self, model: nn.Module, data: ArrayDataset, *, epochs: int, config: TrainConfig,
                 device: torch.device | str | None = None, val_data: ArrayDataset | None = None) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"finetune: epochs must be an int >= 1, got {epochs!r}")
        self.config = dataclasses.replace(config, epochs=epochs,
                                          warmup_epochs=config.warmup_epochs * epochs // config.epochs)
        check_training_data(self.config, data, val_data)
        self.model = model
        self.device = torch.device(device) if device is not None else _model_device(model)
        self.optimizer = _setup_model(model, self.config, self.device)
        self.net: nn.Module = torch.compile(model) if self.config.compile else model  # type: ignore[assignment]
        self.loader, self.val_loader = _loaders(self.config, data, val_data, self.device, 0, 1)
        self.epochs_done = 0

    def run_epoch(self, *, progress: bool | None = None) -> EpochRecord:
        """Train the next epoch (and validate, with ``val_data``); the model's mode is left as it was.

        Raises:
            ValueError: every epoch of the schedule was already run.
            TrainingDiverged: the loss or a weight became non-finite.
        """
        epoch = self.epochs_done
        if epoch >= self.config.epochs:
            raise ValueError(f"finetune: all {self.config.epochs} epochs were already run")
        was_training = self.model.training
        try:
            stats = train_epoch(self.net, self.loader, self.optimizer, config=self.config, epoch=epoch,
                                device=self.device, amp=self.config.amp, raw=self.model, progress=progress)
            val = None
            if self.val_loader is not None:
                val = validate(self.model, self.val_loader, config=self.config, device=self.device,
                               amp=self.config.amp)
        finally:
            self.model.train(was_training)
        self.epochs_done = epoch + 1
        record = _record(self.config, epoch, stats, val, self.config.epochs)
        log.debug(format_epoch(record))
        return record

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer state and epochs done: what :meth:`load_state_dict` continues from."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epochs_done": self.epochs_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (the next :meth:`run_epoch` is the epoch after its last)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epochs_done = int(state["epochs_done"])


def finetune(model: nn.Module, data: ArrayDataset, *, epochs: int, config: TrainConfig,
             device: torch.device | str | None = None, val_data: ArrayDataset | None = None,
             progress: bool | None = None) -> list[EpochRecord]:
    """All ``epochs`` epochs of a :class:`Finetuner` (see there); returns one record per epoch
    (counted from 1). With ``epochs == config.epochs`` the schedule is exactly ``config``'s."""
    tuner = Finetuner(model, data, epochs=epochs, config=config, device=device, val_data=val_data)
    return [tuner.run_epoch(progress=progress) for _ in range(epochs)]

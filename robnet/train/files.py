"""The files of a training run folder: the order they are written in, resume, repair.

After each epoch (rank 0, under the run folder's lock, see :mod:`robnet.io.rundir`):

1. a new best model goes to ``.best.pt.pending`` (atomic write);
2. ``last.pt`` (atomic write) records weights, optimizer, RNG, the history of epoch records and
   the best's identity (epoch, val accuracy, sha256, size): **the commit point**;
3. the pending file is renamed to ``best.pt``;
4. ``log.csv`` is rewritten, atomically, from ``last.pt``'s history.

A kill before 2 leaves the previous epoch committed (its pending file is dropped on resume); a
kill after 2 is completed on resume (:func:`repair` renames the pending file whose identity
``last.pt`` recorded, and rewrites ``log.csv``). So ``best.pt`` always ends equal to the best
that ``last.pt`` records, and ``log.csv`` never holds an epoch that ``last.pt`` does not, nor
one twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robnet.io import checkpoint as ckpt
from robnet.io.files import fsync_dir
from robnet.io.rundir import file_identity, write_csv
from robnet.train.config import LOG_FIELDS, EpochRecord, TrainConfig

__all__ = ["BEST", "LAST", "LOG", "PENDING_BEST", "RUN_FILES", "Progress", "repair", "resume_state", "save_epoch"]

log = logging.getLogger(__name__)

LAST, BEST, PENDING_BEST, LOG = "last.pt", "best.pt", ".best.pt.pending", "log.csv"
RUN_FILES = (LAST, BEST, PENDING_BEST, LOG, "tensorboard")  # what --overwrite deletes


@dataclass
class Progress:
    """A run's state between epochs: what ``last.pt`` records besides weights and optimizer."""

    epochs_done: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    best: dict[str, Any] | None = None  # {"epoch", "val_adv_acc", "sha256", "size"} of best.pt


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _matches(path: Path, identity: Mapping[str, Any]) -> bool:
    if not path.is_file() or path.stat().st_size != identity.get("size"):
        return False
    return file_identity(path)["sha256"] == identity.get("sha256")


def _write_log(folder: Path, history: list[EpochRecord]) -> None:
    write_csv(folder / LOG, [asdict(h) for h in history], LOG_FIELDS)


def repair(folder: Path, state: Progress) -> None:
    """Make best.pt and log.csv agree with last.pt after a kill (rank 0, under the run's lock)."""
    best, pending = folder / BEST, folder / PENDING_BEST
    want = state.best
    if want is not None and not _matches(best, want):
        if _matches(pending, want):
            os.replace(pending, best)
            fsync_dir(folder)
            log.warning("%s: completed the interrupted update of best.pt (epoch %d)", folder, want["epoch"])
        else:
            log.warning("%s: best.pt does not hold the recorded best (epoch %d, sha256 %s...): it was changed or "
                        "removed outside this run", folder, want["epoch"], str(want.get("sha256"))[:12])
    if pending.exists():
        pending.unlink()
        log.warning("%s: dropped a best.pt candidate that its epoch never committed", folder)
    _write_log(folder, state.history)


def resume_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig, *,
                 fix_files: bool) -> Progress:
    """Load ``folder/last.pt`` (when an epoch was committed) into ``model`` and ``optimizer`` and
    return the run's progress; with ``fix_files`` (rank 0) also :func:`repair` the other files.

    Raises:
        ValueError: ``last.pt`` was written with another config, for another model, or by a
            robnet older than run folders.
    """
    last = folder / LAST
    if not last.exists():
        log.info("%s: no epoch was completed yet: starting at epoch 1", folder)
        state = Progress()
    else:
        payload = ckpt.load_raw(last)
        extra = payload["extra"]
        if "epochs_done" not in extra:
            raise ValueError(f"cannot resume {last}: it was written by an older robnet (no run record). Hint: "
                             "evaluate its best.pt, or start a new run with another --out")
        saved, current = payload["meta"].get("train_config"), asdict(config)
        if saved != current:
            diff = sorted(k for k in set(saved or {}) | set(current) if (saved or {}).get(k) != current.get(k))
            raise ValueError(f"cannot resume {last}: the training config differs in {', '.join(diff)}")
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as e:
            raise ValueError(f"cannot resume {last}: its weights do not fit this model "
                             f"({str(e).splitlines()[0]}). Hint: resume with the recorded model settings") from None
        optimizer.load_state_dict(extra["optimizer"])
        _set_rng_state(extra["rng"])
        state = Progress(epochs_done=int(extra["epochs_done"]), best=extra["best"],
                         history=[EpochRecord(**h) for h in extra["history"]])
        log.info("resumed %s after epoch %d", last, state.epochs_done)
    if fix_files:
        repair(folder, state)
    return state


def save_epoch(folder: Path, raw: nn.Module, optimizer: torch.optim.Optimizer, state: Progress, *,
               arch: Any, meta: dict[str, Any], improved: bool) -> None:
    """Write the files of the epoch ``state.history[-1]`` in the order of the module docstring.

    ``improved``: the epoch is the new best; ``state.best`` then holds its epoch and accuracy,
    and gets the new ``best.pt``'s identity here.
    """
    if improved:
        if state.best is None:
            raise ValueError("save_epoch: improved=True needs state.best = {'epoch': ..., 'val_adv_acc': ...}")
        ckpt.save(folder / PENDING_BEST, raw, arch=arch, meta=meta)
        state.best.update(file_identity(folder / PENDING_BEST))
    extra = {"optimizer": optimizer.state_dict(), "rng": _rng_state(), "epochs_done": state.epochs_done,
             "best": state.best, "history": [asdict(h) for h in state.history]}
    ckpt.save(folder / LAST, raw, arch=arch, meta=meta, extra=extra)  # the commit point
    if improved:
        os.replace(folder / PENDING_BEST, folder / BEST)
        fsync_dir(folder)
    _write_log(folder, state.history)

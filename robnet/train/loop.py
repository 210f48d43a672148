"""PGD adversarial training (Madry et al. 2018) with the official RobNets recipe as the default.

Recipe (docs/design.md §3): adversarial examples only (no clean mix), PGD-7 with eps 8/255 and step 2/255
from a uniform random start; SGD momentum 0.9, weight decay 1e-4 with none on BN and biases;
20 epochs of linear warm-up from 0.02 to the peak lr, then cosine down to 0.001 over 150 epochs
(the official ``CosineLRScheduler``, stepped once per epoch); peak lr 1.2 at batch 1536, scaled
linearly with the global batch; crop 32 pad 4 + flip (+ Cutout 16 for robnet_large).

The parts, smallest first:

* :func:`adversarial_step`: one PGD attack + one SGD update.
* :func:`train_epoch`: one epoch of PGD adversarial training of a given model. ``step_args``
  passes extra forward arguments per step, so a weight-sharing supernet trains a different
  architecture each step (``supernet(x, genotype)``) without this module knowing about supernets.
* :func:`validate`: clean and PGD accuracy on a held-out split (float32 unless ``amp``).
* :func:`finetune`: K epochs on an in-memory model, no files (the search's candidates).
* :func:`train`: the resumable run, in a locked run folder (:mod:`robnet.io.rundir`) holding
  ``last.pt``, ``best.pt``, ``log.csv`` and ``run.json``; one :class:`EpochRecord` per epoch,
  printed with :func:`format_epoch` and read back from ``log.csv`` with :func:`read_log`.

Everything that decides the run is a pure function of ``(config, epoch, step)``: the data order
and augmentation (seeded by epoch), the PGD random start (seeded by epoch and step, drawn for the
whole global batch so every DDP rank slices the same noise), and the learning rate. Resuming from
an epoch checkpoint therefore continues bit-for-bit, and a run on W processes matches one process
with the same global batch (up to per-rank BatchNorm statistics, see :class:`TrainConfig`).

The run folder's files are written in an order that a kill at any moment cannot make
inconsistent (:mod:`robnet.train.files`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robnet.attacks.gradient import pgd
from robnet.data.datasets import ArrayDataset
from robnet.data.loader import Augment, DeviceLoader
from robnet.train.config import (
    EpochRecord,
    TrainConfig,
)
from robnet.utils import all_reduce_, dist_info, eval_mode

__all__ = ["EpochTrainStats", "TrainingDiverged", "adversarial_step", "param_groups", "train_epoch", "validate",
           "wrap_model"]

log = logging.getLogger(__name__)

StepArgs = Callable[[int], tuple[Any, ...]]

@dataclass(frozen=True, kw_only=True)
class EpochTrainStats:
    """The training half of an epoch: mean loss and accuracy on adversarial examples (all ranks)."""

    loss: float
    adv_acc: float
    images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0



class TrainingDiverged(ValueError):
    """The loss or the weights became non-finite (NaN or infinite) in ``epoch`` (counted from 1).

    ``kept`` says what stays on disk (the last good checkpoint), when a run folder is involved;
    ``hint`` says what to do, in the words of the command that ran (default: ``robnet train``'s).
    """

    def __init__(self, *, epoch: int, what: str, lr: float, kept: str | None = None,
                 hint: str = "lower the learning rate (--lr)") -> None:
        self.epoch, self.what, self.lr, self.kept, self.hint = epoch, what, lr, kept, hint
        where = f"; {kept}" if kept else ""
        super().__init__(f"training diverged in epoch {epoch}: {what} (lr {lr:.4g}){where}. Hint: {hint}")


# ----------------------------------------------------------------------------- one step, one epoch


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two SGD groups: weight decay on conv/linear weights, none on BN parameters and biases."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(module, nn.modules.batchnorm._NormBase) or name == "bias" or p.ndim <= 1:
                no_decay.append(p)
            else:
                decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _noise_generator(seed: int, epoch: int, step: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    value = (seed * 1_000_003 + epoch) * 1_000_003 + step
    # torch takes seeds in [-2**63, 2**64); large seeds (e.g. the search's derived ones) wrap
    g.manual_seed(value if -(2**63) <= value < 2**64 else value % 2**64)
    return g


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


@contextlib.contextmanager
def _bn_mode(model: nn.Module, mode: str) -> Iterator[None]:
    if mode == "eval":
        with eval_mode(model):
            yield
    else:
        yield


class _BoundArgs(nn.Module):
    """``module(x, *args)`` as a one-argument module, for the attacks (which call ``model(x)``)."""

    def __init__(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        super().__init__()
        self.module = module
        self.args = args

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x, *self.args)


def _unwrap(net: nn.Module) -> nn.Module:
    net = getattr(net, "_orig_mod", net)  # torch.compile
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def wrap_model(model: nn.Module, *, device: torch.device, config: TrainConfig,
               find_unused_parameters: bool = False) -> nn.Module:
    """The module the update runs through: ``model`` in DDP when a process group of more than one
    process exists (``find_unused_parameters`` for supernets, whose skipped branches get no
    gradient), then ``torch.compile`` when ``config.compile``."""
    net = model
    if dist_info()[1] > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                  find_unused_parameters=find_unused_parameters)
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    return net


def adversarial_step(model: nn.Module, raw: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                     y: torch.Tensor, *, config: TrainConfig, noise: torch.Tensor | None,
                     amp: bool, args: tuple[Any, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """One PGD adversarial training step; returns (summed loss, number correct) as device tensors.

    The attack runs on ``raw`` (the unwrapped module: no DDP gradient hooks or all-reduce during
    the attack; with ``args``, a module binding them); the update runs ``model(x_adv, *args)``
    (possibly DDP / compiled). No host sync happens here.
    """
    device = x.device
    with _bn_mode(raw, config.attack_bn), _autocast(device, amp):
        x_adv = pgd(raw, x, y, eps=config.eps, step_size=config.step_size, steps=config.attack_steps,
                    random_start=noise is not None, noise=noise)
    with _autocast(device, amp):
        logits = model(x_adv, *args)
        loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        correct = (logits.argmax(1) == y).sum()
    return loss.detach() * y.numel(), correct


def _all_finite(model: nn.Module) -> bool:
    tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _check_loader(net: nn.Module, loader: DeviceLoader, config: TrainConfig) -> None:
    world = loader.world_size
    if loader.batch_size * world != config.batch_size:
        raise ValueError(f"train_epoch: the loader gives {loader.batch_size} images per batch on each of {world} "
                         f"process(es) but config.batch_size is {config.batch_size}. Hint: build the loader "
                         "with batch_size=config.batch_size // world_size")
    ddp = isinstance(getattr(net, "_orig_mod", net), nn.parallel.DistributedDataParallel)
    if world > 1 and not ddp:
        raise ValueError(f"train_epoch: the loader is sharded over {world} processes but the model is not in "
                         "DistributedDataParallel. Hint: net = wrap_model(model, device=..., config=...)")


def train_epoch(net: nn.Module, loader: DeviceLoader, optimizer: torch.optim.Optimizer, *, config: TrainConfig,
                epoch: int, device: torch.device, amp: bool, raw: nn.Module | None = None,
                step_args: StepArgs | None = None, progress: bool | None = None) -> EpochTrainStats:
    """One epoch of PGD adversarial training of ``net``, at ``config.lr_at(epoch)``.

    Args:
        net: the module the update runs through (see :func:`wrap_model`; under DDP it must be
            wrapped, and the loader sharded with the same rank and world size).
        loader: training batches of ``config.batch_size // world_size`` images, shuffled and
            augmented by the loader (its ``set_epoch`` is called here).
        optimizer: SGD over ``net``'s parameters; its lr is set to the epoch's.
        config: the recipe (attack, schedule, seed).
        epoch: 0-based epoch index (decides the lr, the data order and the attack noise).
        device: where the batches live.
        amp: bf16 autocast.
        raw: the unwrapped model for the attack (default: ``net`` without its wrappers).
        step_args: for each step index of the epoch, extra positional forward arguments: the
            update runs ``net(x_adv, *args)`` and the attack ``raw(x, *args)`` (e.g. a supernet's
            architecture of the step; under DDP wrap with ``find_unused_parameters=True``).
        progress: tqdm bar (rank 0; None: only on a TTY).

    Returns:
        The epoch's loss and accuracy over every rank's examples.

    Raises:
        TrainingDiverged: the loss or a weight became non-finite.
        ValueError: a loader that does not match ``config`` or the process group.
    """
    from tqdm.auto import tqdm

    _check_loader(net, loader, config)
    rank, world = loader.rank, loader.world_size
    raw = raw if raw is not None else _unwrap(net)
    lr = config.lr_at(epoch)
    for group in optimizer.param_groups:
        group["lr"] = lr
    loader.set_epoch(epoch)
    net.train()
    t0 = time.perf_counter()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
               disable=True if progress is False or rank else None)
    for step, (x, y) in enumerate(bar):
        noise = _start_noise(config, epoch, step, x, device, rank, world)
        args = tuple(step_args(step)) if step_args is not None else ()
        attacked = _BoundArgs(raw, args) if args else raw
        loss, corr = adversarial_step(net, attacked, optimizer, x, y, config=config, noise=noise, amp=amp, args=args)
        loss_sum += loss
        correct += corr
        seen += y.numel()
    stats = _epoch_stats(loss_sum, correct, seen, device=device, world=world, t0=t0)
    finite_loss = math.isfinite(stats.loss)
    if not finite_loss or not _all_finite(raw):
        what = f"the training loss became {stats.loss}" if not finite_loss else "a weight became non-finite"
        raise TrainingDiverged(epoch=epoch + 1, what=what, lr=lr)
    return stats


def _start_noise(config: TrainConfig, epoch: int, step: int, x: torch.Tensor, device: torch.device, rank: int,
                 world: int) -> torch.Tensor | None:
    """This rank's rows of the step's random PGD start, in units of eps (robnet.attacks.gradient.pgd's
    ``noise``), or None without a random start.

    Drawn for the whole global batch: the loader gives rank r the global batch's rows r, r + W,
    r + 2W, ..., so slicing the noise the same way makes the run independent of the number of
    processes.
    """
    if not (config.random_start and config.eps > 0):
        return None
    gen = _noise_generator(config.seed, epoch, step, device)
    full = torch.empty((config.batch_size, *x.shape[1:]), device=device).uniform_(-1.0, 1.0, generator=gen)
    return full[rank::world]


def _epoch_stats(loss_sum: torch.Tensor, correct: torch.Tensor, seen: int, *, device: torch.device, world: int,
                 t0: float) -> EpochTrainStats:
    """The epoch's loss and accuracy over every rank's examples (one all-reduce, one host sync)."""
    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(seen), device=device, dtype=torch.float64)])
    if world > 1:  # the loader's processes, not the process group's: see validate
        all_reduce_(totals)
    total_loss, total_correct, total_seen = totals.tolist()
    return EpochTrainStats(loss=total_loss / max(total_seen, 1), adv_acc=total_correct / max(total_seen, 1),
                           images=int(total_seen), seconds=time.perf_counter() - t0)


@torch.no_grad()
def _count_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> torch.Tensor:
    with _autocast(x.device, amp):
        return (model(x).argmax(1) == y).sum()


def validate(model: nn.Module, loader: DeviceLoader, *, config: TrainConfig, device: torch.device,
             amp: bool) -> tuple[float, float]:
    """Clean and PGD-``val_attack_steps`` accuracy in eval mode on an unshuffled, rank-sharded
    ``loader`` (exact under DDP: the counts are summed over the loader's ranks).

    The attack runs in float32 unless ``amp`` (bf16 attacks can report inflated robustness,
    docs/design.md §3); its random start is seeded by ``config.seed`` and the rank.
    """
    rank, world = loader.rank, loader.world_size
    clean = torch.zeros((), dtype=torch.long, device=device)
    adv = torch.zeros((), dtype=torch.long, device=device)
    n = torch.zeros((), dtype=torch.long, device=device)
    gen = _noise_generator(config.seed, -1, rank, device)
    with eval_mode(model):
        for x, y in loader:
            clean += _count_correct(model, x, y, amp)
            with _autocast(device, amp):
                x_adv = pgd(model, x, y, eps=config.eps, step_size=config.step_size,
                            steps=config.val_attack_steps, random_start=config.random_start, generator=gen)
            adv += _count_correct(model, x_adv, y, amp)
            n += y.numel()
    counts = torch.stack([clean, adv, n])
    if world > 1:  # the loader's processes (a search's candidate finetunes in one process under DDP too)
        all_reduce_(counts)
    c, a, total = (int(v) for v in counts.tolist())
    return c / max(total, 1), a / max(total, 1)


# ----------------------------------------------------------------------------- finetune


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _setup_model(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return torch.optim.SGD(param_groups(model, config.weight_decay), lr=config.lr_at(0), momentum=config.momentum)


def _loaders(config: TrainConfig, train_data: ArrayDataset, val_data: ArrayDataset | None, device: torch.device,
             rank: int, world: int) -> tuple[DeviceLoader, DeviceLoader | None]:
    augment = Augment(crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout)
    per_rank = config.batch_size // world
    loader = DeviceLoader(train_data, batch_size=per_rank, device=device, shuffle=True, augment=augment,
                          seed=config.seed, drop_last=True, rank=rank, world_size=world,
                          channels_last=config.channels_last)
    val_loader = None
    if val_data is not None and len(val_data):
        val_loader = DeviceLoader(val_data, batch_size=per_rank, device=device, shuffle=False, rank=rank,
                                  world_size=world, channels_last=config.channels_last)
    return loader, val_loader


def _record(config: TrainConfig, epoch: int, stats: EpochTrainStats, val: tuple[float, float] | None,
            epochs: int) -> EpochRecord:
    return EpochRecord(epoch=epoch + 1, epochs=epochs, lr=config.lr_at(epoch), train_loss=stats.loss,
                       train_adv_acc=stats.adv_acc, val_clean_acc=None if val is None else val[0],
                       val_adv_acc=None if val is None else val[1], seconds=stats.seconds,
                       images_per_s=stats.images_per_s, precision=config.precision)

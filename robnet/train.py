"""PGD adversarial training (Madry et al. 2018) with the official RobNets recipe as the default.

Recipe (SPEC §3): adversarial examples only (no clean mix), PGD-7 with eps 8/255 and step 2/255
from a uniform random start; SGD momentum 0.9, weight decay 1e-4 with none on BN and biases;
20 epochs of linear warm-up from 0.02 to the peak lr, then cosine down to 0.001 over 150 epochs
(the official ``CosineLRScheduler``, stepped once per epoch); peak lr 1.2 at batch 1536, scaled
linearly with the global batch; crop 32 pad 4 + flip (+ Cutout 16 for robnet_large).

Everything that decides the run is a pure function of ``(config, epoch, step)``: the data order
and augmentation (seeded by epoch), the PGD random start (seeded by epoch and step, drawn for the
whole global batch so every DDP rank slices the same noise), and the learning rate. Resuming from
an epoch checkpoint therefore continues bit-for-bit, and a run on W processes matches one process
with the same global batch (up to per-rank BatchNorm statistics, see :class:`TrainConfig`).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ckpt
from .attacks import pgd
from .data import ArrayDataset
from .distributed import all_reduce_, dist_info, resolve_device
from .loader import Augment, DeviceLoader
from .modes import eval_mode

log = logging.getLogger(__name__)

BN_MODES = ("train", "eval")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Adversarial training settings (all of them go verbatim into every checkpoint).

    Attributes:
        epochs: total epochs including warm-up (official: 170 = 20 + 150).
        warmup_epochs: linear warm-up epochs.
        batch_size: global batch (split evenly over DDP ranks).
        lr: peak learning rate; None scales the official 1.2 at batch 1536 linearly.
        warmup_lr: learning rate at epoch 0 of the warm-up.
        min_lr: final cosine learning rate.
        momentum, weight_decay: SGD settings; no weight decay on BN parameters and biases.
        eps, step_size, attack_steps: the training attack (L-inf PGD).
        random_start: uniform random start in the eps-ball.
        attack_bn: BatchNorm mode while the attack runs: "train" (official code: batch statistics,
            and the attack's forward passes update the running statistics) or "eval".
        crop_padding, flip, cutout: on-device augmentation (cutout 0 = off).
        seed: decides data order, augmentation, attack noise and the validation split.
        val_attack_steps: PGD steps for the per-epoch validation accuracy.
        val_size: held-out part of the training set for model selection (int count or fraction;
            0 disables selection: the last epoch is kept).
        amp: bf16 autocast (CUDA default on; off on CPU).
        channels_last: NHWC memory format (default on: faster on CUDA, and 15-30% faster for RobNet
            fwd+bwd on the CPU measured in benchmarks/results/bench_train_step.md).
        compile: wrap the model in ``torch.compile``.
        sync_bn: under DDP, BatchNorm statistics over the global batch (``nn.SyncBatchNorm``,
            CUDA only); off: per-rank statistics, as in the official code.
    """

    epochs: int = 170
    warmup_epochs: int = 20
    batch_size: int = 128
    lr: float | None = None
    warmup_lr: float = 0.02
    min_lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    eps: float = 8 / 255
    step_size: float = 2 / 255
    attack_steps: int = 7
    random_start: bool = True
    attack_bn: str = "train"
    crop_padding: int = 4
    flip: bool = True
    cutout: int = 0
    seed: int = 0
    val_attack_steps: int = 20
    val_size: float = 0.1
    amp: bool | None = None
    channels_last: bool = True
    compile: bool = False
    sync_bn: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs} of {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.eps < 0 or self.step_size < 0 or self.attack_steps < 0:
            raise ValueError("eps, step_size and attack_steps must be >= 0")
        if self.attack_bn not in BN_MODES:
            raise ValueError(f"attack_bn must be one of {BN_MODES}, got {self.attack_bn!r}")
        if self.val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {self.val_size}")

    @property
    def peak_lr(self) -> float:
        """Peak lr: given, or the official 1.2 at batch 1536 scaled linearly with the batch."""
        return self.lr if self.lr is not None else 1.2 * self.batch_size / 1536

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (0-based), as the official per-epoch CosineLRScheduler gives it."""
        peak = self.peak_lr
        if epoch < self.warmup_epochs:
            return self.warmup_lr + (peak - self.warmup_lr) * epoch / self.warmup_epochs
        ratio = (epoch - self.warmup_epochs) / (self.epochs - self.warmup_epochs)
        return self.min_lr + (peak - self.min_lr) * (1 + math.cos(math.pi * ratio)) / 2


@dataclass
class EpochStats:
    epoch: int
    lr: float
    train_loss: float
    train_adv_acc: float
    val_clean_acc: float | None
    val_adv_acc: float | None
    seconds: float
    images_per_s: float


@dataclass
class TrainResult:
    history: list[EpochStats] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_adv_acc: float | None = None
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None


# --------------------------------------------------------------------------- pieces
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
    g.manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + step)
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


def adversarial_step(model: nn.Module, raw: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                     y: torch.Tensor, *, config: TrainConfig, noise: torch.Tensor | None,
                     amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One PGD adversarial training step; returns (summed loss, number correct) as device tensors.

    The attack runs on the unwrapped module ``raw`` (no DDP gradient hooks or all-reduce during the
    attack); the update runs through ``model`` (possibly DDP / compiled). No host sync happens here.
    """
    device = x.device
    with _bn_mode(raw, config.attack_bn), _autocast(device, amp):
        x_adv = pgd(raw, x, y, eps=config.eps, step_size=config.step_size, steps=config.attack_steps,
                    random_start=noise is not None, noise=noise)
    with _autocast(device, amp):
        logits = model(x_adv)
        loss = F.cross_entropy(logits.float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        correct = (logits.argmax(1) == y).sum()
    return loss.detach() * y.numel(), correct


@torch.no_grad()
def _count_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool) -> torch.Tensor:
    with _autocast(x.device, amp):
        return (model(x).argmax(1) == y).sum()


def validate(model: nn.Module, loader: DeviceLoader, *, config: TrainConfig, device: torch.device,
             amp: bool) -> tuple[float, float]:
    """Clean and PGD-``val_attack_steps`` accuracy in eval mode on an unshuffled, rank-sharded
    ``loader`` (exact under DDP: the counts are summed over ranks)."""
    rank, _ = dist_info()
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
    totals = all_reduce_(torch.stack([clean, adv, n]))
    c, a, total = (int(v) for v in totals.tolist())
    return c / max(total, 1), a / max(total, 1)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_csv(path: Path, stats: EpochStats) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(stats)))
        if new:
            writer.writeheader()
        writer.writerow(asdict(stats))


def _tensorboard_writer(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError("TensorBoard logging needs the tensorboard package: pip install tensorboard "
                         f"(or drop --tensorboard; log.csv is always written) [{err}]") from err
    return SummaryWriter(log_dir=str(log_dir))


def train(model: nn.Module, train_data: ArrayDataset, *, config: TrainConfig, out_dir: str | os.PathLike[str],
          arch: str | dict[str, Any], val_data: ArrayDataset | None = None, device: torch.device | str | None = None,
          resume: bool = False, progress: bool = True, meta: dict[str, Any] | None = None,
          max_epochs: int | None = None, tensorboard: bool = False) -> TrainResult:
    """Adversarially train ``model`` with PGD; checkpoints to ``out_dir`` after every epoch.

    Args:
        model: the network (not yet wrapped in DDP; wrapping happens here when a process group exists).
        train_data: training images (the validation part already split off, see
            :func:`robnet.data.train_val_split`).
        config: the recipe.
        out_dir: where ``last.pt``, ``best.pt`` and ``log.csv`` go.
        arch: the architecture as data (zoo name, dict or genotype dict), stored in checkpoints.
        val_data: held-out split for model selection; never the test set.
        device: where to train (default: CUDA when available). Under torchrun each process uses
            its local GPU.
        resume: continue from ``out_dir/last.pt`` bit-for-bit.
        progress: show a tqdm bar (rank 0, TTY only).
        meta: extra plain data recorded in checkpoints (dataset name, command line, ...).
        max_epochs: stop after this many epochs of this call (for tests and time-boxed runs);
            the schedule still follows ``config.epochs``.
        tensorboard: also log the epoch statistics to ``out_dir/tensorboard`` (needs the
            ``tensorboard`` package).
    """
    from tqdm.auto import tqdm

    dev = torch.device(device) if device is not None else resolve_device()
    rank, world = dist_info()
    if config.batch_size % world:
        raise ValueError(f"global batch {config.batch_size} is not divisible by {world} processes")
    amp = config.amp if config.amp is not None else dev.type == "cuda"
    channels_last = config.channels_last
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    last_path, best_path, csv_path = out / "last.pt", out / "best.pt", out / "log.csv"

    if config.sync_bn and world > 1:
        if dev.type != "cuda":
            raise ValueError("sync_bn needs CUDA: torch's SyncBatchNorm does not run on the CPU (gloo); "
                             "drop --sync-bn to keep per-rank BatchNorm statistics")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.SGD(param_groups(model, config.weight_decay), lr=config.lr_at(0),
                                momentum=config.momentum)
    writer = _tensorboard_writer(out / "tensorboard") if tensorboard and rank == 0 else None
    result = TrainResult(last_checkpoint=last_path)
    start_epoch = 0
    best = -1.0
    if resume:
        if not last_path.exists():
            raise FileNotFoundError(f"nothing to resume: {last_path} does not exist")
        payload = ckpt.load_raw(last_path)
        saved = payload["meta"].get("train_config")
        if saved is not None and saved != asdict(config):
            diff = sorted(k for k in saved if saved.get(k) != asdict(config).get(k))
            raise ValueError(f"cannot resume {last_path}: the training config differs in {', '.join(diff)}")
        model.load_state_dict(payload["state_dict"])
        extra = payload["extra"]
        optimizer.load_state_dict(extra["optimizer"])
        _set_rng_state(extra["rng"])
        start_epoch = int(extra["epoch"]) + 1
        best = float(extra["best_val_adv_acc"])
        result.history = [EpochStats(**h) for h in extra["history"]]
        log.info("resumed from %s at epoch %d", last_path, start_epoch)

    raw = model
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]

    augment = Augment(crop_padding=config.crop_padding, flip=config.flip, cutout=config.cutout)
    per_rank = config.batch_size // world
    loader = DeviceLoader(train_data, batch_size=per_rank, device=dev, shuffle=True, augment=augment,
                          seed=config.seed, drop_last=True, rank=rank, world_size=world,
                          channels_last=channels_last)
    if len(loader) == 0:
        raise ValueError(f"training set of {len(train_data)} images gives no full batch of {config.batch_size}")
    val_loader = None
    if val_data is not None and len(val_data):
        val_loader = DeviceLoader(val_data, batch_size=per_rank, device=dev, shuffle=False, rank=rank,
                                  world_size=world, channels_last=channels_last)
    end_epoch = config.epochs if max_epochs is None else min(config.epochs, start_epoch + max_epochs)
    for epoch in range(start_epoch, end_epoch):
        lr = config.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loader.set_epoch(epoch)
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=dev)
        correct = torch.zeros((), dtype=torch.long, device=dev)
        seen = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=True if not progress or rank else None)  # None: off without a TTY
        for step, (x, y) in enumerate(bar):
            noise = None
            if config.random_start and config.eps > 0:
                # Drawn for the whole global batch: DeviceLoader gives rank r the global batch's
                # rows r, r + W, r + 2W, ..., so slicing the noise the same way makes the run
                # independent of the number of processes.
                gen = _noise_generator(config.seed, epoch, step, dev)
                full = torch.empty((config.batch_size, *x.shape[1:]), device=dev).uniform_(
                    -1.0, 1.0, generator=gen)  # in units of eps (robnet.attacks.pgd's `noise`)
                noise = full[rank::world]
            loss, corr = adversarial_step(net, raw, optimizer, x, y, config=config, noise=noise, amp=amp)
            loss_sum += loss
            correct += corr
            seen += y.numel()
        totals = all_reduce_(torch.stack([loss_sum.double(), correct.double(),
                                           torch.tensor(float(seen), device=dev, dtype=torch.float64)]))
        seconds = time.perf_counter() - t0
        total_loss, total_correct, total_seen = totals.tolist()
        val_clean = val_adv = None
        if val_loader is not None:
            val_clean, val_adv = validate(raw, val_loader, config=config, device=dev, amp=amp)
        stats = EpochStats(epoch=epoch, lr=lr, train_loss=total_loss / total_seen,
                           train_adv_acc=total_correct / total_seen, val_clean_acc=val_clean, val_adv_acc=val_adv,
                           seconds=seconds, images_per_s=total_seen / seconds)
        result.history.append(stats)
        improved = val_adv is not None and val_adv > best
        if improved:
            best = float(val_adv)  # type: ignore[arg-type]
        if rank == 0:
            log.info("epoch %d lr %.4f loss %.4f train-adv %.4f val-clean %s val-pgd %s (%.1f img/s)", epoch, lr,
                     stats.train_loss, stats.train_adv_acc, val_clean, val_adv, stats.images_per_s)
            _write_csv(csv_path, stats)
            if writer is not None:
                for key, value in asdict(stats).items():
                    if key != "epoch" and value is not None:
                        writer.add_scalar(key, value, epoch)
                writer.flush()
            record = {**(meta or {}), "train_config": asdict(config), "epoch": epoch, "val_adv_acc": val_adv,
                      "val_clean_acc": val_clean}
            extra = {"optimizer": optimizer.state_dict(), "rng": _rng_state(), "epoch": epoch,
                     "best_val_adv_acc": best, "history": [asdict(h) for h in result.history]}
            ckpt.save(last_path, raw, arch=arch, meta=record, extra=extra)
            if improved or val_loader is None:
                ckpt.save(best_path, raw, arch=arch, meta=record)
        if world > 1:
            torch.distributed.barrier()
    if writer is not None:
        writer.close()
    if best >= 0:
        result.best_val_adv_acc = best
        result.best_epoch = max((h for h in result.history if h.val_adv_acc is not None),
                                key=lambda h: h.val_adv_acc or 0.0).epoch
    result.best_checkpoint = best_path
    return result

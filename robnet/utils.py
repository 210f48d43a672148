"""Helpers every package shares: mode context managers, the one ``unwrap_model``, device choice and the
process group (torchrun/DDP and ``--procs``).

Mode managers: context managers that set a model's mode or freeze its parameters and restore them exactly.

``model.eval()`` followed by ``model.train()`` is not a restore: a model whose BN layers were
deliberately left in eval mode inside a training model (frozen BN, a frozen backbone) would come
back all-training. These context managers record the ``training`` flag of every submodule (and
the ``requires_grad`` flag of every parameter) on entry and put each one back on exit, on every
exit path, exceptions included.

Attacks in :mod:`robnet.attacks.gradient` never change the mode themselves: the caller decides. The
official RobNets code crafts the training attack with the model in train mode (BN uses batch
statistics and updates its running averages during the attack); evaluation attacks the model in
eval mode::

    with eval_mode(model):
        x_adv = pgd(model, x, y, eps=8 / 255, step_size=2 / 255, steps=20)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn

__all__ = ["SUPPORTED_DEVICES", "all_reduce_", "dist_info", "eval_mode", "frozen_params", "resolve_device",
           "setup_distributed", "train_mode", "unwrap_model"]


@contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    saved = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, flag in saved:
            module.training = flag


def eval_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Put ``model`` (all submodules) in eval mode; restore every submodule's own flag on exit.

    Args:
        model: the module.

    Yields:
        the same module.
    """
    return _mode(model, False)


def train_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Put ``model`` (all submodules) in train mode; restore every submodule's own flag on exit.

    Args:
        model: the module.

    Yields:
        the same module.
    """
    return _mode(model, True)


@contextmanager
def frozen_params(model: nn.Module) -> Iterator[nn.Module]:
    """Set ``requires_grad=False`` on every parameter; restore each parameter's own flag on exit.

    Inside, a backward pass through the model computes no parameter gradient at all, so an attack
    that asks ``torch.autograd.grad(loss, x_adv)`` for the input gradient does less work and never
    touches ``param.grad``. Parameters shared between submodules are visited once.

    Args:
        model: the module.

    Yields:
        the same module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module itself under DataParallel / DistributedDataParallel / ``torch.compile`` wrappers
    (any nesting of them).

    Raises:
        TypeError: ``model`` is not a module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    while True:
        wrapped = isinstance(model, nn.DataParallel | nn.parallel.DistributedDataParallel)
        inner = getattr(model, "module" if wrapped else "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner

# ----------------------------------------------------------------------------- devices and processes

# Devices a model can be trained and evaluated on. Others torch knows (meta holds no data; xla,
# hpu, ... need their own runtimes) are refused up front instead of failing deep inside a run.
SUPPORTED_DEVICES = ("cpu", "cuda", "mps")
_DEVICE_HINT = "Hint: --device cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``name`` as a device (default: CUDA when available, else the CPU).

    Raises:
        TypeError: ``name`` is not a string or a device.
        ValueError: a device string torch does not parse (``tpu``), a device type outside
            :data:`SUPPORTED_DEVICES` (``meta``), CUDA or MPS absent on this machine, or a CUDA
            index beyond the GPUs present.
    """
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(name, str | torch.device):
        raise TypeError(f"device must be a string or torch.device, got {type(name).__name__}")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {str(name)!r} is not a device torch knows. {_DEVICE_HINT}") from None
    if dev.type not in SUPPORTED_DEVICES:
        raise ValueError(f"device {str(name)!r}: robnet runs on {', '.join(SUPPORTED_DEVICES)}, "
                         f"not {dev.type}. {_DEVICE_HINT}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name}: CUDA is not available on this machine. Hint: --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {name}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                             f"(cuda:0..cuda:{count - 1}). {_DEVICE_HINT}")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name}: MPS (Apple GPU) is not available on this machine. Hint: --device cpu")
    return dev


def dist_info() -> tuple[int, int]:
    """(rank, world_size) of the initialised process group, (0, 1) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` in place over the process group (no-op without one)."""
    if dist_info()[1] > 1:
        torch.distributed.all_reduce(t)
    return t


def setup_distributed(device: str | torch.device | None = None) -> tuple[int, int, torch.device]:
    """Initialise DDP from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK), if present.

    NCCL with one GPU per process (the local rank's) on CUDA, gloo on the CPU.
    Returns (rank, world_size, device).
    """
    dev = resolve_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1, dev
    if dev.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    rank, world = dist_info()
    return rank, world, dev

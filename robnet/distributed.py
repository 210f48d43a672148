"""Device choice and the torchrun/DDP process group, shared by training, evaluation and the CLIs."""

from __future__ import annotations

import os

import torch

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

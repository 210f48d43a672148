"""Device choice and the torchrun/DDP process group, shared by training, evaluation and the CLIs."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str | torch.device | None = None) -> torch.device:
    """``name`` as a device (default: CUDA when available); a CUDA request without CUDA raises."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name}: CUDA is not available on this machine. Hint: --device cpu")
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

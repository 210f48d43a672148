"""Helpers every package shares: mode context managers, the one ``unwrap_model``, device choice and the
process group (torchrun/DDP and ``--procs``).

Mode managers: context managers that set a model's mode or freeze its parameters and restore them exactly.

``model.eval()`` followed by ``model.train()`` is not a restore: a model whose BN layers were
deliberately left in eval mode inside a training model (frozen BN, a frozen backbone) would come
back all-training. These context managers record the ``training`` flag of every submodule (and
the ``requires_grad`` flag of every parameter) on entry and put each one back on exit, on every
exit path, exceptions included.

Attacks in :mod:`robnet.attacks` never change the mode themselves: the caller decides. The
official RobNets code crafts the training attack with the model in train mode (BN uses batch
statistics and updates its running averages during the attack); evaluation attacks the model in
eval mode::

    with eval_mode(model):
        x_adv = pgd(model, x, y, eps=8 / 255, step_size=2 / 255, steps=20)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["SUPPORTED_DEVICES", "all_reduce_", "default_procs", "dist_info", "eval_mode", "frozen_params",
           "resolve_device", "run_on_processes", "setup_distributed", "train_mode", "unwrap_model"]


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


# ----------------------------------------------------------------------------- local processes


def default_procs(device: str | torch.device | None = None) -> int:
    """Processes a job runs on this machine by default: one per GPU with CUDA, one per usable CPU core."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        return max(1, torch.cuda.device_count())
    if dev.type != "cpu":
        return 1
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent dies (a killed job leaves no orphans)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world)}


def _child(rank: int, world: int, port: int, threads: int, error_file: str, fn: Callable[..., Any],
           kwargs: dict[str, Any]) -> None:
    _die_with_parent()
    os.environ.update(_rank_env(rank, world, port))
    torch.set_num_threads(threads)
    try:
        fn(**kwargs)
    except BaseException as exc:  # the parent reports it: one line, then the job stops
        with open(error_file, "w", encoding="utf-8") as f:
            f.write(" ".join(f"{type(exc).__name__}: {exc}".split()))
        raise SystemExit(1) from None
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _watch(children: list[Any], error_files: list[str], stop: threading.Event) -> None:
    """Stop the whole job, with the child's one-line error, as soon as a child fails: the parent may be
    blocked in a collective operation that would otherwise wait for the dead child forever."""
    while not stop.wait(0.5):
        for rank, (child, err) in enumerate(zip(children, error_files, strict=True), 1):
            if child.exitcode not in (None, 0):
                path = Path(err)
                message = path.read_text(encoding="utf-8") if path.exists() else f"exit code {child.exitcode}"
                for other in children:
                    if other.is_alive():
                        other.terminate()
                print(f"error: process {rank} of {len(children) + 1} failed: {message}", file=sys.stderr, flush=True)
                os._exit(1)


def run_on_processes(fn: Callable[..., Any], kwargs: dict[str, Any], *, procs: int, threads: int) -> Any:
    """``fn(**kwargs)`` on ``procs`` local processes joined in one process group (gloo on the CPU, NCCL
    with one GPU each on CUDA, as under torchrun), this process being rank 0; returns rank 0's result.

    The other ranks are spawned (``fn`` and ``kwargs`` must pickle) and die with this process. Each
    process runs ``threads`` intra-op threads. A failing child stops the job at once with its error
    on one line (exit status 1); a failing rank 0 stops the children and raises.
    """
    port = _free_port()
    ctx = torch.multiprocessing.get_context("spawn")
    saved = {k: os.environ.get(k) for k in _rank_env(0, procs, port)}
    before = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="robnet-procs-") as tmp:
        errors = [str(Path(tmp) / f"rank{r}.err") for r in range(1, procs)]
        children = [ctx.Process(target=_child, args=(r, procs, port, threads, errors[r - 1], fn, kwargs), daemon=False)
                    for r in range(1, procs)]
        for c in children:
            c.start()
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(children, errors, stop), daemon=True)
        watcher.start()
        os.environ.update(_rank_env(0, procs, port))
        torch.set_num_threads(threads)
        try:
            result = fn(**kwargs)
            for c in children:
                c.join()
            return result
        finally:
            stop.set()
            for c in children:
                if c.is_alive():
                    c.terminate()
            if torch.distributed.is_initialized():
                torch.distributed.destroy_process_group()
            torch.set_num_threads(before)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

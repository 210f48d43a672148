"""Device choice and the process group (robnet.utils)."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp

from robnet.utils import SUPPORTED_DEVICES, all_reduce_, dist_info, resolve_device, setup_distributed


def test_default_device_follows_cuda_availability() -> None:
    assert resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert SUPPORTED_DEVICES == ("cpu", "cuda", "mps")


@pytest.mark.parametrize(("name", "match"), [
    ("tpu", r"^device 'tpu' is not a device torch knows\. Hint: --device cpu, cuda, cuda:N or mps$"),
    ("CPU", r"^device 'CPU' is not a device torch knows"),
    ("cuda:x", r"^device 'cuda:x' is not a device torch knows"),
    ("", r"^device '' is not a device torch knows"),
    ("meta", r"^device 'meta': robnet runs on cpu, cuda, mps, not meta\. Hint: --device cpu"),
    ("xla", r"^device 'xla': robnet runs on cpu, cuda, mps, not xla\."),
])
def test_unsupported_devices_are_a_value_error(name: str, match: str) -> None:
    """Before: `tpu` raised torch's RuntimeError (a traceback in the CLIs); `meta` was accepted and
    failed deep inside the run."""
    with pytest.raises(ValueError, match=match):
        resolve_device(name)


def test_device_type_errors() -> None:
    with pytest.raises(TypeError, match=r"^device must be a string or torch\.device, got int$"):
        resolve_device(0)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda() -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"^device {name}: CUDA is not available on this machine\. "
                                             r"Hint: --device cpu$"):
            resolve_device(name)


@pytest.mark.gpu
def test_cuda_index_beyond_the_gpus_present() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: checks the refusal of an index beyond the GPUs present")
    count = torch.cuda.device_count()
    assert resolve_device(f"cuda:{count - 1}") == torch.device("cuda", count - 1)
    with pytest.raises(ValueError, match=rf"device cuda:{count}: this machine has {count} CUDA device"):
        resolve_device(f"cuda:{count}")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the error on a machine without MPS")
def test_mps_without_mps() -> None:
    with pytest.raises(ValueError, match=r"^device mps: MPS \(Apple GPU\) is not available on this machine"):
        resolve_device("mps")


def test_without_a_process_group(monkeypatch: pytest.MonkeyPatch) -> None:
    assert dist_info() == (0, 1)
    t = torch.tensor([1.0, 2.0])
    assert all_reduce_(t) is t and t.tolist() == [1.0, 2.0]  # a no-op
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert setup_distributed("cpu") == (0, 1, torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert setup_distributed("cpu") == (0, 1, torch.device("cpu"))
    assert not torch.distributed.is_initialized()
    with pytest.raises(ValueError, match="not a device torch knows"):
        setup_distributed("tpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, out: torch.Tensor) -> None:
    import os

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    r, w, dev = setup_distributed("cpu")
    t = torch.tensor([float(r + 1), 10.0])
    all_reduce_(t)
    out[rank, :2] = t
    out[rank, 2:] = torch.tensor([float(r), float(w)])
    assert dev == torch.device("cpu") and dist_info() == (r, w)
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_sum_with_all_reduce() -> None:
    out = torch.zeros(2, 4).share_memory_()
    mp.spawn(_worker, args=(2, _free_port(), out), nprocs=2, join=True)
    assert out.tolist() == [[3.0, 20.0, 0.0, 2.0], [3.0, 20.0, 1.0, 2.0]]

"""Machine description shared by the benchmark scripts."""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(device: torch.device) -> str:
    """One line: date, versions, device (GPU name, or CPU model, cores and the vector instructions torch's
    kernels use: two VMs of one CPU model can differ there, and in speed by 2-3x), torch threads."""
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{cpu_model()}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}")
    return (f"date {dt.datetime.now().astimezone().isoformat(timespec='seconds')}; python "
            f"{platform.python_version()}, torch {torch.__version__}; device {device} ({where}); "
            f"torch threads {torch.get_num_threads()}")

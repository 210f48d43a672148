"""Process bodies for the 2-process gloo search tests (imported by the spawned children; no torchrun).

Each child joins a gloo process group on 127.0.0.1, runs one search stage on a run folder with
``world_size=2``, and writes what the test compares into ``{out}/rank{R}.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch


def _join(rank: int, world: int, port: int) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")


def _leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _write(out: str, rank: int, value: dict[str, Any]) -> None:
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(value))


def finetune_worker(rank: int, world: int, port: int, run_dir: str, out: str) -> None:
    """The finetune stage of an already trained and sampled run folder, sharded over the ranks."""
    from robnet.search.finetune import finetune_stage
    from robnet.search.rundir import SearchDir
    from robnet.search.stages import score_stage

    _join(rank, world, port)
    try:
        sd = SearchDir.open(run_dir, None, create=False, argv=["_search_worker", "finetune"])
        cpu = torch.device("cpu")
        supernet = sd.load_supernet(cpu)
        scored = score_stage(sd, supernet, device=cpu, progress=False)
        done = finetune_stage(sd, supernet, scored, device=cpu, progress=False)
        _write(out, rank, {"done": done})
    finally:
        _leave()


def supernet_worker(rank: int, world: int, port: int, run_dir: str, out: str, config: dict[str, Any],
                    tamper: bool) -> None:
    """The supernet stage under DDP, recording the architecture each rank trains at every step.

    With ``tamper``, rank 1 trains another architecture at (epoch 0, step 1): the stage's
    all-reduce check must stop both ranks there.
    """
    import robnet.search.stages as search
    from robnet.search.config import SearchConfig
    from robnet.search.rundir import SearchDir

    real = search.step_genotype
    seen: list[list[Any]] = []

    def spy(cfg: Any, epoch: int, step: int) -> Any:
        g = real(cfg, epoch, step)
        if tamper and rank == 1 and (epoch, step) == (0, 1):
            g = real(cfg, epoch, step + 1000)
        seen.append([epoch, step, str(g)])
        return g

    search.step_genotype = spy  # supernet_stage looks the function up at each step
    _join(rank, world, port)
    try:
        sd = SearchDir.open(run_dir, SearchConfig.from_dict(config), create=True, argv=["_search_worker", "supernet"])
        error = ""
        try:
            search.supernet_stage(sd, device=torch.device("cpu"), progress=False)
        except RuntimeError as err:
            error = str(err)
        _write(out, rank, {"seen": seen, "error": error})
        if error:
            # The stage stopped both ranks inside DDP training; tearing the process group down from
            # there can abort gloo's threads (SIGABRT at exit). The result is written: leave now.
            os._exit(0)
    finally:
        search.step_genotype = real
        _leave()


def sample_race_worker(rank: int, world: int, port: int, run_dir: str, out: str, config: dict[str, Any]) -> None:
    """The sample stage with the second process late: it looks at the folder only after the first
    process has written ``candidates.json``. Both processes then all-reduce their rank + 1: 3 on both
    only if every barrier of the stage paired with its counterpart."""
    import datetime as dt
    import time

    import torch.distributed as dist

    from robnet.search.config import SearchConfig
    from robnet.search.rundir import SearchDir
    from robnet.search.stages import sample_stage

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}",
                            timeout=dt.timedelta(seconds=30))
    try:
        sd = SearchDir.open(run_dir, SearchConfig.from_dict(config), create=True, argv=["_search_worker", "sample"])
        if rank == 1:
            time.sleep(2.0)
        genotypes = sample_stage(sd)
        total = torch.tensor([rank + 1])
        dist.all_reduce(total)
        _write(out, rank, {"sum": int(total), "n": len(genotypes), "error": ""})
    except Exception as exc:  # a mispaired collective: recorded for the test to show
        _write(out, rank, {"sum": None, "n": None, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        _leave()

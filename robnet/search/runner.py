"""The Python entry point of the one-shot search: :func:`run` (what ``robnet search`` and ``fspkit
search`` call after parsing their flags, and what ``fspkit demo`` calls)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from robnet.io.rundir import run_lock
from robnet.models.supernet import SuperNet
from robnet.search import records as R
from robnet.search.config import SearchConfig
from robnet.search.finetune import finetune_stage
from robnet.search.records import RecordSet, read_records
from robnet.search.report import header
from robnet.search.rundir import SearchDir, check_split, remove_search
from robnet.search.select import select_stage
from robnet.search.stages import CandidateFilter, Scorer, sample_stage, score_stage, supernet_stage
from robnet.utils import default_procs, dist_info, resolve_device, run_on_processes, setup_distributed

__all__ = ["STAGES", "run"]

log = logging.getLogger("robnet.search")

STAGES = ("supernet", "sample", "finetune", "select")
_CREATES = ("supernet", "sample")  # stages that may start a search in an empty folder
_NEEDS_DATA = ("supernet", "finetune", "select")


def run(out: str | os.PathLike[str], config: SearchConfig | None = None, *, stages: Sequence[str] = STAGES,
        scorer: Scorer | None = None, candidate_filter: CandidateFilter | None = None,
        plugin: dict[str, Any] | None = None, data_dir: str | None = None, device: str | None = None,
        procs: int | None = None, threads: int | None = None, overwrite: bool = False, progress: bool = True,
        argv: list[str] | None = None) -> RecordSet:
    """Run (or continue) a one-shot robust architecture search in the run folder ``out``.

    Stages, in order (docs/search.md): ``supernet`` (PGD adversarial training of the weight-sharing
    supernet), ``sample`` (the candidates), ``finetune`` (each candidate inherits the supernet's
    weights, is evaluated, finetuned by ``config.finetune_schedule`` and evaluated again) and
    ``select`` (the best candidate, chosen on the validation split, re-measured on the test split).
    Rerunning after an interruption continues where it stopped: no candidate is lost or repeated.

    Args:
        out: the run folder.
        config: the search (None: the folder's own; a new folder then gets ``SearchConfig()``, the
            paper's). A config that differs from the folder's is refused, naming the fields.
        stages: which of :data:`STAGES` to run (in their order).
        scorer: adds fields to every candidate's record, before and after finetuning
            (``fspkit.search.FSPScorer``: FSP distances and proxies); must pickle with ``procs > 1``.
        candidate_filter: from every candidate's first-pass record, the ids to finetune.
        plugin: the scorer's and filter's settings, pinned in ``search.json`` (part of the config hash).
        data_dir: the folder holding the dataset's standard folder.
        device: ``cpu``, ``cuda``, ``cuda:1`` ... (default: CUDA when available).
        procs: processes on this machine (default: one per CPU core, one per GPU); candidates are
            sharded over them by id and the supernet trains under DDP. Ignored under torchrun.
        threads: intra-op threads per process (default 1 on the CPU: tiny networks gain nothing from
            more, and one thread per process keeps a shared machine's slowdown proportional).
        overwrite: delete the folder's search first and start over.
        progress: progress bars (first process, terminal only).
        argv: the command line recorded in ``search.json`` (None: this process's).

    Returns:
        The final records so far (:class:`~robnet.search.records.RecordSet`; empty before the
        finetune stage).

    Raises:
        ValueError: an unknown stage, a folder made by another config, data the config cannot
            train on, a folder without a search for a stage that needs one.
    """
    bad = [s for s in stages if s not in STAGES]
    if bad or not stages:
        raise ValueError(f"unknown stage(s) {bad or stages!r}; expected some of {', '.join(STAGES)}")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"run folder {folder} is a file: give a folder for --out")
    threads = threads if threads is not None else 1 if resolve_device(device).type == "cpu" else torch.get_num_threads()
    kwargs: dict[str, Any] = {
        "out": str(folder), "config": config, "stages": [s for s in STAGES if s in stages], "scorer": scorer,
        "candidate_filter": candidate_filter, "plugin": plugin, "data_dir": data_dir, "device": device,
        "overwrite": overwrite, "progress": progress, "argv": argv, "threads": threads}
    n = _processes(procs, device)
    if n == 1:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _run_rank(**kwargs)
        finally:
            torch.set_num_threads(before)
    return run_on_processes(_run_rank, kwargs, procs=n, threads=threads)


def _processes(procs: int | None, device: str | None) -> int:
    """How many local processes to start: 1 under torchrun (it started them), else ``procs`` or the default."""
    n = 1 if int(os.environ.get("WORLD_SIZE", "1")) > 1 else procs if procs is not None else default_procs(device)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"procs must be a whole number >= 1, got {procs!r}")
    return n


def _run_rank(*, out: str, config: SearchConfig | None, stages: list[str], scorer: Scorer | None,
              candidate_filter: CandidateFilter | None, plugin: dict[str, Any] | None, data_dir: str | None,
              device: str | None, overwrite: bool, progress: bool, argv: list[str] | None,
              threads: int) -> RecordSet:
    rank, world, dev = setup_distributed(device)
    folder = Path(out)
    create = any(s in _CREATES for s in stages) or overwrite
    if any(s in _NEEDS_DATA for s in stages) and config is not None:
        check_split(config, data_dir, world_size=world)  # before the folder pins a config its data refuses
    if not create and not (folder / R.CONFIG_FILE).exists():
        raise ValueError(f"{folder} holds no search ({R.CONFIG_FILE} missing). Hint: start one with "
                         f"`robnet search all --out {folder}` (or the `supernet` stage)")
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
    with run_lock(folder, enabled=rank == 0):
        if overwrite and rank == 0:
            remove_search(folder)
        sd = SearchDir.open(folder, config, plugin=plugin, data_dir=data_dir, create=create, argv=argv,
                            threads=threads)
        if any(s in _NEEDS_DATA for s in stages) and config is None:
            check_split(sd.config, data_dir, world_size=world)
        if scorer is None and sd.plugin and "finetune" in stages:
            owner = next(iter(sd.plugin))  # without the plugin's scorer the records would silently lack its fields
            raise ValueError(f"{folder} holds a search made by `{owner} search` (its settings: "
                             f"{', '.join(sorted(sd.plugin))}); this command cannot add them to the candidates. "
                             f"Hint: continue it with `{owner} search all --out {folder}`")
        supernet = _preconditions(sd, stages, dev)
        if rank == 0:
            log.info("%s on %d process%s x %d thread%s", header(sd), world, "es" if world > 1 else "", threads,
                     "s" if threads > 1 else "")
        _stages(sd, stages, dev, scorer, candidate_filter, progress, supernet)
    if rank != 0 or (not (folder / "records.rank0.jsonl").exists() and not any(folder.glob("records.rank*.jsonl"))):
        return RecordSet(records=[], source=folder)
    return read_records(folder)


def _preconditions(sd: SearchDir, stages: list[str], dev: torch.device) -> SuperNet | None:
    """What the later stages need from earlier runs, checked before anything starts (one-line errors
    before the first progress line); the trained supernet when no stage of this run trains it."""
    if not ("finetune" in stages or "select" in stages):
        return None
    if "sample" not in stages:
        sd.read_candidates()
    return None if "supernet" in stages else sd.load_supernet(dev)


def _stages(sd: SearchDir, stages: list[str], dev: torch.device, scorer: Scorer | None,
            candidate_filter: CandidateFilter | None, progress: bool, supernet: SuperNet | None) -> None:
    if "supernet" in stages:
        supernet_stage(sd, device=dev, progress=progress)
    if "sample" in stages:
        genotypes = sample_stage(sd)
        if dist_info()[0] == 0:
            log.info("%d candidates sampled into %s", len(genotypes), sd.path / R.CANDIDATES_FILE)
    if "finetune" in stages or "select" in stages:
        supernet = supernet if supernet is not None else sd.load_supernet(dev)
        if "finetune" in stages:
            scored = score_stage(sd, supernet, device=dev, scorer=scorer, progress=progress)
            finetune_stage(sd, supernet, scored, device=dev, scorer=scorer, candidate_filter=candidate_filter,
                           progress=progress)
        if "select" in stages:
            select_stage(sd, supernet, device=dev)

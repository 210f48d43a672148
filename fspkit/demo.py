"""The whole study in one call: search, FSP and proxy scores, finetuning, the retest, the honest
re-measurement of the best candidate, statistics, figures and a report (``fspkit demo``).

Into ``out_dir``::

    run/                    the search's run folder (config, supernet, candidates, records.rank*.jsonl,
                            selection.json)
    stats.json              every statistic of :func:`fspkit.stats.analyze` (strict JSON)
    figures/*.png           the paper's figures from this run (:func:`fspkit.plots.plot_all`)
    report.md, report.html  what this run found, beside what the paper reported

Every candidate is finetuned (no FSP filter), so the value of the FSP filter and of each proxy can
be measured against the truth (the proxy table simulates keeping 30%). Interrupted, the same call
continues the search where it stopped and redoes the cheap analysis.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fspkit.search import FSPSearchConfig, plugins
from robnet.io.results import write_json
from robnet.search import records as R
from robnet.search.config import SearchConfig, preset_config
from robnet.search.rundir import SearchDir
from robnet.search.runner import run
from robnet.search.select import read_selection
from robnet.utils import resolve_device

log = logging.getLogger(__name__)

__all__ = ["StudyOutputs", "run_study", "study_config"]


@dataclass(frozen=True)
class StudyOutputs:
    """Where :func:`run_study` wrote its results, and the analysis."""

    run_dir: Path
    stats_json: Path
    figures: list[Path]
    report_md: Path
    report_html: Path
    report: Any
    seconds: float


def study_config(preset: str, *, seed: int, data: str | None = None,
                 overrides: dict[str, Any] | None = None) -> SearchConfig:
    """The search of a study: the preset, the seed (which seeds everything the search draws: candidates,
    validation split, supernet, attacks), the data set and further overrides (``candidates``,
    ``supernet_epochs``, ``finetune_schedule``)."""
    extra = dict(overrides or {})
    supernet_epochs = extra.pop("supernet_epochs", None)
    cfg = preset_config(preset, seed=seed, **({"data": data} if data else {}), **extra)
    if supernet_epochs is not None:
        cfg = dataclasses.replace(cfg, supernet=dataclasses.replace(
            cfg.supernet, epochs=supernet_epochs, warmup_epochs=min(cfg.supernet.warmup_epochs, supernet_epochs - 1)))
    return cfg


def _check_folder(run_dir: Path, config: SearchConfig, plugin: dict[str, Any], out: Path) -> None:
    if not (run_dir / R.CONFIG_FILE).exists():
        return
    stored = R.read_search_json(run_dir)
    if SearchConfig.from_dict(stored["config"]) != config or stored["plugin"] != plugin:
        folder = SearchDir(run_dir, SearchConfig.from_dict(stored["config"]), stored["plugin"], None)
        try:
            folder.check_same(config, plugin)
        except ValueError as e:
            what = str(e).split(": ", 1)[1].split(". Hint", 1)[0]
            raise ValueError(f"{out} holds a study made with other settings ({what}). Hint: use another --out, or "
                             "--overwrite to replace it") from None


def run_study(out_dir: str | os.PathLike[str], *, preset: str = "cpu-demo", data: str | None = None,
              data_dir: str | None = None, device: str | None = None, quiet: bool = False, seed: int = 0,
              overrides: dict[str, Any] | None = None, procs: int | None = None, threads: int | None = None,
              overwrite: bool = False, argv: list[str] | None = None) -> StudyOutputs:
    """Run (or continue) the study into ``out_dir``; see the module docstring.

    Args:
        out_dir: the study folder.
        preset: the search preset (``cpu-demo``: digits, minutes on 2 CPU cores; ``paper``).
        data, data_dir: the data set (default: the preset's) and where it lives.
        device: ``cpu``, ``cuda`` ... (default: CUDA when available).
        quiet: no progress bars.
        seed: seeds the whole study: the search's every random choice and the analysis.
        overrides: e.g. ``{"candidates": 12, "supernet_epochs": 1, "finetune_schedule": "halving"}``.
        procs, threads: local processes and threads per process (:func:`robnet.search.run`).
        overwrite: replace a study already in ``out_dir``.
        argv: the command line recorded in the search's ``search.json``.

    Raises:
        ValueError: ``out_dir`` is a file, or holds a study made with other settings (without
            ``overwrite``); see :func:`robnet.search.run`.
    """
    from fspkit.plots import plot_all, run_context
    from fspkit.report import write_report
    from fspkit.stats import analyze

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder")
    run_dir = out / "run"
    t0 = time.perf_counter()
    config = study_config(preset, seed=seed, data=data, overrides=overrides)
    plugin = FSPSearchConfig().plugin()
    if not overwrite:
        _check_folder(run_dir, config, plugin, out)
    scorer, candidate_filter = plugins(plugin)
    resumed = (run_dir / R.CONFIG_FILE).exists() and not overwrite
    records = run(run_dir, config, scorer=scorer, candidate_filter=candidate_filter, plugin=plugin,
                  data_dir=data_dir, device=device, procs=procs, threads=threads, overwrite=overwrite,
                  progress=not quiet, argv=argv)
    sd = SearchDir.open(run_dir, None, data_dir=data_dir, create=False, record=False)
    search_seconds = time.perf_counter() - t0
    log.info("analysing %d candidates", len(records))
    report = analyze(records.records, rng=seed, notes=records.notes, selection=read_selection(sd))
    stats_json = write_json(out / "stats.json", report.to_dict())
    context = run_context(run_dir, n=len(records))
    figures = plot_all(records.records, out / "figures", context=context, analysis=report)
    seconds = time.perf_counter() - t0
    world = sd.last_world_size()
    md, html = write_report(out, report=report, figures=figures, context=context,
                            records_path=str(run_dir.relative_to(out)), stats_path="stats.json",
                            extra={"preset": preset, "wall_seconds": seconds, "search_seconds": search_seconds,
                                   "seed": seed, "device": str(resolve_device(device)), "processes": world,
                                   "finetuning": _finetuning(config, records.records),
                                   "resumed": ("yes: the wall and search times are this invocation's, earlier ones "
                                               "are not counted") if resumed else None,
                                   "command": _command(preset, data, out, seed)})
    return StudyOutputs(run_dir, stats_json, figures, md, html, report, seconds)


def _finetuning(config: SearchConfig, records: list[dict[str, Any]]) -> str:
    """The schedule and the candidate-epochs it spent, against ``full``'s K per finetuned candidate."""
    k = config.finetune.epochs
    tuned = [r for r in records if not r.get(R.FILTERED_OUT)]
    spent = sum(int(r.get(R.FINETUNE_EPOCHS) or 0) for r in tuned)
    if config.finetune_schedule == "full":
        return f"full (the paper's): {k} epoch{'s' if k != 1 else ''} per candidate, {spent} candidate-epochs"
    full = k * len(tuned)
    share = f"{spent / full:.2f}x" if full else "n/a"
    return (f"successive halving up to {k} epochs: {spent} candidate-epochs, {share} the {full} of full finetuning "
            "(what it keeps of full's top 10% needs a full run of the same supernet: docs/search.md)")


def _command(preset: str, data: str | None, out: Path, seed: int) -> str:
    parts = ["fspkit demo", f"--out {out}"]
    if preset != "cpu-demo":
        parts.append(f"--preset {preset}")
    if data is not None:
        parts.append(f"--data {data}")
    if seed:
        parts.append(f"--seed {seed}")
    return " ".join(parts)

"""The whole study in one call: search, FSP and proxy scores, finetuning, statistics, figures and
a report (``fspkit demo``).

Into ``out_dir``::

    run/                  the search's run folder (config, supernet, candidates, records.rank*.jsonl)
    stats.json            every statistic of :func:`fspkit.stats.study.analyze` (strict JSON)
    figures/*.png         the paper's figures from this run (:func:`fspkit.plots.figures.plot_all`)
    report.md, report.html  what this run found, beside what the paper reported

Every candidate is finetuned by default (no FSP filter), so the value of the FSP filter and of
each proxy can be measured against the truth (``stats.json``'s proxy table simulates keeping
30%). Interrupted, the same call continues the search where it stopped and redoes the cheap
analysis.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["StudyOutputs", "run_study"]


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


def search_args(stage: str, run_dir: Path, *, preset: str, data: str | None, data_dir: str | None,
                device: str | None, quiet: bool, overrides: dict[str, Any] | None = None) -> argparse.Namespace:
    """The ``fspkit search`` flags of one stage of the study (for :func:`robnet.cli.search.run_search`)."""
    from robnet.cli.search import add_search_arguments

    p = argparse.ArgumentParser()
    add_search_arguments(p)
    argv = [stage, "--out", str(run_dir), "--preset", preset]
    if data is not None:
        argv += ["--data", data]
    for flag, value in (overrides or {}).items():
        argv += [f"--{flag.replace('_', '-')}", str(value)]
    if data_dir is not None:
        argv += ["--data-dir", data_dir]
    if device is not None:
        argv += ["--device", device]
    if quiet:
        argv.append("--quiet")
    return p.parse_args(argv)


def fsp_hooks(plugin: dict[str, Any]) -> tuple[Any, Any]:
    """``run_search``'s hooks for a folder's fspkit settings: the FSP scorer and filter."""
    from functools import partial

    from fspkit.search import FSPScorer, FSPSearchConfig, fsp_filter

    settings = plugin.get("fspkit")
    if settings is None:
        raise ValueError("this run folder was made by `robnet search` (no FSP scores): fspkit cannot add them "
                         "to a finished pass. Hint: use another --out for `fspkit search`")
    cfg = FSPSearchConfig(**{**settings, "proxies": tuple(settings.get("proxies", ()))})
    return FSPScorer(cfg), partial(fsp_filter, cfg)


def run_study(out_dir: str | Path, *, preset: str = "cpu-demo", data: str | None = None, data_dir: str | None = None,
              device: str | None = None, quiet: bool = False, seed: int = 0,
              overrides: dict[str, Any] | None = None) -> StudyOutputs:
    """Run (or continue) the study into ``out_dir``; see the module docstring.

    Args:
        out_dir: the study folder.
        preset: the search preset (``cpu-demo``: digits, a few minutes on 2 CPU cores; ``paper``).
        data, data_dir: the data set (default: the preset's) and where it lives.
        device: ``cpu``, ``cuda`` ... (default: CUDA when available).
        quiet: no progress bars.
        seed: the analysis's seed (bootstrap, t-SNE); the search's own seed is in its config.
        overrides: further ``fspkit search`` flags, e.g. ``{"candidates": 12, "supernet_epochs": 1}``.
    """
    from fspkit import plots
    from fspkit.report import write_report
    from fspkit.search import FSPSearchConfig
    from fspkit.stats.study import analyze, load_records
    from robnet.cli.search import run_search
    from robnet.io.results import write_json
    from robnet.utils import resolve_device

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder")
    run_dir = out / "run"
    t0 = time.perf_counter()
    fsp_cfg = FSPSearchConfig()
    args = search_args("all", run_dir, preset=preset, data=data, data_dir=data_dir, device=device, quiet=quiet,
                       overrides=overrides)
    run_search(args, plugin=fsp_cfg.plugin(), hooks=fsp_hooks, prog="fspkit")
    records = load_records(run_dir)
    log.info("analysing %d candidates", len(records))
    report = analyze(records, rng=seed)
    stats_json = write_json(out / "stats.json", report.to_dict())
    context = plots.run_context(run_dir, n=len(records))
    figures = plots.plot_all(records, out / "figures", context=context, analysis=report)
    seconds = time.perf_counter() - t0
    md, html = write_report(out, report=report, figures=figures, context=context,
                            records_path=str(run_dir.relative_to(out)), stats_path="stats.json",
                            extra={"preset": preset, "wall_seconds": seconds, "seed": seed,
                                   "device": str(resolve_device(device)), "command": _command(preset, data, out)})
    return StudyOutputs(run_dir, stats_json, figures, md, html, report, seconds)


def _command(preset: str, data: str | None, out: Path) -> str:
    parts = ["fspkit demo", f"--out {out}"]
    if preset != "cpu-demo":
        parts.append(f"--preset {preset}")
    if data is not None:
        parts.append(f"--data {data}")
    return " ".join(parts)

"""``fspkit demo``, ``fspkit stats`` and ``fspkit plot``: the study of a search's records."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fspkit.demo import run_study
from robnet.cli.common import add_procs_flags, check_positive
from robnet.io.results import write_json
from robnet.search.config import PRESETS, SCHEDULES
from robnet.search.records import RecordSet, read_records

__all__ = ["add_study_parsers", "check_not_in_run", "cmd_demo", "cmd_plot", "cmd_stats", "load"]


def _records_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a search run folder, or a .jsonl / .csv file of candidate records")
    p.add_argument("--config-hash", default=None, help="analyse only the records of this search config (a file "
                   "holding several searches' records is refused otherwise)")
    p.add_argument("--allow-mixed", action="store_true", help="analyse the records of several searches together, "
                   "on purpose")
    p.add_argument("--skip-invalid", action="store_true", help="skip (and count) a record with a malformed value "
                   "instead of stopping at it")
    p.add_argument("--seed", type=int, default=0, help="bootstrap, permutation and t-SNE seed (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="warnings only")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def add_study_parsers(sub: Any) -> None:
    demo = sub.add_parser("demo", help="the whole study on the bundled digits (no files needed): supernet, "
                          "candidates, FSP and proxy scores, finetuning, statistics, figures, report")
    demo.add_argument("--out", default="fspkit-demo", help="study folder (default: %(default)s)")
    demo.add_argument("--preset", default="cpu-demo", choices=list(PRESETS), help="search preset (default: "
                      "%(default)s; paper: CIFAR-10 at the paper's scale)")
    demo.add_argument("--data", default=None, choices=("cifar10", "cifar100", "svhn", "digits"),
                      help="data set (default: the preset's)")
    demo.add_argument("--data-dir", default=None, help="folder holding the dataset's standard folder")
    demo.add_argument("--candidates", type=int, default=None, help="override the preset's candidate count")
    demo.add_argument("--supernet-epochs", type=int, default=None, help="override the preset's supernet epochs")
    demo.add_argument("--finetune-schedule", default=None, choices=SCHEDULES, help="override the preset's schedule")
    demo.add_argument("--overwrite", action="store_true", help="replace a study already in --out")
    demo.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    demo.add_argument("--seed", type=int, default=0, help="seeds every random choice: the search (candidates, "
                      "splits, attacks) and the analysis (default: %(default)s)")
    add_procs_flags(demo)
    demo.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    demo.add_argument("--debug", action="store_true", help="show tracebacks")
    st = sub.add_parser("stats", help="the statistics of a search's records: every claim with its test, control "
                        "and uncertainty")
    _records_flags(st)
    st.add_argument("--json", default=None, help="also write every statistic as JSON (outside the run folder)")
    pl = sub.add_parser("plot", help="the paper's figures from a search's records")
    _records_flags(pl)
    pl.add_argument("--out", required=True, help="folder for the figures (outside the run folder)")
    pl.add_argument("--format", default="png", choices=["png", "pdf", "svg"])


def check_not_in_run(source: str, outputs: dict[str, str | None]) -> None:
    """Refuse an output that would land in the run it reads: the source file itself, or anything
    inside its run folder (a folder given as the source, or the folder of a records file holding a
    ``search.json``).

    Raises:
        ValueError: one line naming the flag, the path and the run folder.
    """
    src = Path(source).resolve()
    run = src if src.is_dir() else src.parent if (src.parent / "search.json").exists() else None
    for flag, path in outputs.items():
        if path is None:
            continue
        target = Path(path).resolve()
        if target == src or (run is not None and target.is_relative_to(run)):
            raise ValueError(f"{flag} {path} is inside the run it reads ({run or src}): outputs never land on a "
                             "run's files. Hint: write it outside that folder")


def load(args: argparse.Namespace) -> RecordSet:
    """The records the flags name, checked (:func:`robnet.search.read_records`)."""
    return read_records(args.source, config_hash=args.config_hash, allow_mixed=args.allow_mixed,
                        skip_invalid=args.skip_invalid)


def cmd_stats(args: argparse.Namespace) -> int:
    """Readable tables of every statistic, optionally as JSON."""
    from fspkit.stats import analyze

    check_not_in_run(args.source, {"--json": args.json})
    records = load(args)
    report = analyze(records.records, rng=args.seed, notes=records.notes)
    print(report.tables())
    if args.json:
        write_json(args.json, report.to_dict())
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """Every figure of the paper that the records allow."""
    from fspkit.plots import plot_run

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder for the figures")
    check_not_in_run(args.source, {"--out": args.out})
    for p in plot_run(load(args), out, args.format, seed=args.seed):
        print(p)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole study on the embedded default (or ``--preset paper`` on CIFAR-10)."""
    overrides = {k: v for k, v in (("candidates", args.candidates), ("supernet_epochs", args.supernet_epochs),
                                   ("finetune_schedule", args.finetune_schedule)) if v is not None}
    for flag in ("candidates", "supernet_epochs", "procs", "threads"):
        check_positive(f"--{flag.replace('_', '-')}", getattr(args, flag))
    out = run_study(args.out, preset=args.preset, data=args.data, data_dir=args.data_dir, device=args.device,
                    quiet=args.quiet, seed=args.seed, overrides=overrides, procs=args.procs, threads=args.threads,
                    overwrite=args.overwrite, argv=["fspkit", *args.argv])
    print()
    print(out.report.tables())
    print()
    print(f"study written to {args.out}/ in {out.seconds / 60:.1f} min: report.html, report.md, stats.json, "
          f"{len(out.figures)} figures in figures/, the search's records in {out.run_dir}/")
    return 0

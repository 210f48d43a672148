"""``fspkit`` command line: ``fspkit [demo] | score CHECKPOINT --data cifar10 --attack pgd20 ...``.

With no arguments, runs the demo (as ``robnet`` does). ``--attack`` takes the attack specs of
``robnet eval --attacks`` (``pgd20``, ``pgd20:eps=4/255,step_size=1/255``, ``fgsm``, ``none``);
``--eps``/``--steps``/``--step-size`` remain as shorthands that override the spec's fields.
Errors print one line and exit 1 (usage errors exit 2); ``--debug`` shows the traceback. Flags,
logging and the runner are shared with ``robnet`` (:mod:`robnet.cli.common`).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robnet.cli.common import (
    add_common_flags,
    add_data_flags,
    check_outputs,
    check_positive,
    load_eval_data,
    main_entry,
    precision_record,
    take_samples,
)
from robnet.cli.search import SEARCH_DESCRIPTION, add_search_arguments

log = logging.getLogger("fspkit")

# Why a per-cell value can be missing (written as null beside this reason, never as NaN).
_MISSING = {
    "fsp_rel_mean": "the relative distance is undefined: some sample's clean FSP matrix is exactly zero, or the "
                    "cell's features are not finite",
    "fsp_rel_std": "the relative distance is undefined: some sample's clean FSP matrix is exactly zero, or the "
                   "cell's features are not finite",
}
_MISSING_DEFAULT = "not finite (NaN or inf): the cell's features overflowed"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fspkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="the whole study on the bundled digits (no files needed): supernet, "
                          "candidates, FSP and proxy scores, finetuning, statistics, figures, report")
    demo.add_argument("--out", default="fspkit-demo", help="study folder (default: %(default)s)")
    demo.add_argument("--preset", default="cpu-demo", help="search preset: cpu-demo (default) or paper")
    demo.add_argument("--data", default=None, help="data set (default: the preset's: digits / cifar10)")
    demo.add_argument("--data-dir", default=None, help="folder holding the dataset's standard folder")
    demo.add_argument("--candidates", type=int, default=None, help="override the preset's candidate count")
    demo.add_argument("--supernet-epochs", type=int, default=None, help="override the preset's supernet epochs")
    add_common_flags(demo)

    se = sub.add_parser("search", help="robnet's one-shot search plus per-cell FSP distances, proxies and the "
                        "FSP filter", description=SEARCH_DESCRIPTION.replace("robnet", "fspkit"),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_arguments(se)
    f = se.add_argument_group("FSP (fspkit)")
    f.add_argument("--fsp-keep", type=float, default=None,
                   help="finetune only this fraction of candidates, those with the smallest deep-cell FSP distance")
    f.add_argument("--fsp-threshold", type=float, default=None,
                   help="finetune only candidates whose deep-cell FSP distance is at most this")
    f.add_argument("--no-proxies", action="store_true", default=None,
                   help="skip the zero-cost proxies (grad-norm, SynFlow, NASWOT)")

    st = sub.add_parser("stats", help="the statistics of a search's records (Findings #1-#3, per-cell FSP, "
                        "proxy table)")
    st.add_argument("source", help="a search run folder, or a .jsonl / .csv file of records")
    st.add_argument("--json", default=None, help="also write every statistic as JSON")
    st.add_argument("--seed", type=int, default=0, help="bootstrap and t-SNE seed")
    st.add_argument("--quiet", action="store_true")
    st.add_argument("--debug", action="store_true")

    pl = sub.add_parser("plot", help="the paper's figures from a search's records")
    pl.add_argument("source", help="a search run folder, or a .jsonl / .csv file of records")
    pl.add_argument("--out", required=True, help="folder for the figures")
    pl.add_argument("--format", default="png", choices=["png", "pdf", "svg"])
    pl.add_argument("--quiet", action="store_true")
    pl.add_argument("--debug", action="store_true")
    sc = sub.add_parser("score", help="per-cell clean-vs-adversarial FSP distance of a checkpoint")
    sc.add_argument("checkpoint", help="a robnet checkpoint, or an official RobNets one with --arch")
    sc.add_argument("--arch", default=None, help="architecture of an official RobNets checkpoint (robnet_free, ...)")
    add_data_flags(sc, "cifar10", split=True, workers=True)
    sc.add_argument("--n", type=int, default=None,
                    help="number of samples (default: 1000, or the whole split when smaller)")
    sc.add_argument("--shuffle", action="store_true", help="a seeded random subset instead of the first n")
    sc.add_argument("--attack", default="pgd20",
                    help="attack spec as in `robnet eval --attacks`: pgd20, 'pgd20:eps=4/255,step_size=1/255', "
                    "fgsm, none ... (default: %(default)s)")
    sc.add_argument("--eps", default=None, help="shorthand: the spec's eps (e.g. 8/255)")
    sc.add_argument("--steps", type=int, default=None, help="shorthand: the spec's number of steps")
    sc.add_argument("--step-size", default=None, help="shorthand: the spec's step size (e.g. 2/255)")
    sc.add_argument("--cells", action="append", default=None,
                    help="glob of module names to score, e.g. 'cells.1[0-9]' (repeatable; default: every cell)")
    sc.add_argument("--batch-size", type=int, default=128)
    sc.add_argument("--json", default=None, help="write the report as JSON (checked before anything runs)")
    sc.add_argument("--csv", default=None, help="write the per-cell table as CSV (checked before anything runs)")
    sc.add_argument("--allow-more-classes", action="store_true",
                    help="accept a model with more outputs than the data's classes")
    add_common_flags(sc, amp=True)
    return parser


def attack_from_args(args: argparse.Namespace) -> tuple[str, Any]:
    """The attack of ``fspkit score``: ``--attack`` with the ``--eps/--steps/--step-size`` shorthands
    appended as overrides. Returns ``(spec, AttackConfig)``.

    Raises:
        ValueError: a shorthand that the spec also sets, a shorthand with ``none``, a bad spec.
    """
    from robnet.attacks.spec import parse_attack

    spec = args.attack.strip()
    head, _, tail = spec.partition(":")
    given = {key: value for key, value in (("eps", args.eps), ("steps", args.steps),
                                           ("step_size", args.step_size)) if value is not None}
    if given and parse_attack(head).name == "none":
        raise ValueError(f"--{'/--'.join(k.replace('_', '-') for k in given)} set a gradient attack's settings, "
                         f"but --attack {spec} runs no attack")
    in_spec = {item.partition("=")[0].strip().lower() for item in tail.split(",") if item.strip()}
    for key in given:
        if key in in_spec:
            raise ValueError(f"--{key.replace('_', '-')} and --attack {spec} both set {key}: give it once")
    extra = [f"{key}={value}" for key, value in given.items()]
    full = head + (":" + ",".join(filter(None, [tail, *extra])) if tail or extra else "")
    return full, parse_attack(full)


def cmd_score(args: argparse.Namespace) -> int:
    """Score a checkpoint; every check that needs no compute runs before the first attack."""
    import torch
    from tqdm.auto import tqdm

    from fspkit.score import score
    from robnet.attacks.evaluation import AMP_WARNING, check_finite_weights, check_model_data, eval_batches
    from robnet.attacks.spec import attack_record, format_attack, make_attack
    from robnet.io.checkpoint import load_any
    from robnet.io.results import provenance, versions, write_json
    from robnet.utils import resolve_device

    check_positive("--n", args.n)
    check_positive("--batch-size", args.batch_size)
    check_positive("--workers", args.workers, minimum=0)
    spec, cfg = attack_from_args(args)
    check_outputs({"--json": args.json, "--csv": args.csv}, inputs=[args.checkpoint])
    device = resolve_device(args.device)
    model, _meta = load_any(args.checkpoint, arch=args.arch)
    model.to(device)
    data: Any = load_eval_data(args)
    n = args.n if args.n is not None else min(1000, len(data))
    data = take_samples(data, n, flag="--n", what=f"the {args.data} {args.split} split", shuffle=args.shuffle,
                        seed=args.seed)
    check_finite_weights(model, what=args.checkpoint)
    check_model_data(model, data, allow_more_classes=args.allow_more_classes, what=args.checkpoint)
    # in-memory sets stay on the device; folder sets (tinyimagenet, imagenet) stream
    loader, n_batches = eval_batches(data, batch_size=args.batch_size, device=device, num_workers=args.workers)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)
    attack = make_attack(cfg, generator=gen)
    if args.amp:
        log.warning("%s", AMP_WARNING)
        attack = _under_autocast(attack, device)
    torch.manual_seed(args.seed)

    def bar(it: Any) -> Any:
        return tqdm(it, desc="fspkit score", unit="batch", total=n_batches,
                    disable=True if args.quiet else None)  # None: off when stderr is not a TTY

    record = attack_record(cfg)
    report = score(model, loader, attack, cells=args.cells, attack_settings=record, seed=args.seed, progress=bar)
    print(f"{args.checkpoint}: {args.data}/{args.split}, attack {format_attack(cfg)}"
          + (" (bf16 autocast, --amp)" if args.amp else ""))
    print(report.table())
    print(report.summary())
    if args.amp:
        print(f"warning: {AMP_WARNING}")
    settings = {"checkpoint": args.checkpoint, "arch": args.arch, "dataset": args.data, "split": args.split,
                "n": n, "shuffle": args.shuffle, "attack": spec, "cells": args.cells, "batch_size": args.batch_size,
                "amp": args.amp, "allow_more_classes": args.allow_more_classes}
    if args.json:
        out = {**report.to_dict(), **provenance(seed=args.seed, device=device, settings=settings),
               **precision_record(args.amp), "checkpoint": args.checkpoint, "dataset": args.data,
               "split": args.split, "shuffle": args.shuffle, "argv": getattr(args, "argv", None)}
        out["versions"] = {**versions(), **report.versions}
        write_json(args.json, _mark_missing(out))
    if args.csv:
        _write_csv(args.csv, report.csv_rows())
    return 0


def _under_autocast(attack: Any, device: Any) -> Any:
    import torch

    def run(model: Any, x: Any, y: Any) -> Any:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return attack(model, x, y)
    return run


def _mark_missing(obj: Any) -> Any:
    """Replace every non-finite float by ``None`` and add ``"<key>_missing": reason`` beside it."""
    if isinstance(obj, list):
        return [_mark_missing(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
            out[f"{key}_missing"] = _MISSING.get(key, _MISSING_DEFAULT)
        else:
            out[key] = _mark_missing(value)
    return out


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    from robnet.io.files import atomic_write

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def cmd_demo(args: argparse.Namespace) -> int:
    """The whole study on the embedded default (or ``--preset paper`` on CIFAR-10)."""
    from fspkit.demo import run_study

    overrides = {k: v for k, v in (("candidates", args.candidates), ("supernet_epochs", args.supernet_epochs))
                 if v is not None}
    for flag, value in overrides.items():
        check_positive(f"--{flag.replace('_', '-')}", value)
    out = run_study(args.out, preset=args.preset, data=args.data, data_dir=args.data_dir, device=args.device,
                    quiet=args.quiet, seed=args.seed, overrides=overrides)
    print()
    print(out.report.tables())
    print()
    print(f"study written to {args.out}/ in {out.seconds / 60:.1f} min: report.html, report.md, stats.json, "
          f"{len(out.figures)} figures in figures/, the search's records in {out.run_dir}/")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    """``fspkit search``: ``robnet search`` with the FSP scorer and filter plugged in."""
    from fspkit.demo import fsp_hooks
    from fspkit.search import PROXIES, FSPSearchConfig
    from robnet.cli.search import run_search

    given = args.fsp_keep is not None or args.fsp_threshold is not None or args.no_proxies is not None
    plugin = None
    if given or args.stage in ("all", "supernet", "sample"):
        plugin = FSPSearchConfig(keep=args.fsp_keep, threshold=args.fsp_threshold,
                                 proxies=() if args.no_proxies else PROXIES).plugin()
        if not given and (Path(args.out or args.run_dir or ".") / "search.json").exists():
            plugin = None  # continuing a folder: its own FSP settings
    return run_search(args, plugin=plugin, hooks=fsp_hooks, prog="fspkit")


def cmd_stats(args: argparse.Namespace) -> int:
    """``fspkit stats``: readable tables of every statistic, optionally as JSON."""
    from fspkit.stats.study import analyze, load_records
    from robnet.io.results import write_json

    check_outputs({"--json": args.json}, inputs=[args.source])
    records = load_records(args.source)
    report = analyze(records, rng=args.seed)
    print(report.tables())
    if args.json:
        write_json(args.json, report.to_dict())
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    """``fspkit plot``: every figure of the paper that the records allow."""
    from fspkit.plots.figures import plot_run

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file: give a folder for the figures")
    paths = plot_run(args.source, out, args.format)
    for p in paths:
        print(p)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``fspkit [demo] | score | search | stats | plot``; returns the exit status (no arguments: the demo)."""
    commands = {"score": cmd_score, "demo": cmd_demo, "search": cmd_search, "stats": cmd_stats, "plot": cmd_plot}
    return main_entry("fspkit", build_parser(), commands, argv)


if __name__ == "__main__":
    raise SystemExit(main())

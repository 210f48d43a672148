"""``fspkit score MODEL``: the per-cell clean-vs-adversarial FSP distance of any model (Finding #3)."""

from __future__ import annotations

import argparse
import math
from typing import Any

import torch
from tqdm.auto import tqdm

from fspkit.score import score
from robnet.attacks.config import AttackConfig, make_attack
from robnet.attacks.evaluation import AMP_WARNING, eval_batches
from robnet.attacks.preflight import check_finite_weights, check_model_data
from robnet.attacks.spec import attack_record, format_attack, parse_attack
from robnet.cli.common import (
    add_alias,
    add_common_flags,
    add_data_flags,
    add_model_flags,
    check_outputs,
    check_positive,
    load_eval_data,
    load_model,
    precision_record,
    take_samples,
)
from robnet.io.results import provenance, versions, write_json
from robnet.io.rundir import write_csv
from robnet.utils import resolve_device

__all__ = ["add_score_parser", "attack_from_args", "cmd_score"]

# Why a per-cell value can be missing (written as null beside this reason, never as NaN).
_MISSING = {
    "fsp_rel_mean": "the relative distance is undefined: some sample's clean FSP matrix is exactly zero, or the "
                    "cell's features are not finite",
    "fsp_rel_std": "the relative distance is undefined: some sample's clean FSP matrix is exactly zero, or the "
                   "cell's features are not finite",
}
_MISSING_DEFAULT = "not finite (NaN or inf): the cell's features overflowed"


def add_score_parser(sub: Any) -> None:
    sc = sub.add_parser("score", help="per-cell clean-vs-adversarial FSP distance of a model (any nn.Module)",
                        description="Per-cell FSP distance between clean and adversarial inputs, raw, relative "
                                    "and the activation scale, streamed (no feature map kept).")
    add_model_flags(sc)
    add_data_flags(sc, "cifar10", split=True, workers=True)
    sc.add_argument("--samples", type=int, default=None,
                    help="number of images (default: 1000, or the whole split when smaller)")
    add_alias(sc, "--n", "samples", type=int)
    sc.add_argument("--shuffle", action="store_true", help="a seeded random subset instead of the first images")
    sc.add_argument("--attack", default="pgd20",
                    help="attack spec as in `robnet eval --attacks`: pgd20, 'pgd20:eps=4/255,step_size=1/255', "
                    "fgsm, apgd-ce, autoattack, none ... (default: %(default)s)")
    sc.add_argument("--eps", default=None, help="shorthand: the spec's eps (e.g. 8/255)")
    sc.add_argument("--attack-steps", type=int, default=None, help="shorthand: the spec's number of steps")
    add_alias(sc, "--steps", "attack_steps", type=int)
    sc.add_argument("--step-size", default=None, help="shorthand: the spec's step size (e.g. 2/255)")
    sc.add_argument("--cells", action="append", default=None,
                    help="which modules are cells: 'auto' (the repeated blocks, chosen and printed), or a glob "
                    "of module names such as 'cells.1[0-9]' (repeatable; default: modules flagged is_cell)")
    sc.add_argument("--batch-size", type=int, default=128)
    sc.add_argument("--json", default=None, help="write the report as JSON (checked before anything runs)")
    sc.add_argument("--csv", default=None, help="write the per-cell table as CSV (checked before anything runs)")
    add_common_flags(sc, amp=True)


def attack_from_args(args: argparse.Namespace) -> tuple[str, AttackConfig]:
    """The attack of ``fspkit score``: ``--attack`` with the ``--eps/--attack-steps/--step-size``
    shorthands appended as overrides. Returns ``(spec, AttackConfig)``.

    Raises:
        ValueError: a shorthand that the spec also sets, a shorthand with ``none``, a bad spec.
    """
    spec = args.attack.strip()
    head, _, tail = spec.partition(":")
    given = {key: value for key, value in (("eps", args.eps), ("steps", args.attack_steps),
                                           ("step_size", args.step_size)) if value is not None}
    flag = {"eps": "--eps", "steps": "--attack-steps", "step_size": "--step-size"}
    if given and parse_attack(head).name == "none":
        raise ValueError(f"{'/'.join(flag[k] for k in given)} set a gradient attack's settings, "
                         f"but --attack {spec} runs no attack")
    in_spec = {item.partition("=")[0].strip().lower() for item in tail.split(",") if item.strip()}
    for key in given:
        if key in in_spec:
            raise ValueError(f"{flag[key]} and --attack {spec} both set {key}: give it once")
    extra = [f"{key}={value}" for key, value in given.items()]
    full = head + (":" + ",".join(filter(None, [tail, *extra])) if tail or extra else "")
    return full, parse_attack(full)


def _under_autocast(attack: Any, device: torch.device) -> Any:
    def run(model: Any, x: Any, y: Any) -> Any:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return attack(model, x, y)
    return run


def cmd_score(args: argparse.Namespace) -> int:
    """Score a model; every check that needs no compute runs before the first attack."""
    check_positive("--samples", args.samples)
    check_positive("--batch-size", args.batch_size)
    check_positive("--workers", args.workers, minimum=0)
    spec, cfg = attack_from_args(args)
    check_outputs({"--json": args.json, "--csv": args.csv}, inputs=[args.checkpoint])
    device = resolve_device(args.device)
    model, loaded = load_model(args, args.checkpoint)
    model.to(device)
    data: Any = load_eval_data(args)
    n = args.samples if args.samples is not None else min(1000, len(data))
    data = take_samples(data, n, flag="--samples", what=f"the {args.data} {args.split} split", shuffle=args.shuffle,
                        seed=args.seed)
    check_finite_weights(model, what=args.checkpoint)
    check_model_data(model, data, allow_more_classes=args.allow_more_classes, what=args.checkpoint)
    # in-memory sets stay on the device; folder sets (tinyimagenet, imagenet) stream
    loader, n_batches = eval_batches(data, batch_size=args.batch_size, device=device, num_workers=args.workers)
    attack = make_attack(cfg, generator=torch.Generator(device=device).manual_seed(args.seed))
    if args.amp:
        attack = _under_autocast(attack, device)
    torch.manual_seed(args.seed)

    def bar(it: Any) -> Any:
        return tqdm(it, desc="fspkit score", unit="batch", total=n_batches,
                    disable=True if args.quiet else None)  # None: off when stderr is not a TTY

    cells = "auto" if args.cells == ["auto"] else args.cells
    report = score(model, loader, attack, cells=cells, attack_settings=attack_record(cfg), seed=args.seed,
                   progress=bar)
    if "cell_choice" in report.extra:
        choice = report.extra["cell_choice"]
        print(f"--cells auto chose {len(choice['names'])} cells:")
        for line in [*(g["reason"] for g in choice["groups"]), *choice["notes"]]:
            print(f"  {line}")
    print(f"{args.checkpoint}: {args.data}/{args.split}, attack {format_attack(cfg)}"
          + (" (bf16 autocast, --amp)" if args.amp else ""))
    print(report.table())
    print(report.summary())
    if args.amp:
        print(f"warning: {AMP_WARNING}")
    settings = {"checkpoint": args.checkpoint, "model": loaded, "dataset": args.data, "split": args.split,
                "samples": n, "shuffle": args.shuffle, "attack": spec, "cells": args.cells,
                "batch_size": args.batch_size, "amp": args.amp, "allow_more_classes": args.allow_more_classes}
    if args.json:
        out = {**report.to_dict(), **provenance(seed=args.seed, device=device, settings=settings),
               **precision_record(args.amp), "checkpoint": args.checkpoint, "dataset": args.data,
               "split": args.split, "shuffle": args.shuffle, "argv": getattr(args, "argv", None)}
        out["versions"] = {**versions(), **report.versions}
        write_json(args.json, _mark_missing(out))
    if args.csv:
        rows = report.csv_rows()
        write_csv(args.csv, rows, list(rows[0]))
    return 0


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

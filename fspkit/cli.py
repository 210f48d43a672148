"""``fspkit`` command line: ``fspkit [demo] | score CHECKPOINT --data cifar10 --attack pgd20 ...``.

With no arguments, runs the demo (as ``robnet`` does). ``--attack`` takes the attack specs of
``robnet eval --attacks`` (``pgd20``, ``pgd20:eps=4/255,step_size=1/255``, ``fgsm``, ``none``);
``--eps``/``--steps``/``--step-size`` remain as shorthands that override the spec's fields.
Errors print one line and exit 1 (usage errors exit 2); ``--debug`` shows the traceback. Flags,
logging and the runner are shared with ``robnet`` (:mod:`robnet.cli_common`).
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import math
from collections.abc import Sequence
from typing import Any

from robnet.cli_common import (
    add_common_flags,
    add_data_flags,
    check_outputs,
    check_positive,
    load_eval_data,
    main_entry,
    precision_record,
    take_samples,
)

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
    demo = sub.add_parser("demo", help="Finding #3 in miniature on the bundled digits: two architectures, "
                          "adversarially trained, scored cell by cell (no files needed)")
    demo.add_argument("--epochs", type=int, default=4)
    add_common_flags(demo)
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
    from robnet.attack_spec import parse_attack

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

    from robnet.attack_spec import attack_record, format_attack, make_attack
    from robnet.checkpoint import load_any
    from robnet.distributed import resolve_device
    from robnet.evaluate import AMP_WARNING, check_finite_weights, check_model_data, eval_batches
    from robnet.results import provenance, versions, write_json

    from .score import score

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
    from robnet._files import atomic_write

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def cmd_demo(args: argparse.Namespace) -> int:
    """Finding #3 in miniature: two architectures trained on digits and scored cell by cell."""
    import tempfile

    import torch

    import robnet
    from robnet.attack_spec import attack_record, make_attack, parse_attack
    from robnet.data import load_memory_dataset
    from robnet.distributed import resolve_device
    from robnet.genotype import ROBNET_LARGE, sample
    from robnet.loader import DeviceLoader, train_val_split
    from robnet.train import TrainConfig, train

    from .score import score

    device = resolve_device(args.device)
    eps, step = 0.1, 0.025
    attack_cfg = parse_attack(f"pgd10:eps={eps},step_size={step}")
    data = load_memory_dataset("digits", split="train")
    test = load_memory_dataset("digits", split="test")
    train_part, val_part = train_val_split(data, val_size=0.15, seed=args.seed)
    candidates = {"dense: RobNet-large cell": ROBNET_LARGE, "sparse: 3 sep-convs": sample(args.seed, budget=3)}
    # digits are 8x8 greyscale: pad-1 crops, no flips
    config = TrainConfig(epochs=args.epochs, warmup_epochs=min(1, args.epochs - 1), batch_size=64, lr=0.1,
                         crop_padding=1, flip=False,
                         seed=args.seed, val_attack_steps=5, eps=eps, step_size=step, attack_steps=5)
    rows = []
    for label, genotype in candidates.items():
        torch.manual_seed(args.seed)
        model = robnet.build_robnet(genotype, C=8, layers=3, in_channels=1, num_classes=len(data.classes))
        with tempfile.TemporaryDirectory() as out:
            train(model, train_part, config=config, out_dir=out, arch={"genotype": str(genotype), "C": 8,
                  "layers": 3, "in_channels": 1, "num_classes": 10}, val_data=val_part, device=device,
                  progress=not args.quiet)
        gen = torch.Generator(device=device).manual_seed(args.seed)
        report = score(model, DeviceLoader(test, batch_size=180, device=device), make_attack(attack_cfg, generator=gen),
                       attack_settings=attack_record(attack_cfg))
        print(f"== {label}: {genotype}")
        print(f"   density {genotype.density():.3f}, {genotype.num_convs()[0]} sep-convs per cell")
        print(report.table())
        print("   " + report.summary())
        rows.append((label, genotype.density(), report.adv_acc, report.deep_mean()))
    print("\nFinding #3 (paper): among candidates of one search space, the more robust networks have a smaller "
          "FSP distance in their deep cells.\nTwo 3-cell toys on digits say little either way; score many "
          "candidates (`fspkit score`) to test it. This run:")
    for label, density, adv, deep in rows:
        print(f"   {label:26s} density {density:.3f}  PGD-10 acc {100 * adv:5.1f}%  deep-cell FSP {deep:.4g}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``fspkit [demo] | score``; returns the exit status (no arguments: the demo)."""
    return main_entry("fspkit", build_parser(), {"score": cmd_score, "demo": cmd_demo}, argv)


if __name__ == "__main__":
    raise SystemExit(main())

"""``fspkit`` command line: ``fspkit score CHECKPOINT --data cifar10 ...``.

Errors print one line and exit 1 (usage errors exit 2); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("fspkit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fspkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="Finding #3 in miniature on the bundled digits: two architectures, "
                          "adversarially trained, scored cell by cell (no files needed)")
    demo.add_argument("--epochs", type=int, default=4)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quiet", action="store_true")
    demo.add_argument("--debug", action="store_true")
    sc = sub.add_parser("score", help="per-cell clean-vs-adversarial FSP distance of a checkpoint")
    sc.add_argument("checkpoint", help="a robnet checkpoint, or an official RobNets one with --arch")
    sc.add_argument("--arch", default=None, help="architecture of an official RobNets checkpoint (robnet_free, ...)")
    sc.add_argument("--data", default="cifar10", help="cifar10, cifar100, svhn, digits (default: %(default)s)")
    sc.add_argument("--data-dir", default=None, help="folder holding the dataset's standard folder")
    sc.add_argument("--split", default="test")
    sc.add_argument("--n", type=int, default=None,
                    help="number of samples (default: 1000, or the whole split when smaller)")
    sc.add_argument("--shuffle", action="store_true", help="a seeded random subset instead of the first n")
    sc.add_argument("--attack", default="pgd", choices=["pgd", "fgsm", "none"])
    sc.add_argument("--eps", default="8/255")
    sc.add_argument("--steps", type=int, default=20)
    sc.add_argument("--step-size", default="2/255")
    sc.add_argument("--cells", action="append", default=None,
                    help="glob of module names to score, e.g. 'cells.1[0-9]' (repeatable; default: every cell)")
    sc.add_argument("--batch-size", type=int, default=128)
    sc.add_argument("--workers", type=int, default=4, help="image-decoding workers for folder datasets")
    sc.add_argument("--device", default=None)
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--json", default=None, help="write the report as JSON")
    sc.add_argument("--csv", default=None, help="write the per-cell table as CSV")
    sc.add_argument("--quiet", action="store_true")
    sc.add_argument("--debug", action="store_true")
    return parser


def _attack(args: argparse.Namespace, device: Any) -> tuple[Any, dict[str, Any]]:
    import torch

    from robnet.attack_spec import parse_fraction
    from robnet.attacks import fgsm, pgd

    eps = parse_fraction(args.eps)
    if args.attack == "none":
        return (lambda model, x, y: x), {"name": "none"}
    if args.attack == "fgsm":
        return (lambda model, x, y: fgsm(model, x, y, eps=eps)), {"name": "fgsm", "eps": eps}
    step = parse_fraction(args.step_size)
    gen = torch.Generator(device=device)
    gen.manual_seed(args.seed)

    def attack(model: Any, x: Any, y: Any) -> Any:
        return pgd(model, x, y, eps=eps, step_size=step, steps=args.steps, random_start=True, generator=gen)

    return attack, {"name": "pgd", "eps": eps, "step_size": step, "steps": args.steps, "random_start": True,
                    "norm": "inf", "seed": args.seed}


def cmd_score(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from robnet.checkpoint import load_any
    from robnet.data import ArrayDataset, load_dataset
    from robnet.distributed import resolve_device
    from robnet.evaluate import eval_batches

    from .score import score

    if args.n is not None and args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    device = resolve_device(args.device)
    model, _meta = load_any(args.checkpoint, arch=args.arch)
    model.to(device)
    data: Any = load_dataset(args.data, args.data_dir, args.split)
    if args.n is None:
        args.n = min(1000, len(data))
    if args.n > len(data):
        raise ValueError(f"--n {args.n} is larger than the {args.data} {args.split} split ({len(data)} samples)")
    if args.shuffle:
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(args.seed))[: args.n]
    else:
        idx = torch.arange(args.n)
    data = data.subset(idx) if isinstance(data, ArrayDataset) else torch.utils.data.Subset(data, idx.tolist())
    _check_channels(model, data, args)
    # in-memory sets stay on the device; folder sets (tinyimagenet, imagenet) stream
    loader, n_batches = eval_batches(data, batch_size=args.batch_size, device=device, num_workers=args.workers)
    attack, settings = _attack(args, device)
    cells: Any = args.cells
    torch.manual_seed(args.seed)

    def bar(it: Any) -> Any:
        return tqdm(it, desc="fspkit score", unit="batch", total=n_batches,
                    disable=True if args.quiet else None)  # None: off when stderr is not a TTY

    report = score(model, loader, attack, cells=cells, attack_settings=settings, seed=args.seed, progress=bar)
    report.extra.update({"checkpoint": args.checkpoint, "dataset": args.data, "split": args.split,
                         "shuffle": args.shuffle})
    print(f"{args.checkpoint}: {args.data}/{args.split}, attack {settings['name']}"
          + (f" eps {args.eps} steps {args.steps} step {args.step_size}" if settings["name"] == "pgd" else ""))
    print(report.table())
    print(report.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    if args.csv:
        rows = report.csv_rows()
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    import torch

    import robnet
    from robnet.attacks import pgd
    from robnet.data import load_memory_dataset
    from robnet.genotype import ROBNET_LARGE, sample
    from robnet.loader import DeviceLoader, train_val_split
    from robnet.train import TrainConfig, train

    from .score import score

    eps, step = 0.1, 0.025
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
                  "layers": 3, "in_channels": 1, "num_classes": 10}, val_data=val_part, device="cpu",
                  progress=not args.quiet)
        gen = torch.Generator().manual_seed(args.seed)

        def attack(m: Any, x: Any, y: Any, gen: Any = gen) -> Any:
            return pgd(m, x, y, eps=eps, step_size=step, steps=10, generator=gen)

        report = score(model, DeviceLoader(test, batch_size=180), attack,
                       attack_settings={"name": "pgd", "eps": eps, "step_size": step, "steps": 10})
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


def _check_channels(model: Any, data: Any, args: argparse.Namespace) -> None:
    from torch import nn

    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    channels = data.images.shape[1] if hasattr(data, "images") else data[0][0].shape[0]
    if first is not None and first.in_channels != channels:
        raise ValueError(f"{args.checkpoint} expects {first.in_channels}-channel images but {args.data} has "
                         f"{channels}: wrong --data for this checkpoint?")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s",
                        stream=sys.stderr)
    from robnet.cli import run_command

    return run_command("fspkit", args, {"score": cmd_score, "demo": cmd_demo}, parser)


if __name__ == "__main__":
    raise SystemExit(main())

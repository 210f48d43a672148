"""``robnet`` command line: ``robnet [demo] | models | train | eval``.

With no arguments, runs a small real demo on scikit-learn's bundled digits (no files needed), as
``fspkit`` does. Errors print one line and exit 1 (usage errors exit 2); ``--debug`` shows the
traceback. Flags, logging and the runner are shared with ``fspkit`` (:mod:`robnet.cli.common`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from robnet.cli.common import add_common_flags, add_data_flags, check_outputs, check_positive, main_entry
from robnet.cli.search import SEARCH_DESCRIPTION, add_search_arguments, run_search

if TYPE_CHECKING:
    from robnet.data.datasets import ArrayDataset

log = logging.getLogger("robnet")

DEFAULT_ATTACKS = "clean,fgsm,pgd20,pgd100,deepfool,mifgsm"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    demo = sub.add_parser("demo", help="tiny RobNet, PGD adversarial training and Table-1 row on digits")
    demo.add_argument("--epochs", type=int, default=4)
    add_common_flags(demo)

    sub.add_parser("models", help="list the model zoo with parameter counts")

    se = sub.add_parser("search", help="one-shot robust architecture search: supernet | sample | finetune | "
                        "report | all (paper §3)", description=SEARCH_DESCRIPTION,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_search_arguments(se)

    tr = sub.add_parser("train", help="PGD adversarial training (official RobNets recipe by default)")
    tr.add_argument("--model", default="robnet_large", help="zoo name (see `robnet models`)")
    tr.add_argument("--genotype", default=None, help="genotype string instead of a zoo RobNet's cell(s)")
    tr.add_argument("--C", type=int, default=None, help="override the initial channels")
    tr.add_argument("--layers", type=int, default=None, help="override the number of cells")
    add_data_flags(tr, "cifar10")
    tr.add_argument("--out", required=True, help="run folder (run.json, last.pt, best.pt, log.csv); refused if it "
                    "holds a run, unless --resume or --overwrite")
    tr.add_argument("--resume", action="store_true", help="continue the run in OUT bit-for-bit (same settings)")
    tr.add_argument("--overwrite", action="store_true", help="delete the run in OUT and start over")
    tr.add_argument("--epochs", type=int, default=170)
    tr.add_argument("--warmup-epochs", type=int, default=20)
    tr.add_argument("--batch-size", type=int, default=128, help="global batch")
    tr.add_argument("--lr", type=float, default=None, help="peak lr (default 1.2 * batch / 1536)")
    tr.add_argument("--attack-steps", type=int, default=7)
    tr.add_argument("--eps", default="8/255")
    tr.add_argument("--step-size", default="2/255")
    tr.add_argument("--attack-bn", choices=["train", "eval"], default="train",
                    help="BatchNorm mode while the attack runs (official: train)")
    tr.add_argument("--cutout", type=int, default=None,
                    help="Cutout size (default 16 for robnet_large on images of 32x32 or more, else 0)")
    tr.add_argument("--crop-padding", type=int, default=None, help="random-crop padding (default 4; 1 for digits)")
    tr.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="random horizontal flips (default on; off for digits and svhn: a flipped digit is "
                    "another symbol)")
    tr.add_argument("--val-size", type=float, default=0.1,
                    help="held out of the training set for model selection: a fraction in (0, 1) or a count of "
                    "images; 0: no validation, best.pt is the last epoch (default: %(default)s)")
    tr.add_argument("--val-attack-steps", type=int, default=20)
    tr.add_argument("--subset", type=int, default=None, help="train on the first N images (smoke runs)")
    tr.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                    help="bf16 autocast for training and the validation attacks (default off: bf16 attacks can "
                    "mask gradients; recorded in every epoch record)")
    tr.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="NHWC memory format (default on)")
    tr.add_argument("--compile", action="store_true", help="torch.compile the model")
    tr.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    tr.add_argument("--sync-bn", action="store_true", help="DDP: BatchNorm over the global batch (CUDA only)")
    add_common_flags(tr)

    ev = sub.add_parser("eval", help="clean / FGSM / PGD / DeepFool / MI-FGSM accuracy of a checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--arch", default=None, help="architecture of an official RobNets checkpoint (e.g. robnet_free)")
    add_data_flags(ev, "cifar10", split=True, workers=True)
    ev.add_argument("--subset", type=int, default=None, help="first N samples of the split")
    ev.add_argument("--attacks", default=DEFAULT_ATTACKS,
                    help="comma-separated attack specs, e.g. 'clean,fgsm,pgd20:eps=4/255,step_size=1/255' "
                    "(default: %(default)s)")
    ev.add_argument("--transfer-from", default=None, help="source checkpoint for black-box transfer attacks")
    ev.add_argument("--source-arch", default=None, help="architecture of an official source checkpoint")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--json", default=None, help="write the results here (checked before anything runs)")
    ev.add_argument("--no-masking-checks", action="store_true")
    ev.add_argument("--allow-more-classes", action="store_true",
                    help="accept a model with more outputs than the data's classes")
    add_common_flags(ev, amp=True)
    return parser


def cmd_models() -> int:
    import robnet

    for name in robnet.list_models():
        model = robnet.build_model(name)
        print(f"{name:24s} {sum(p.numel() for p in model.parameters()):>12,d} params")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train a tiny sampled RobNet on digits (one log line per epoch) and print its Table-1 row."""
    import tempfile

    import torch

    import robnet
    from robnet.attacks.evaluation import evaluate
    from robnet.attacks.spec import parse_attack
    from robnet.data.datasets import load_memory_dataset
    from robnet.data.loader import train_val_split
    from robnet.models.genotype import sample
    from robnet.train.loop import TrainConfig, train
    from robnet.utils import resolve_device

    check_positive("--epochs", args.epochs)
    data = load_memory_dataset("digits", split="train")
    test = load_memory_dataset("digits", split="test")
    train_part, val_part = train_val_split(data, val_size=0.15, seed=args.seed)
    genotype = sample(args.seed, budget=7)
    torch.manual_seed(args.seed)  # the weight initialisation
    model = robnet.build_robnet(genotype, C=8, layers=3, in_channels=1, num_classes=len(data.classes))
    print(f"genotype   {genotype}")
    print(f"density    {genotype.density():.3f}   sep-convs/cell {genotype.num_convs()[0]}   "
          f"direct-edge convs {genotype.direct_edge_convs()[0]}")
    print(f"params     {sum(p.numel() for p in model.parameters()):,d}   (C=8, 3 cells, 1x8x8 digits)")
    # digits are 8x8 greyscale: pad-1 crops, no flips (a flipped digit is another symbol)
    config = TrainConfig(epochs=args.epochs, warmup_epochs=min(1, args.epochs - 1), batch_size=64, lr=0.1,
                         warmup_lr=0.02, crop_padding=1, flip=False, seed=args.seed, val_attack_steps=10, eps=0.1,
                         step_size=0.025, attack_steps=7)
    with tempfile.TemporaryDirectory() as out:  # the epochs are logged (one line each), not printed again
        train(model, train_part, config=config, out_dir=out, arch={"genotype": str(genotype), "C": 8,
              "layers": 3, "in_channels": 1, "num_classes": 10}, val_data=val_part,
              device=resolve_device(args.device), progress=not args.quiet)
    attacks = [(name, parse_attack(f"{name}:eps=0.1" + (",step_size=0.025" if name == "pgd20" else "")))
               for name in ("clean", "fgsm", "pgd20")]
    report = evaluate(model, test, attacks, batch_size=360, seed=args.seed, progress=not args.quiet)
    print(f"digits test set, eps 0.1 (n={report.n}):")
    print(report.table())
    return 0


def _dataset(args: argparse.Namespace, split: str) -> ArrayDataset:
    from robnet.data.datasets import load_memory_dataset

    return load_memory_dataset(args.data, args.data_dir, split, download=args.download)


def _val_size(value: float) -> int | float:
    """``--val-size``: 0 (none), a fraction in (0, 1), or a whole count of images."""
    import math

    if not math.isfinite(value) or value < 0 or (value >= 1 and not value.is_integer()):
        raise ValueError(f"--val-size {value:g}: give a fraction in (0, 1) or a whole number of images (0: no "
                         "validation set)")
    return int(value) if value >= 1 or value == 0 else value


def _train_config(args: argparse.Namespace, image_side: int) -> Any:
    from robnet.attacks.spec import parse_fraction
    from robnet.train.loop import TrainConfig

    cutout = args.cutout if args.cutout is not None else (
        16 if args.model == "robnet_large" and image_side >= 32 else 0)
    crop_padding = args.crop_padding if args.crop_padding is not None else (1 if args.data == "digits" else 4)
    flip = args.flip if args.flip is not None else args.data not in ("digits", "svhn")
    return TrainConfig(epochs=args.epochs, warmup_epochs=args.warmup_epochs, batch_size=args.batch_size,
                       lr=args.lr, eps=parse_fraction(args.eps), step_size=parse_fraction(args.step_size),
                       attack_steps=args.attack_steps, attack_bn=args.attack_bn, cutout=cutout,
                       crop_padding=crop_padding, flip=flip, seed=args.seed, val_attack_steps=args.val_attack_steps,
                       amp=args.amp, channels_last=args.channels_last, compile=args.compile, sync_bn=args.sync_bn)


def cmd_train(args: argparse.Namespace) -> int:
    """Adversarial training into a locked run folder; every argument is checked before it is created."""
    from contextlib import nullcontext

    import torch

    import robnet
    from robnet.cli.common import take_samples
    from robnet.data.loader import train_val_split
    from robnet.io.rundir import Mode, RunDir
    from robnet.train.loop import RUN_FILES, check_training_data, format_epoch, run_settings, train
    from robnet.utils import setup_distributed

    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run, or replace it")
    check_positive("--subset", args.subset)
    val_size = _val_size(args.val_size)
    _train_config(args, 32)  # the recipe's own checks, before any data is read
    rank, world, device = setup_distributed(args.device)
    data = take_samples(_dataset(args, "train"), args.subset, flag="--subset", what="the training split")
    config = _train_config(args, min(data.image_shape[1:]))
    train_part, val_part = train_val_split(data, val_size=val_size, seed=args.seed) if val_size else (data, None)
    check_training_data(config, train_part, val_part, world_size=world)
    overrides: dict[str, Any] = {k: v for k, v in (("C", args.C), ("layers", args.layers)) if v is not None}
    if args.genotype is not None:
        overrides["genotype"] = args.genotype
    if data.images.shape[1] != 3:
        overrides["in_channels"] = data.images.shape[1]
    arch: dict[str, Any] = {"name": args.model, "num_classes": len(data.classes), **overrides}
    torch.manual_seed(args.seed)  # the weight initialisation: same command, same weights
    model = robnet.build_model(args.model, num_classes=len(data.classes), **overrides)
    run: Any = nullcontext()
    if rank == 0:  # the folder is created only now, after every check
        settings = run_settings(config, arch, train_part, val_part,
                                data_options={"subset": args.subset, "val_size": val_size})
        mode: Mode = "resume" if args.resume else "overwrite" if args.overwrite else "new"
        run = RunDir.open(args.out, kind="train", config=settings, mode=mode, files=RUN_FILES, argv=args.argv)
    meta = {"dataset": args.data, "argv": list(args.argv), "world_size": world}
    with run:
        result = train(model, train_part, config=config, out_dir=run if rank == 0 else args.out, arch=arch,
                       val_data=val_part, device=device, resume=args.resume, progress=not args.quiet, meta=meta,
                       tensorboard=args.tensorboard)
    if rank == 0:
        best = next((h for h in result.history if h.epoch == result.best_epoch), None)
        n = len(result.history)
        print(f"done: {n} epoch{'s' if n != 1 else ''}; checkpoints in {args.out}")
        if best is not None:
            print(f"best: {format_epoch(best)}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint; every check that needs no compute runs before the first attack."""
    import torch

    from robnet.attacks.evaluation import evaluate
    from robnet.attacks.spec import parse_attack_list
    from robnet.cli.common import load_eval_data, take_samples
    from robnet.io.checkpoint import load_any
    from robnet.io.results import write_json
    from robnet.utils import setup_distributed

    check_positive("--subset", args.subset)
    check_positive("--batch-size", args.batch_size)
    check_positive("--workers", args.workers, minimum=0)
    attacks = parse_attack_list(args.attacks)
    check_outputs({"--json": args.json}, inputs=[args.checkpoint, args.transfer_from])
    rank, world, device = setup_distributed(args.device)
    torch.manual_seed(args.seed)
    model, _meta = load_any(args.checkpoint, arch=args.arch)
    model.to(device)
    source = None
    if args.transfer_from:
        source, _ = load_any(args.transfer_from, arch=args.source_arch)
        source.to(device)
    data = take_samples(load_eval_data(args), args.subset, flag="--subset", what=f"the {args.split} split")
    report = evaluate(model, data, attacks, batch_size=args.batch_size, device=device, seed=args.seed, source=source,
                      transfer_from=args.transfer_from, amp=args.amp, masking_checks=not args.no_masking_checks,
                      progress=not args.quiet, num_workers=args.workers, allow_more_classes=args.allow_more_classes)
    report.settings.update({"checkpoint": args.checkpoint, "arch": args.arch, "dataset": args.data,
                            "split": args.split, "subset": args.subset, "seed": args.seed})
    report.extra.update({"checkpoint": args.checkpoint, "dataset": args.data, "split": args.split,
                         "world_size": world, "argv": getattr(args, "argv", None)})
    if rank == 0:
        kind = f"transfer from {args.transfer_from}" if source is not None else "white-box"
        precision = "bf16 autocast (--amp)" if args.amp else "float32"
        print(f"{args.checkpoint} on {args.data}/{args.split} (n={report.n}, {kind}, device {device}, "
              f"attacks in {precision}):")
        print(report.table())
        for w in report.warnings:
            print(f"warning: {w}")
        if args.json:
            write_json(args.json, report.to_dict())
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    return run_search(args, prog="robnet")


def main(argv: Sequence[str] | None = None) -> int:
    """``robnet [demo] | models | train | eval | search``; returns the exit status (no arguments: the demo)."""
    commands = {"models": lambda a: cmd_models(), "demo": cmd_demo, "train": cmd_train, "eval": cmd_eval,
                "search": cmd_search}
    return main_entry("robnet", build_parser(), commands, argv)


if __name__ == "__main__":
    raise SystemExit(main())

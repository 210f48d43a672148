"""``robnet`` command line: ``robnet [demo] | models | train | eval``.

With no arguments, runs a small real demo on scikit-learn's bundled digits (no files needed).
Errors print one line and exit 1 (usage errors exit 2); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robnet.data import ArrayDataset

log = logging.getLogger("robnet")

DEFAULT_ATTACKS = "clean,fgsm,pgd20,pgd100,deepfool,mifgsm"


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _add_data(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--data", default=default, help="cifar10, cifar100, svhn, digits (default: %(default)s)")
    p.add_argument("--data-dir", default=None, help="folder holding the dataset's standard folder "
                   "(for cifar10 the one containing cifar-10-batches-py/)")
    p.add_argument("--download", action="store_true", help="download the official archive if missing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")

    demo = sub.add_parser("demo", help="tiny RobNet, PGD adversarial training and Table-1 row on digits")
    demo.add_argument("--epochs", type=int, default=4)
    _add_common(demo)

    sub.add_parser("models", help="list the model zoo with parameter counts")

    tr = sub.add_parser("train", help="PGD adversarial training (official RobNets recipe by default)")
    tr.add_argument("--model", default="robnet_large", help="zoo name (see `robnet models`)")
    tr.add_argument("--genotype", default=None, help="genotype string instead of a zoo RobNet's cell(s)")
    tr.add_argument("--C", type=int, default=None, help="override the initial channels")
    tr.add_argument("--layers", type=int, default=None, help="override the number of cells")
    _add_data(tr, "cifar10")
    tr.add_argument("--out", required=True, help="run folder (last.pt, best.pt, log.csv)")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    tr.add_argument("--epochs", type=int, default=170)
    tr.add_argument("--warmup-epochs", type=int, default=20)
    tr.add_argument("--batch-size", type=int, default=128, help="global batch")
    tr.add_argument("--lr", type=float, default=None, help="peak lr (default 1.2 * batch / 1536)")
    tr.add_argument("--attack-steps", type=int, default=7)
    tr.add_argument("--eps", default="8/255")
    tr.add_argument("--step-size", default="2/255")
    tr.add_argument("--attack-bn", choices=["train", "eval"], default="train",
                    help="BatchNorm mode while the attack runs (official: train)")
    tr.add_argument("--cutout", type=int, default=None, help="Cutout size (default 16 for robnet_large, else 0)")
    tr.add_argument("--crop-padding", type=int, default=None, help="random-crop padding (default 4; 1 for digits)")
    tr.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                    help="random horizontal flips (default on; off for digits and svhn: a flipped digit is "
                    "another symbol)")
    tr.add_argument("--val-size", type=float, default=0.1, help="held-out fraction or count for model selection")
    tr.add_argument("--val-attack-steps", type=int, default=20)
    tr.add_argument("--subset", type=int, default=None, help="train on the first N images (smoke runs)")
    tr.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast")
    tr.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="NHWC memory format (default on)")
    tr.add_argument("--compile", action="store_true", help="torch.compile the model")
    tr.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    tr.add_argument("--sync-bn", action="store_true", help="DDP: BatchNorm over the global batch (CUDA only)")
    _add_common(tr)

    ev = sub.add_parser("eval", help="clean / FGSM / PGD / DeepFool / MI-FGSM accuracy of a checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--arch", default=None, help="architecture of an official RobNets checkpoint (e.g. robnet_free)")
    _add_data(ev, "cifar10")
    ev.add_argument("--split", default="test")
    ev.add_argument("--subset", type=int, default=None, help="first N samples of the split")
    ev.add_argument("--attacks", default=DEFAULT_ATTACKS)
    ev.add_argument("--transfer-from", default=None, help="source checkpoint for black-box transfer attacks")
    ev.add_argument("--source-arch", default=None, help="architecture of an official source checkpoint")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--json", default=None, help="write the results here")
    ev.add_argument("--no-masking-checks", action="store_true")
    ev.add_argument("--workers", type=int, default=4, help="image-decoding workers for folder datasets")
    _add_common(ev)
    return parser


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr)


def cmd_models() -> int:
    import robnet

    for name in robnet.list_models():
        model = robnet.build_model(name)
        print(f"{name:24s} {sum(p.numel() for p in model.parameters()):>12,d} params")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import torch

    import robnet
    from robnet.attack_spec import parse_attack
    from robnet.data import load_memory_dataset
    from robnet.distributed import resolve_device
    from robnet.evaluate import evaluate
    from robnet.genotype import sample
    from robnet.loader import train_val_split
    from robnet.train import TrainConfig, train

    torch.manual_seed(args.seed)
    data = load_memory_dataset("digits", split="train")
    test = load_memory_dataset("digits", split="test")
    train_part, val_part = train_val_split(data, val_size=0.15, seed=args.seed)
    genotype = sample(args.seed, budget=7)
    model = robnet.build_robnet(genotype, C=8, layers=3, in_channels=1, num_classes=len(data.classes))
    print(f"genotype   {genotype}")
    print(f"density    {genotype.density():.3f}   sep-convs/cell {genotype.num_convs()[0]}   "
          f"direct-edge convs {genotype.direct_edge_convs()[0]}")
    print(f"params     {sum(p.numel() for p in model.parameters()):,d}   (C=8, 3 cells, 1x8x8 digits)")
    # digits are 8x8 greyscale: pad-1 crops, no flips (a flipped digit is another symbol)
    config = TrainConfig(epochs=args.epochs, warmup_epochs=min(1, args.epochs - 1), batch_size=64, lr=0.1,
                         warmup_lr=0.02,
                         crop_padding=1, flip=False, seed=args.seed, val_attack_steps=10, eps=0.1,
                         step_size=0.025, attack_steps=7)
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        result = train(model, train_part, config=config, out_dir=out, arch={"genotype": str(genotype), "C": 8,
                       "layers": 3, "in_channels": 1, "num_classes": 10}, val_data=val_part,
                       device=resolve_device(args.device), progress=not args.quiet)
    for h in result.history:
        print(f"epoch {h.epoch + 1}: loss {h.train_loss:.3f}  train-adv {h.train_adv_acc:.3f}  "
              f"val clean {h.val_clean_acc:.3f}  val pgd10 {h.val_adv_acc:.3f}")
    attacks = [(name, parse_attack(f"{name}:eps=0.1" + (",step_size=0.025" if name == "pgd20" else "")))
               for name in ("clean", "fgsm", "pgd20")]
    report = evaluate(model, test, attacks, batch_size=360, seed=args.seed, progress=not args.quiet)
    print(f"digits test set, eps 0.1 (n={report.n}):")
    print(report.table())
    return 0


def _dataset(args: argparse.Namespace, split: str) -> ArrayDataset:
    from robnet.data import load_memory_dataset

    return load_memory_dataset(args.data, args.data_dir, split, download=args.download)


def cmd_train(args: argparse.Namespace) -> int:
    import robnet
    from robnet.attack_spec import parse_fraction
    from robnet.distributed import setup_distributed
    from robnet.loader import train_val_split
    from robnet.train import TrainConfig, train

    rank, world, device = setup_distributed(args.device)
    data = _dataset(args, "train")
    if args.subset is not None:
        data = data.subset(range(min(args.subset, len(data))))
    val_size = int(args.val_size) if args.val_size >= 1 else args.val_size
    train_part, val_part = (train_val_split(data, val_size=val_size, seed=args.seed) if val_size
                            else (data, None))
    overrides: dict[str, Any] = {k: v for k, v in (("C", args.C), ("layers", args.layers)) if v is not None}
    if args.genotype is not None:
        overrides["genotype"] = args.genotype
    in_ch = data.images.shape[1]
    if in_ch != 3:
        overrides["in_channels"] = in_ch
    arch: dict[str, Any] = {"name": args.model, "num_classes": len(data.classes), **overrides}
    model = robnet.build_model(args.model, num_classes=len(data.classes), **overrides)
    cutout = args.cutout if args.cutout is not None else (16 if args.model == "robnet_large" else 0)
    crop_padding = args.crop_padding if args.crop_padding is not None else (1 if args.data == "digits" else 4)
    flip = args.flip if args.flip is not None else args.data not in ("digits", "svhn")
    config = TrainConfig(epochs=args.epochs, warmup_epochs=args.warmup_epochs, batch_size=args.batch_size,
                         lr=args.lr, eps=parse_fraction(args.eps), step_size=parse_fraction(args.step_size),
                         attack_steps=args.attack_steps, attack_bn=args.attack_bn, cutout=cutout,
                         crop_padding=crop_padding, flip=flip, seed=args.seed,
                         val_attack_steps=args.val_attack_steps, val_size=args.val_size, amp=args.amp,
                         channels_last=args.channels_last, compile=args.compile, sync_bn=args.sync_bn)
    meta = {"dataset": args.data, "argv": sys.argv[1:], "world_size": world}
    result = train(model, train_part, config=config, out_dir=args.out, arch=arch, val_data=val_part, device=device,
                   resume=args.resume, progress=not args.quiet, meta=meta, tensorboard=args.tensorboard)
    if rank == 0:
        last = result.history[-1]
        print(f"done: {len(result.history)} epochs, last train-adv acc {last.train_adv_acc:.4f}, "
              f"best val PGD acc {result.best_val_adv_acc} (epoch {result.best_epoch}); "
              f"checkpoints in {args.out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import torch

    from robnet.attack_spec import parse_attack
    from robnet.checkpoint import load_any
    from robnet.distributed import setup_distributed
    from robnet.evaluate import evaluate

    rank, world, device = setup_distributed(args.device)
    torch.manual_seed(args.seed)
    model, _meta = load_any(args.checkpoint, arch=args.arch)
    model.to(device)
    source = None
    if args.transfer_from:
        source, _ = load_any(args.transfer_from, arch=args.source_arch)
        source.to(device)
    names = [a.strip() for a in args.attacks.split(",") if a.strip()]
    attacks = [(name, parse_attack(name)) for name in names]
    from robnet.data import ArrayDataset, load_dataset

    data: Any = load_dataset(args.data, args.data_dir, args.split, download=args.download)
    if args.subset is not None:
        if args.subset > len(data):
            raise ValueError(f"--subset {args.subset} is larger than the {args.split} split ({len(data)} samples)")
        data = (data.subset(range(args.subset)) if isinstance(data, ArrayDataset)
                else torch.utils.data.Subset(data, range(args.subset)))
    report = evaluate(model, data, attacks, batch_size=args.batch_size, device=device, seed=args.seed, source=source,
                      transfer_from=args.transfer_from, masking_checks=not args.no_masking_checks,
                      progress=not args.quiet, num_workers=args.workers)
    report.extra.update({"checkpoint": args.checkpoint, "dataset": args.data, "split": args.split,
                         "world_size": world})
    if rank == 0:
        kind = f"transfer from {args.transfer_from}" if source is not None else "white-box"
        print(f"{args.checkpoint} on {args.data}/{args.split} (n={report.n}, {kind}, device {device}):")
        print(report.table())
        for w in report.warnings:
            print(f"warning: {w}")
        if args.json:
            Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    return 0


def run_command(prog: str, args: argparse.Namespace, commands: dict[str, Callable[[argparse.Namespace], int]],
                parser: argparse.ArgumentParser) -> int:
    """Run ``commands[args.command]``; a caller error becomes one line on stderr and exit 1
    (``--debug`` re-raises it with its traceback). Shared by the robnet and fspkit CLIs."""
    handler = commands.get(args.command)
    if handler is None:
        parser.error(f"unknown command {args.command}")
    try:
        return handler(args)
    except (ValueError, TypeError, FileNotFoundError, OSError) as exc:
        if getattr(args, "debug", False):
            raise
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.command is None:
        args = parser.parse_args(["demo"])
    _setup_logging(getattr(args, "quiet", False))
    commands = {"models": lambda a: cmd_models(), "demo": cmd_demo, "train": cmd_train, "eval": cmd_eval}
    return run_command("robnet", args, commands, parser)


if __name__ == "__main__":
    raise SystemExit(main())

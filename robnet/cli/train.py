"""``robnet train``: PGD adversarial training into a locked, resumable run folder.

The recipe's flags are generated from :class:`robnet.train.TrainConfig`'s fields (name, type, help
and default in one place); ``--cutout``, ``--crop-padding`` and ``--flip`` get data-dependent
defaults when not given.
"""

from __future__ import annotations

import argparse
import math
from contextlib import nullcontext
from typing import Any

import torch

from robnet.cli.common import (
    add_alias,
    add_common_flags,
    add_config_flags,
    add_data_flags,
    check_positive,
    take_samples,
)
from robnet.data.datasets import ArrayDataset, load_memory_dataset
from robnet.data.loader import train_val_split
from robnet.io.rundir import Mode, RunDir
from robnet.models.arch import build_from_arch, normalize_arch
from robnet.train.config import TrainConfig, check_training_data, format_epoch, run_settings
from robnet.train.files import RUN_FILES
from robnet.train.run import train
from robnet.utils import setup_distributed

__all__ = ["add_train_parser", "cmd_train"]

_AUTO = ("cutout", "crop_padding", "flip")  # recipe fields whose default depends on the data and model


def add_train_parser(sub: Any) -> None:
    tr = sub.add_parser("train", help="PGD adversarial training (official RobNets recipe by default)",
                        description="PGD adversarial training into a run folder (run.json, last.pt, best.pt, "
                                    "log.csv), resumable bit-for-bit on the CPU; torchrun for several GPUs.")
    tr.add_argument("--arch", default="robnet_large", help="zoo name (see `robnet models`; default: %(default)s)")
    add_alias(tr, "--model", "arch")
    tr.add_argument("--genotype", default=None, help="genotype string instead of a zoo RobNet's cell(s)")
    tr.add_argument("--C", type=int, default=None, help="override a RobNet's initial channels")
    tr.add_argument("--layers", type=int, default=None, help="override a RobNet's number of cells")
    add_data_flags(tr, "cifar10")
    tr.add_argument("--out", required=True, help="run folder; refused if it holds a run, unless --resume or "
                    "--overwrite")
    tr.add_argument("--resume", action="store_true", help="continue the run in OUT bit-for-bit (same settings)")
    tr.add_argument("--overwrite", action="store_true", help="delete the run in OUT and start over")
    tr.add_argument("--subset", type=int, default=None, help="train on the first N training images (smoke runs)")
    tr.add_argument("--val-size", type=float, default=0.1,
                    help="held out of the training set for model selection: a fraction in (0, 1) or a count of "
                    "images; 0: no validation, best.pt is the last epoch (default: %(default)s)")
    tr.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    recipe = tr.add_argument_group("the recipe (robnet.train.TrainConfig; default: the official RobNets recipe)")
    add_config_flags(recipe, TrainConfig, exclude=("seed",))
    add_common_flags(tr)


def _val_size(value: float) -> int | float:
    """``--val-size``: 0 (none), a fraction in (0, 1), or a whole count of images."""
    if not math.isfinite(value) or value < 0 or (value >= 1 and not value.is_integer()):
        raise ValueError(f"--val-size {value:g}: give a fraction in (0, 1) or a whole number of images (0: no "
                         "validation set)")
    return int(value) if value >= 1 or value == 0 else value


def train_config(args: argparse.Namespace, image_side: int) -> TrainConfig:
    """The recipe the flags ask for: given flags, data-dependent defaults, the official rest."""
    given = {name: getattr(args, name) for name in TrainConfig.__dataclass_fields__
             if getattr(args, name, None) is not None and name != "seed"}
    auto = {"cutout": 16 if args.arch == "robnet_large" and image_side >= 32 else 0,
            "crop_padding": 1 if args.data == "digits" else 4,
            "flip": args.data not in ("digits", "svhn")}  # a flipped digit is another symbol
    return TrainConfig(**{**{k: v for k, v in auto.items() if k in _AUTO}, **given, "seed": args.seed})


def _arch(args: argparse.Namespace, data: ArrayDataset) -> dict[str, Any]:
    overrides: dict[str, Any] = {k: v for k, v in (("C", args.C), ("layers", args.layers),
                                                   ("genotype", args.genotype)) if v is not None}
    if data.images.shape[1] != 3:
        overrides["in_channels"] = data.images.shape[1]
    # normalized first: an override the model does not take is one line naming what it accepts
    return normalize_arch({"name": args.arch, "num_classes": len(data.classes), **overrides})


def cmd_train(args: argparse.Namespace) -> int:
    """Adversarial training into a locked run folder; every argument is checked before it is created."""
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run, or replace it")
    check_positive("--subset", args.subset)
    val_size = _val_size(args.val_size)
    train_config(args, 32)  # the recipe's own checks, before any data is read
    rank, world, device = setup_distributed(args.device)
    data = take_samples(load_memory_dataset(args.data, args.data_dir, "train", download=args.download), args.subset,
                        flag="--subset", what="the training split")
    config = train_config(args, min(data.image_shape[1:]))
    train_part, val_part = train_val_split(data, val_size=val_size, seed=args.seed) if val_size else (data, None)
    check_training_data(config, train_part, val_part, world_size=world)
    arch = _arch(args, data)
    torch.manual_seed(args.seed)  # the weight initialisation: same command, same weights
    model = build_from_arch(arch)
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

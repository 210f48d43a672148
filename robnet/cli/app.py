"""``robnet``: the RobNets search space, model zoo, adversarial training, evaluation and search.

Commands: demo | models | train | eval | search STAGE. Errors print one line and exit 1 (usage
errors exit 2); --debug shows the traceback. Flags, logging and the runner are shared with
``fspkit`` (:mod:`robnet.cli.common`).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence

import torch

from robnet.attacks.evaluation import evaluate
from robnet.attacks.spec import parse_attack
from robnet.cli.common import add_common_flags, check_positive, main_entry, plain
from robnet.cli.evaluate import add_eval_parser, cmd_eval
from robnet.cli.search import add_search_parser, run_search
from robnet.cli.train import add_train_parser, cmd_train
from robnet.data.datasets import load_memory_dataset
from robnet.data.loader import train_val_split
from robnet.models.genotype import sample
from robnet.models.network import build_robnet
from robnet.models.zoo import build_model, list_models
from robnet.train.config import TrainConfig
from robnet.train.run import train
from robnet.utils import resolve_device

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robnet", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="tiny RobNet, PGD adversarial training and a Table-1 row on digits (a minute)")
    demo.add_argument("--epochs", type=int, default=4)
    add_common_flags(demo)
    sub.add_parser("models", help="list the model zoo with parameter counts")
    add_train_parser(sub)
    add_eval_parser(sub)
    add_search_parser(sub, "robnet")
    return parser


def cmd_models(args: argparse.Namespace) -> int:
    for name in list_models():
        model = build_model(name)
        print(f"{name:24s} {sum(p.numel() for p in model.parameters()):>12,d} params")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train a tiny sampled RobNet on digits (one log line per epoch) and print its Table-1 row."""
    check_positive("--epochs", args.epochs)
    data = load_memory_dataset("digits", split="train")
    test = load_memory_dataset("digits", split="test")
    train_part, val_part = train_val_split(data, val_size=0.15, seed=args.seed)
    genotype = sample(args.seed, budget=7)
    torch.manual_seed(args.seed)  # the weight initialisation
    model = build_robnet(genotype, C=8, layers=3, in_channels=1, num_classes=len(data.classes))
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


def cmd_search(args: argparse.Namespace) -> int:
    return run_search(args, prog="robnet")


def main(argv: Sequence[str] | None = None) -> int:
    """``robnet demo | models | train | eval | search STAGE``; returns the exit status (no arguments:
    a short help naming the demos, exit 0)."""
    commands = {"models": cmd_models, "demo": cmd_demo, "train": cmd_train, "eval": cmd_eval, "search": cmd_search}
    return main_entry("robnet", build_parser(), commands, argv)

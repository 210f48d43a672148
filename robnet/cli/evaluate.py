"""``robnet eval``: the paper's Table 1 row (and AutoAttack) for any model, with gradient-masking checks."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from robnet.attacks.evaluation import evaluate
from robnet.attacks.spec import parse_attack_list
from robnet.cli.common import (
    add_alias,
    add_common_flags,
    add_data_flags,
    add_model_flags,
    check_outputs,
    check_positive,
    load_eval_data,
    load_model,
    take_samples,
)
from robnet.io.results import write_json
from robnet.utils import setup_distributed

__all__ = ["DEFAULT_ATTACKS", "add_eval_parser", "cmd_eval"]

DEFAULT_ATTACKS = "clean,fgsm,pgd20,pgd100,deepfool,mifgsm"


def add_eval_parser(sub: Any) -> None:
    ev = sub.add_parser("eval", help="clean / FGSM / PGD / DeepFool / MI-FGSM / AutoAttack accuracy of a model",
                        description="Accuracy of a model under each attack, each sample of the split once, with "
                                    "95% Wilson intervals and gradient-masking checks.")
    add_model_flags(ev)
    add_data_flags(ev, "cifar10", split=True, workers=True)
    ev.add_argument("--samples", type=int, default=None, help="the first N images of the split (default: all)")
    add_alias(ev, "--subset", "samples", type=int)
    ev.add_argument("--attacks", default=DEFAULT_ATTACKS,
                    help="comma-separated attack specs, e.g. 'clean,pgd20,autoattack' or "
                    "'pgd20:eps=4/255,step_size=1/255' (default: %(default)s)")
    ev.add_argument("--transfer-from", default=None, help="source checkpoint for black-box transfer attacks")
    ev.add_argument("--source-arch", default=None, help="architecture of the source checkpoint (as --arch)")
    ev.add_argument("--batch-size", type=int, default=256)
    ev.add_argument("--json", default=None, help="write the results here (checked before anything runs)")
    ev.add_argument("--no-masking-checks", action="store_true", help="skip the gradient-masking checks")
    add_common_flags(ev, amp=True)


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a model; every check that needs no compute runs before the first attack."""
    check_positive("--samples", args.samples)
    check_positive("--batch-size", args.batch_size)
    check_positive("--workers", args.workers, minimum=0)
    attacks = parse_attack_list(args.attacks)
    check_outputs({"--json": args.json}, inputs=[args.checkpoint, args.transfer_from])
    rank, world, device = setup_distributed(args.device)
    torch.manual_seed(args.seed)
    model, loaded = load_model(args, args.checkpoint)
    model.to(device)
    source = None
    if args.transfer_from:
        source, _ = load_model(args, args.transfer_from, arch=args.source_arch)
        source.to(device)
    data = take_samples(load_eval_data(args), args.samples, flag="--samples", what=f"the {args.split} split")
    report = evaluate(model, data, attacks, batch_size=args.batch_size, device=device, seed=args.seed, source=source,
                      transfer_from=args.transfer_from, amp=args.amp, masking_checks=not args.no_masking_checks,
                      progress=not args.quiet, num_workers=args.workers, allow_more_classes=args.allow_more_classes)
    report.settings.update({"checkpoint": args.checkpoint, "model": loaded, "dataset": args.data,
                            "split": args.split, "samples": args.samples, "seed": args.seed})
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

"""``robnet search STAGE``: the command-line front of :func:`robnet.search.run`, shared with ``fspkit
search`` (which adds its FSP scorer, filter and their pinned settings).

Config flags left out keep the run folder's config (so ``robnet search finetune --out RUN``
continues a search started with ``--preset cpu-demo``); given flags that differ from the folder's
config are refused with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from robnet.attacks.spec import parse_fraction
from robnet.cli.common import add_alias, add_procs_flags, check_positive
from robnet.search.config import PRESETS, SCHEDULES, SearchConfig, preset_config
from robnet.search.records import read_search_json
from robnet.search.report import report_text
from robnet.search.rundir import SearchDir
from robnet.search.runner import STAGES, run
from robnet.search.stages import CandidateFilter, Scorer

__all__ = ["SEARCH_DESCRIPTION", "SEARCH_STAGES", "add_search_parser", "config_from_args", "folder_plugin",
           "run_search"]

SEARCH_STAGES = ("all", *STAGES, "report")
SEARCH_DESCRIPTION = """\
The one-shot robust architecture search (Guo et al. 2020, section 3), on one run folder:

  supernet   PGD adversarial training of the weight-sharing supernet, one random architecture per batch
  sample     --candidates N distinct genotypes (seeded; --budget / --preset small|medium|large)
  finetune   each candidate: inherit weights, recalibrate BN, PGD accuracy; PGD finetuning (--finetune-schedule
             full | halving); PGD accuracy again (records.rank*.jsonl)
  select     the best candidate, chosen on the validation split, re-measured on the test split
  report     progress, ETA, top-k table and the command to train the best genotype
  all        supernet, sample, finetune, select, report

Rerunning a command after an interruption continues where it stopped. --procs N runs N processes
on this machine (the supernet under DDP, candidates sharded by id); so does torchrun.

examples:
  {prog} search all --preset cpu-demo --out runs/search-demo          # minutes on 2 CPU cores
  torchrun --nproc_per_node 8 -m {prog}.cli search all --preset paper --data-dir ~/data --out runs/search
  {prog} search report runs/search
"""
_DATA = ("cifar10", "cifar100", "svhn", "digits")


def _budget(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma-separated list, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def _retest(text: str) -> int | None:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count of candidates or 'all', got {text!r}") from None


def _config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="the search's settings before the flags below (default for a new folder: paper)")
    g = p.add_argument_group("search space, data and recipe (default: the preset's; a run folder keeps its own)")
    g.add_argument("--data", default=None, choices=_DATA, help="training set (its test split is used only to "
                   "re-measure the chosen genotype)")
    g.add_argument("--data-dir", default=None, help="folder holding the dataset's standard folder")
    g.add_argument("--subset", type=int, default=None, help="first N training images (smoke runs)")
    g.add_argument("--val-size", type=float, default=None, help="validation fraction (or count) for candidates")
    g.add_argument("--C", type=int, default=None, help="supernet initial channels")
    g.add_argument("--layers", type=int, default=None, help="number of cells")
    g.add_argument("--cell-free", action="store_true", default=None, help="one genotype per cell")
    g.add_argument("--candidates", type=int, default=None, help="architectures to sample (paper: 1000)")
    g.add_argument("--budget", type=_budget, default=None,
                   help="exact sep-convs per cell (0..14), or several, e.g. 4,7,10 (candidates dealt round-robin)")
    g.add_argument("--supernet-epochs", type=int, default=None)
    g.add_argument("--supernet-lr", type=parse_fraction, default=None, help="the supernet's peak learning rate")
    g.add_argument("--finetune-epochs", type=int, default=None, help="K (paper: 3)")
    g.add_argument("--finetune-lr", type=parse_fraction, default=None, help="the candidates' finetuning lr")
    g.add_argument("--finetune-schedule", default=None, choices=SCHEDULES,
                   help="full: K epochs each (the paper); halving: successive halving up to K epochs")
    g.add_argument("--attack", default=None, help="candidate evaluation attack spec (paper: pgd7)")
    add_alias(g, "--eval-attack", "attack")
    g.add_argument("--samples", type=int, default=None, help="validation images per candidate evaluation")
    add_alias(g, "--eval-samples", "samples", type=int)
    g.add_argument("--retest", type=_retest, default=None,
                   help="candidates whose PGD accuracy is measured twice, for the noise estimate (a count or all)")
    g.add_argument("--test-samples", type=int, default=None, help="test images for the chosen genotype")
    g.add_argument("--seed", type=int, default=None, help="root of every random choice of the search")


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="run folder: config, supernet checkpoints, records")
    p.add_argument("--overwrite", action="store_true", help="delete the folder's search and start over")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    add_procs_flags(p)
    p.add_argument("--top", type=int, default=10, help="rows of the report's table")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def add_search_parser(sub: Any, prog: str, extra: Any = None) -> argparse.ArgumentParser:
    """``PROG search STAGE`` with one subcommand per stage; ``extra(parser)`` adds the caller's flags."""
    se = sub.add_parser("search", help="one-shot robust architecture search: " + " | ".join(SEARCH_STAGES),
                        description=SEARCH_DESCRIPTION.format(prog=prog),
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    stages = se.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for stage in SEARCH_STAGES:
        st = stages.add_parser(stage, help=f"the {stage} stage" if stage not in ("all", "report") else
                               "every stage in order" if stage == "all" else "progress, ETA and the top candidates")
        if stage == "report":
            st.add_argument("run_dir", nargs="?", default=None, help="run folder (same as --out)")
        _config_flags(st)
        _run_flags(st)
        if extra is not None:
            extra(st)
    return se


_FLAT = {"data": "data", "subset": "subset", "val_size": "val_size", "C": "C", "layers": "layers",
         "cell_free": "cell_free", "candidates": "candidates", "budget": "budget", "attack": "eval_attack",
         "samples": "eval_samples", "seed": "seed", "finetune_schedule": "finetune_schedule",
         "test_samples": "test_samples"}
_RECIPE = {"supernet_epochs": ("supernet", "epochs"), "supernet_lr": ("supernet", "lr"),
           "finetune_epochs": ("finetune", "epochs"), "finetune_lr": ("finetune", "lr")}


def config_from_args(args: argparse.Namespace) -> SearchConfig | None:
    """The SearchConfig the flags ask for, or None when they name none (keep the folder's)."""
    overrides = {field: getattr(args, flag) for flag, field in _FLAT.items() if getattr(args, flag, None) is not None}
    if "retest" in vars(args) and args.retest is not None:
        overrides["retest"] = args.retest
    recipe = {flag: getattr(args, flag) for flag in _RECIPE if getattr(args, flag, None) is not None}
    vs = overrides.get("val_size")
    if vs is not None and vs >= 1 and vs != int(vs):
        raise ValueError(f"--val-size {vs}: give a fraction below 1 or a whole count")
    if args.preset is None and not overrides and not recipe:
        return None
    base = preset_config(args.preset or "paper", **{k: v for k, v in overrides.items() if k == "seed"})
    fields = {**dataclasses.asdict(base), "supernet": base.supernet, "finetune": base.finetune, **overrides}
    for flag, (part, name) in _RECIPE.items():
        if flag in recipe:
            value = recipe[flag]
            extra = {"warmup_epochs": min(fields[part].warmup_epochs, max(value - 1, 0))} if name == "epochs" else {}
            fields[part] = dataclasses.replace(fields[part], **{name: value}, **extra)
    return SearchConfig(**fields)


def folder_plugin(args: argparse.Namespace) -> dict[str, Any] | None:
    """The plugin settings pinned in the run folder of ``args`` (None when it holds no search)."""
    folder = args.out or getattr(args, "run_dir", None)
    if folder is None or args.overwrite:
        return None
    try:
        return read_search_json(folder)["plugin"]
    except ValueError:
        return None


def run_search(args: argparse.Namespace, *, prog: str, plugin: dict[str, Any] | None = None,
               scorer: Scorer | None = None, candidate_filter: CandidateFilter | None = None) -> int:
    """Run ``args.stage`` on the run folder; prints the report at the end of ``all``/``finetune``/``report``."""
    run_dir = args.out or getattr(args, "run_dir", None)
    if run_dir is None:
        raise ValueError(f"{prog} search {args.stage} needs a run folder: --out RUN_DIR")
    if args.out and getattr(args, "run_dir", None) and args.out != args.run_dir:
        raise ValueError(f"two run folders given ({args.run_dir} and --out {args.out}); give one")
    for flag in ("top", "procs", "threads"):
        check_positive(f"--{flag}", getattr(args, flag))
    config = config_from_args(args)
    argv = [prog, *getattr(args, "argv", [])]
    if args.stage == "report":
        print(report_text(SearchDir.open(run_dir, config, plugin=plugin, data_dir=args.data_dir, create=False,
                                          argv=argv, record=False), top=args.top))
        return 0
    stages = STAGES if args.stage == "all" else (args.stage,)
    run(run_dir, config, stages=stages, scorer=scorer, candidate_filter=candidate_filter, plugin=plugin,
        data_dir=args.data_dir, device=args.device, procs=args.procs, threads=args.threads,
        overwrite=args.overwrite, progress=not args.quiet, argv=argv)
    if args.stage in ("all", "finetune", "select"):
        print(report_text(SearchDir.open(run_dir, None, data_dir=args.data_dir, create=False, record=False),
                          top=args.top))
    return 0

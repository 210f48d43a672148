"""``robnet search STAGE``: the command-line front of :mod:`robnet.search.stages`, shared with
``fspkit search`` (which pins its settings in the run folder through the ``plugin`` argument of
:func:`run_search` and adds its FSP scorer and filter through ``hooks``).

Config flags left out keep the run folder's config (so ``robnet search finetune --out RUN``
continues a search started with ``--preset cpu-demo``); given flags that differ from the folder's
config are refused with one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["SEARCH_DESCRIPTION", "STAGES", "add_search_arguments", "config_from_args", "run_search"]

log = logging.getLogger("robnet")

STAGES = ("supernet", "sample", "finetune", "report", "all")

SEARCH_DESCRIPTION = """\
The one-shot robust architecture search (Guo et al. 2020, section 3), on one run folder:

  supernet   PGD adversarial training of the weight-sharing supernet, one random architecture per batch
  sample     --candidates N distinct genotypes (seeded; --budget / --preset small|medium|large)
  finetune   each candidate: inherit weights, recalibrate BN, PGD accuracy; K epochs of PGD finetuning;
             PGD accuracy again (records.rank*.jsonl)
  report     progress, ETA, top-k table and the command to train the best genotype
  all        the stages in order

Rerunning a command after an interruption continues where it stopped. Under torchrun the
supernet trains with DDP and candidates are sharded over the ranks by id.

examples:
  robnet search all --preset cpu-demo --out runs/search-demo          # a few minutes on 2 CPU cores
  torchrun --nproc_per_node 8 -m robnet.cli search all --preset paper --data-dir ~/data --out runs/search
  robnet search report runs/search
"""


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``robnet search`` (and ``fspkit search``)."""
    p.add_argument("stage", help=f"one of {', '.join(STAGES)}")
    p.add_argument("run_dir", nargs="?", default=None, help="run folder (same as --out; for `report RUN_DIR`)")
    p.add_argument("--out", default=None, help="run folder: config, supernet checkpoints, records")
    p.add_argument("--preset", default=None,
                   help="paper | cpu-demo | small | medium | large (default for a new folder: paper)")
    g = p.add_argument_group("search space and data (default: the preset's; a run folder keeps its own)")
    g.add_argument("--data", default=None, help="cifar10, cifar100, svhn, digits")
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
    g.add_argument("--finetune-epochs", type=int, default=None, help="K (paper: 3)")
    g.add_argument("--eval-attack", default=None, help="candidate evaluation attack spec (paper: pgd7)")
    g.add_argument("--eval-samples", type=int, default=None, help="validation images per candidate")
    g.add_argument("--seed", type=int, default=None)
    p.add_argument("--top", type=int, default=10, help="rows of the report's table")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _budget(text: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or a comma-separated list, got {text!r}") from None
    return values[0] if len(values) == 1 else values


_FLAT = {"data": "data", "subset": "subset", "val_size": "val_size", "C": "C", "layers": "layers",
         "cell_free": "cell_free", "candidates": "candidates", "budget": "budget", "eval_attack": "eval_attack",
         "eval_samples": "eval_samples", "seed": "seed"}


def config_from_args(args: argparse.Namespace) -> Any:
    """The SearchConfig the flags ask for, or None when they name none (keep the folder's)."""
    from robnet.search.config import SearchConfig, preset_config

    overrides: dict[str, Any] = {}
    for flag, field in _FLAT.items():
        value = getattr(args, flag)
        if value is not None:
            overrides[field] = value
    vs = overrides.get("val_size")
    if vs is not None and vs >= 1 and vs != int(vs):
        raise ValueError(f"--val-size {overrides['val_size']}: give a fraction below 1 or a whole count")
    if args.preset is None and not overrides and args.supernet_epochs is None and args.finetune_epochs is None:
        return None
    base = preset_config(args.preset or "paper")
    seed = overrides.get("seed", base.seed)
    supernet, finetune = base.supernet, base.finetune
    if args.supernet_epochs is not None:
        supernet = dataclasses.replace(supernet, epochs=args.supernet_epochs,
                                       warmup_epochs=min(supernet.warmup_epochs, max(args.supernet_epochs - 1, 0)))
    if args.finetune_epochs is not None:
        finetune = dataclasses.replace(finetune, epochs=args.finetune_epochs, warmup_epochs=0)
    fields = {**dataclasses.asdict(base), "supernet": dataclasses.replace(supernet, seed=seed),
              "finetune": finetune, **overrides}
    return SearchConfig(**fields)


Hooks = Callable[[dict[str, Any]], tuple[Any, Any]]


def run_search(args: argparse.Namespace, *, plugin: dict[str, Any] | None = None, hooks: Hooks | None = None,
               prog: str = "robnet") -> int:
    """Run ``args.stage`` on the run folder; prints the report at the end of ``all``/``report``.

    Args:
        args: parsed :func:`add_search_arguments` flags.
        plugin: the caller's own settings pinned in the run folder (``None``: the folder's own, or
            none for a new folder).
        hooks: ``hooks(folder_plugin) -> (scorer, candidate_filter)``, called with the settings
            the folder holds (how fspkit adds its FSP scorer and filter).
        prog: the command's name in messages.
    """
    from robnet.io.rundir import run_lock
    from robnet.search.rundir import SearchDir, check_split
    from robnet.search.stages import finetune_stage, report_text, sample_stage, supernet_stage
    from robnet.utils import setup_distributed

    if args.stage not in STAGES:
        raise ValueError(f"unknown stage {args.stage!r}; expected one of {', '.join(STAGES)}")
    run_dir = args.out or args.run_dir
    if run_dir is None:
        raise ValueError(f"{prog} search {args.stage} needs a run folder: --out RUN_DIR")
    if args.out and args.run_dir and args.out != args.run_dir:
        raise ValueError(f"two run folders given ({args.run_dir} and --out {args.out}); give one")
    if args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    config = config_from_args(args)
    # the invocation as given to main(argv) (set by cli_common.main_entry), else the process's own
    given = getattr(args, "argv", None)
    argv = [prog, *given] if given is not None else [prog, "search", *sys.argv[2:]]
    if args.stage == "report":
        sd = SearchDir.open(run_dir, config, plugin=plugin, data_dir=args.data_dir, create=False, argv=argv,
                            record=False)
        print(report_text(sd, top=args.top))
        return 0
    rank, world, device = setup_distributed(args.device)
    create = args.stage in ("supernet", "all", "sample")
    needs_data = args.stage in ("supernet", "all", "finetune")
    if needs_data and config is not None:
        check_split(config, args.data_dir, world_size=world)  # before the folder pins a config its data refuses
    folder = Path(run_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"run folder {folder} is a file: give a folder for --out")
    if not create and not (folder / "search.json").exists():
        raise ValueError(f"{folder} holds no search (search.json missing). Hint: start one with "
                         f"`{prog} search all --out {folder}` (or the `supernet` stage)")
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
    progress = not args.quiet
    with run_lock(folder, enabled=rank == 0):
        sd = SearchDir.open(folder, config, plugin=plugin, data_dir=args.data_dir, create=create, argv=argv)
        if needs_data and config is None:
            check_split(sd.config, sd.data_dir, world_size=world)
        if hooks is None and sd.plugin and args.stage in ("finetune", "all"):
            # without the plugin's scorer and filter, the records would silently lack its fields
            owner = next(iter(sd.plugin))
            raise ValueError(f"{folder} holds a search made by `{owner} search` (its settings: "
                             f"{', '.join(sorted(sd.plugin))}); `{prog} search {args.stage}` cannot add them to the "
                             f"candidates. Hint: continue it with `{owner} search {args.stage} --out {folder}`")
        scorer, candidate_filter = hooks(sd.plugin) if hooks is not None else (None, None)
        if args.stage in ("supernet", "all"):
            supernet_stage(sd, device=device, progress=progress)
        if args.stage in ("sample", "all"):
            genotypes = sample_stage(sd)
            if rank == 0:
                print(f"{len(genotypes)} candidates sampled into {sd.path / 'candidates.json'}")
        if args.stage in ("finetune", "all"):
            finetune_stage(sd, device=device, scorer=scorer, candidate_filter=candidate_filter, progress=progress)
    if rank == 0 and args.stage in ("finetune", "all"):
        print(report_text(sd, top=args.top))
    return 0

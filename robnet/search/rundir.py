"""A search's run folder: its config, candidates, supernet checkpoints and record shards.

Layout::

    RUN_DIR/search.json             config (verbatim), its hash, plugin settings, every invocation
    RUN_DIR/.lock                   held by the running search (robnet.io.rundir)
    RUN_DIR/supernet/               the supernet's training run (last.pt, log.csv, run.json)
    RUN_DIR/candidates.json         the sampled genotypes, by id
    RUN_DIR/scores.rank{R}.jsonl    first pass per candidate (inherited weights), process R's shard
    RUN_DIR/rungs.rank{R}.jsonl     successive halving: the evaluation after each epoch
    RUN_DIR/finetune/{id}.pt        successive halving: a racing candidate's state between epochs
    RUN_DIR/records.rank{R}.jsonl   final record per candidate (robnet.search.records), process R's shard
    RUN_DIR/selection.json          the best candidate, chosen on validation, re-measured on the test split

A folder made by another config is refused with one line naming the fields that differ. The
records of the folder are read through :mod:`robnet.search.records` (checked, one config only).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from robnet.data.datasets import ArrayDataset, load_memory_dataset
from robnet.data.loader import DeviceLoader, train_val_split
from robnet.io import checkpoint as ckpt
from robnet.io import results
from robnet.models.supernet import SuperNet, build_supernet
from robnet.search import records
from robnet.search.config import SearchConfig
from robnet.train.config import check_training_data
from robnet.utils import dist_info

__all__ = ["SEARCH_FILES", "SearchDir", "check_split", "load_split"]

SELECTION_FILE = "selection.json"
# What a search writes into its folder (what --overwrite removes): files, shard patterns, folders.
SEARCH_FILES = (records.CONFIG_FILE, records.CANDIDATES_FILE, SELECTION_FILE, "scores.rank*.jsonl",
                "rungs.rank*.jsonl", "records.rank*.jsonl", "finetune", "supernet")


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]} ({a!r} in the folder, {b!r} now)"]


def load_split(config: SearchConfig, data_dir: str | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """The search's (train, validation) split of the training set: the test set is never used for
    any choice (only the chosen genotype is re-measured on it, :func:`robnet.search.select_stage`)."""
    data = load_memory_dataset(config.data, data_dir, "train")
    if config.subset is not None:
        if config.subset > len(data):
            raise ValueError(f"subset {config.subset} is larger than the {config.data} training set "
                             f"({len(data)} images)")
        data = data.subset(range(config.subset))
    val_size: float | int = int(config.val_size) if config.val_size >= 1 else config.val_size
    return train_val_split(data, val_size=val_size, seed=config.seed)


def check_split(config: SearchConfig, data_dir: str | None = None, *, world_size: int = 1) -> None:
    """Refuse, before anything is trained or written, a config that its data cannot satisfy.

    Checks the supernet recipe (sharded over ``world_size`` processes) and the finetuning recipe
    (one candidate per process) against the training part, and ``eval_samples`` against the
    validation split: otherwise the last two surface only when the first candidate is
    evaluated, after the supernet has trained.

    Raises:
        ValueError: too few training images for a batch, Cutout or crop padding larger than the
            images, more evaluation samples than the validation split, a missing dataset.
    """
    train, val = load_split(config, data_dir)
    for what, recipe, world in (("supernet", config.supernet, world_size), ("finetune", config.finetune, 1)):
        try:
            check_training_data(recipe, train, world_size=world)
        except ValueError as e:
            hint = f" Hint: --procs {max(1, world // 2)}" if "divisible" in str(e) else ""
            raise ValueError(f"the search's {what} recipe cannot train on its {len(train)} training images: "
                             f"{e}{hint}") from e
    if config.eval_samples is not None and config.eval_samples > len(val):
        raise ValueError(f"eval_samples {config.eval_samples} is larger than the validation split ({len(val)} "
                         "images). Hint: lower --samples, or raise --val-size / --subset")


def remove_search(folder: Path) -> None:
    """Delete a search's files from ``folder`` (``--overwrite``; the caller holds the folder's lock)."""
    for pattern in SEARCH_FILES:
        for p in folder.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()


class SearchDir:
    """An opened run folder; see the module docstring."""

    def __init__(self, path: Path, config: SearchConfig, plugin: dict[str, Any], data_dir: str | None) -> None:
        self.path = path
        self.config = config
        self.plugin = plugin
        self.data_dir = data_dir

    @cached_property
    def config_hash(self) -> str:
        return results.config_hash({"config": self.config.to_dict(), "plugin": self.plugin})

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, config: SearchConfig | None, *, plugin: dict[str, Any] | None = None,
             data_dir: str | None = None, create: bool, argv: list[str] | None = None,
             record: bool = True, threads: int | None = None) -> SearchDir:
        """Open (or with ``create``, make) the run folder ``path``.

        ``config=None`` takes the folder's own config. A given config (or plugin settings) that
        differs from the folder's raises ``ValueError`` naming the fields. The invocation (``argv``,
        the process and thread counts) is appended to ``search.json`` unless ``record`` is False (a
        read-only look, e.g. the report, which must not pose as the search's last run).
        """
        run = Path(path)
        rank, _ = dist_info()
        _barrier()  # every rank sees the folder as it was before rank 0 writes below
        exists = (run / records.CONFIG_FILE).exists()
        _barrier()
        if exists:
            stored = records.read_search_json(run)
            sd = cls(run, SearchConfig.from_dict(stored["config"]), stored["plugin"], data_dir)
            sd.check_same(config, plugin)
            if rank == 0 and record:
                stored["invocations"].append(_invocation(argv, threads))
                results.write_json(run / records.CONFIG_FILE, stored)
            _barrier()
            return sd
        if not create:
            raise ValueError(f"{run} holds no search ({records.CONFIG_FILE} missing). Hint: start one with "
                             f"`robnet search all --out {run}` (or the `supernet` stage)")
        sd = cls(run, config if config is not None else SearchConfig(), plugin or {}, data_dir)
        if rank == 0:
            run.mkdir(parents=True, exist_ok=True)
            results.write_json(run / records.CONFIG_FILE, {
                "format": "robnet-search", "version": 1, "config": sd.config.to_dict(), "plugin": sd.plugin,
                "config_hash": sd.config_hash, "provenance": results.provenance(seed=sd.config.seed),
                "invocations": [_invocation(argv, threads)]})
        _barrier()
        return sd

    def check_same(self, config: SearchConfig | None, plugin: dict[str, Any] | None) -> None:
        if config is not None and config != self.config:
            diffs = _diff(self.config.to_dict(), config.to_dict())
            more = f"; and {len(diffs) - 4} more" if len(diffs) > 4 else ""
            raise ValueError(f"{self.path} holds a search made by another config: {'; '.join(diffs[:4])}{more}. "
                             "Hint: continue it with the folder's own settings (leave the config flags out), start "
                             "over with --overwrite, or use another --out")
        if plugin is not None and plugin != self.plugin:
            diffs = _diff(self.plugin, plugin)
            raise ValueError(f"{self.path} holds a search made with other settings: {'; '.join(diffs[:4])}. "
                             "Hint: start over with --overwrite, or use another --out")

    def barrier(self) -> None:
        _barrier()

    def last_world_size(self) -> int:
        """The process count of the last recorded invocation (1 when unknown)."""
        inv = records.read_search_json(self.path)["invocations"]
        world = inv[-1].get("world_size", 1) if inv and isinstance(inv[-1], dict) else 1
        return world if isinstance(world, int) and world >= 1 else 1

    # ------------------------------------------------------------------ data
    @cached_property
    def _split(self) -> tuple[ArrayDataset, ArrayDataset]:
        return load_split(self.config, self.data_dir)

    def split(self) -> tuple[ArrayDataset, ArrayDataset]:
        """(training part, validation split) of the search's training set (read once per folder object)."""
        return self._split

    def eval_set(self) -> ArrayDataset:
        """The validation images every candidate is evaluated on (``eval_samples`` of them, or all)."""
        _, val = self.split()
        n = self.config.eval_samples
        return val if n is None else val.subset(range(n))

    def eval_batches(self, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`eval_set` in batches on ``device``, in order (the same for every candidate)."""
        return list(DeviceLoader(self.eval_set(), batch_size=self.config.eval_batch_size, device=device))

    def test_set(self) -> ArrayDataset:
        """The dataset's test split (``test_samples`` of it): only the chosen genotype is measured on it."""
        test = load_memory_dataset(self.config.data, self.data_dir, "test")
        n = self.config.test_samples
        return test if n is None else test.subset(range(min(n, len(test))))

    # ------------------------------------------------------------------ candidates and records
    def write_candidates(self, genotypes: list[Any]) -> None:
        results.write_json(self.path / records.CANDIDATES_FILE,
                           {"config_hash": self.config_hash,
                            "candidates": [{"id": i, "genotype": str(g)} for i, g in enumerate(genotypes)]})

    def has_candidates(self) -> bool:
        return (self.path / records.CANDIDATES_FILE).exists()

    def read_candidates(self) -> list[dict[str, Any]]:
        if not self.has_candidates():
            raise ValueError(f"{self.path} has no sampled candidates yet. Hint: run `robnet search sample "
                             f"--out {self.path}` first")
        return records.read_candidates(self.path)

    def read_shards(self, kind: str, *, repair_rank: int | None = None) -> dict[int, dict[str, Any]]:
        """Every process's ``kind`` records by id (:func:`robnet.search.records.read_shards`)."""
        return records.read_shards(self.path, kind, config_hash=self.config_hash, repair_rank=repair_rank)

    def shard(self, kind: str, rank: int) -> Path:
        return self.path / f"{kind}.rank{rank}.jsonl"

    def state_path(self, candidate_id: int) -> Path:
        """Where successive halving keeps a racing candidate's finetuning state between epochs."""
        return self.path / "finetune" / f"{candidate_id}.pt"

    # ------------------------------------------------------------------ supernet
    @property
    def supernet_dir(self) -> Path:
        return self.path / "supernet"

    def supernet_arch(self) -> dict[str, Any]:
        """The supernet as zoo data (``robnet.models.zoo``'s ``supernet`` entry), recorded in its checkpoints."""
        c = self.config
        train, _ = self.split()
        return {"name": "supernet", "num_classes": train.num_classes, "C": c.C, "layers": c.layers,
                "in_channels": train.image_shape[0], "cell_free": c.cell_free, "imagenet_stem": c.imagenet_stem}

    def build_supernet(self) -> SuperNet:
        arch = self.supernet_arch()
        return build_supernet(C=arch["C"], layers=arch["layers"], num_classes=arch["num_classes"],
                              in_channels=arch["in_channels"], cell_free=arch["cell_free"],
                              imagenet_stem=arch["imagenet_stem"])

    def load_supernet(self, device: torch.device) -> SuperNet:
        """The trained supernet (all epochs done), on ``device``, in eval mode."""
        last = self.supernet_dir / "last.pt"
        if not last.exists():
            raise ValueError(f"{self.path}: the supernet is not trained yet. Hint: run `robnet search supernet "
                             f"--out {self.path}`")
        payload = ckpt.load_raw(last)
        done = int(payload["extra"]["epochs_done"])
        epochs = self.config.supernet.epochs
        if done < epochs:
            raise ValueError(f"{self.path}: supernet training stopped after epoch {done} of {epochs}. Hint: "
                             f"rerun `robnet search supernet --out {self.path}` to finish it")
        net = self.build_supernet()
        net.load_state_dict(payload["state_dict"])
        return net.to(device).eval()


def _barrier() -> None:
    if dist_info()[1] > 1:
        torch.distributed.barrier()


def _invocation(argv: list[str] | None, threads: int | None) -> dict[str, Any]:
    return {"argv": list(argv if argv is not None else sys.argv[1:]), "world_size": dist_info()[1],
            "threads": threads if threads is not None else torch.get_num_threads(),
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

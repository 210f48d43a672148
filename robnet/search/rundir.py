"""A search's run folder: its config, candidates, supernet checkpoints and record shards.

Layout::

    RUN_DIR/search.json             config (verbatim), its hash, plugin settings, every invocation
    RUN_DIR/.lock                   held by the running search (robnet.io.rundir)
    RUN_DIR/supernet/               the supernet's training run (last.pt, log.csv, run.json)
    RUN_DIR/candidates.json         the sampled genotypes, by id
    RUN_DIR/scores.rank{R}.jsonl    first pass per candidate (inherited weights), rank R's shard
    RUN_DIR/records.rank{R}.jsonl   final record per candidate, rank R's shard

A folder made by another config is refused with one line naming the fields that differ.
"""

from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from robnet.data.datasets import ArrayDataset, load_memory_dataset
from robnet.data.loader import train_val_split
from robnet.io import results
from robnet.search.config import SearchConfig
from robnet.utils import dist_info

__all__ = ["SearchDir", "check_split", "load_split", "records_path", "scores_path"]

CONFIG_FILE = "search.json"
CANDIDATES_FILE = "candidates.json"


def scores_path(run: Path, rank: int) -> Path:
    return run / f"scores.rank{rank}.jsonl"


def records_path(run: Path, rank: int) -> Path:
    return run / f"records.rank{rank}.jsonl"


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]} ({a!r} in the folder, {b!r} now)"]


_SPLITS: dict[tuple[Any, ...], tuple[ArrayDataset, ArrayDataset]] = {}


def load_split(config: SearchConfig, data_dir: str | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """The search's (train, validation) split of the training set: the test set is never used.

    Cached per process (the search reads it for every candidate).
    """
    key = (config.data, data_dir, config.subset, config.val_size, config.seed)
    if key not in _SPLITS:
        data = load_memory_dataset(config.data, data_dir, "train")
        if config.subset is not None:
            if config.subset > len(data):
                raise ValueError(f"subset {config.subset} is larger than the {config.data} training set "
                                 f"({len(data)} images)")
            data = data.subset(range(config.subset))
        val_size: float | int = int(config.val_size) if config.val_size >= 1 else config.val_size
        _SPLITS.clear()
        _SPLITS[key] = train_val_split(data, val_size=val_size, seed=config.seed)
    return _SPLITS[key]


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
    from robnet.train.config import check_training_data

    train, val = load_split(config, data_dir)
    for what, recipe, world in (("supernet", config.supernet, world_size), ("finetune", config.finetune, 1)):
        try:
            check_training_data(recipe, train, world_size=world)
        except ValueError as e:
            raise ValueError(f"the search's {what} recipe cannot train on its {len(train)} training images: "
                             f"{e}") from e
    if config.eval_samples is not None and config.eval_samples > len(val):
        raise ValueError(f"eval_samples {config.eval_samples} is larger than the validation split ({len(val)} "
                         "images). Hint: lower --eval-samples, or raise --val-size / --subset")


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
             record: bool = True) -> SearchDir:
        """Open (or with ``create``, make) the run folder ``path``.

        ``config=None`` takes the folder's own config. A given config (or plugin settings) that
        differs from the folder's raises ``ValueError`` naming the fields. The invocation (``argv``)
        is appended to ``search.json`` unless ``record`` is False (a read-only look, e.g. the report,
        which must not pose as the search's last run).
        """
        run = Path(path)
        cfg_file = run / CONFIG_FILE
        rank, _ = dist_info()
        _barrier()  # every rank sees the folder as it was before rank 0 writes below
        exists = cfg_file.exists()
        _barrier()
        if exists:
            stored = _read_json(cfg_file)
            folder_cfg = SearchConfig.from_dict(stored["config"])
            folder_plugin = stored.get("plugin") or {}
            if config is not None and config != folder_cfg:
                diffs = _diff(folder_cfg.to_dict(), config.to_dict())
                more = f"; and {len(diffs) - 4} more" if len(diffs) > 4 else ""
                raise ValueError(f"{run} holds a search made by another config: {'; '.join(diffs[:4])}{more}. Hint: "
                                 "rerun without config flags to continue it, or use another --out")
            if plugin is not None and plugin != folder_plugin:
                diffs = _diff(folder_plugin, plugin)
                raise ValueError(f"{run} holds a search made with other settings: {'; '.join(diffs[:4])}. "
                                 "Hint: use another --out")
            sd = cls(run, folder_cfg, folder_plugin, data_dir)
            if rank == 0 and record:
                stored.setdefault("invocations", []).append(_invocation(argv))
                results.write_json(cfg_file, stored)
            _barrier()
            return sd
        if not create:
            raise ValueError(f"{run} holds no search ({CONFIG_FILE} missing). Hint: start one with "
                             f"`robnet search all --out {run}` (or the `supernet` stage)")
        if config is None:
            config = SearchConfig()
        sd = cls(run, config, plugin or {}, data_dir)
        if rank == 0:
            run.mkdir(parents=True, exist_ok=True)
            results.write_json(cfg_file, {"format": "robnet-search", "version": 1, "config": config.to_dict(),
                                          "plugin": plugin or {}, "config_hash": sd.config_hash,
                                          "provenance": results.provenance(seed=config.seed),
                                          "invocations": [_invocation(argv)]})
        sd.barrier()
        return sd

    def barrier(self) -> None:
        _barrier()

    # ------------------------------------------------------------------ data
    def split(self) -> tuple[ArrayDataset, ArrayDataset]:
        return load_split(self.config, self.data_dir)

    # ------------------------------------------------------------------ candidates
    def write_candidates(self, genotypes: list[Any]) -> None:
        results.write_json(self.path / CANDIDATES_FILE,
                           {"config_hash": self.config_hash,
                            "candidates": [{"id": i, "genotype": str(g)} for i, g in enumerate(genotypes)]})

    def has_candidates(self) -> bool:
        return (self.path / CANDIDATES_FILE).exists()

    def read_candidates(self) -> list[dict[str, Any]]:
        f = self.path / CANDIDATES_FILE
        if not f.exists():
            raise ValueError(f"{self.path} has no sampled candidates yet. Hint: run `robnet search sample "
                             f"--out {self.path}` first")
        return list(_read_json(f)["candidates"])

    # ------------------------------------------------------------------ records
    def read_shards(self, kind: str, *, repair_rank: int | None = None) -> dict[int, dict[str, Any]]:
        """Every rank's ``kind`` records by id (first occurrence wins). Only this process's own
        shard (``repair_rank``) has a torn last line cut off: other ranks may be writing theirs."""
        out: dict[int, dict[str, Any]] = {}
        for f in sorted(self.path.glob(f"{kind}.rank*.jsonl")):
            own = repair_rank is not None and f.name == f"{kind}.rank{repair_rank}.jsonl"
            for rec in results.read_jsonl(f, repair=own).records:
                out.setdefault(int(rec["id"]), rec)
        return out

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

    def build_supernet(self) -> Any:
        from robnet.models.zoo import build_model

        arch = self.supernet_arch()
        return build_model("supernet", **{k: v for k, v in arch.items() if k != "name"})

    def load_supernet(self, device: torch.device) -> Any:
        """The trained supernet (all epochs done), on ``device``, in eval mode."""
        from robnet.io import checkpoint as ckpt

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


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        value = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is unreadable ({e}); was it edited by hand?") from e
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return value


def _invocation(argv: list[str] | None) -> dict[str, Any]:
    import datetime as dt

    return {"argv": list(argv if argv is not None else sys.argv[1:]), "world_size": dist_info()[1],
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}

"""Settings of a one-shot robust architecture search, its presets, and the candidate sampler.

A search is decided by one frozen :class:`SearchConfig` (recorded verbatim in the run folder's
``search.json``); every random choice is derived from ``(config.seed, key...)`` with
:func:`robnet.io.results.derive_seed`, so any stage can be rerun, resumed or sharded over ranks and
draws the same architectures, batches and attack noise.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field
from typing import Any

from robnet.attacks.spec import format_attack, parse_attack
from robnet.io.results import derive_seed
from robnet.models.genotype import NUM_EDGES, Genotype, count_cells, iter_cells, sample
from robnet.train.config import TrainConfig

SCHEDULES = ("full", "halving")

__all__ = ["PAPER_BUDGETS", "PRESETS", "SCHEDULES", "SearchConfig", "preset_config", "sample_candidates", "space_size"]

# docs/design.md §1 decision: RobNet-small / -medium / -large = 7 / 10 / 13 sep-convs per shared cell.
PAPER_BUDGETS: dict[str, int] = {"small": 7, "medium": 10, "large": 13}


def _paper_supernet() -> TrainConfig:
    # The official recipe of `robnet train` where it applies (docs/design.md §3), for 300 supernet epochs
    # (docs/design.md §3 "Known cost"); the warm-up keeps its 20 epochs.
    return TrainConfig(epochs=300, warmup_epochs=20, batch_size=128)


def _paper_finetune() -> TrainConfig:
    # Paper §3: each candidate is adversarially finetuned for 3 epochs from the inherited weights.
    # Decision: no warm-up, a short cosine from lr 0.02 (the official warm-up start) to 0.001.
    return TrainConfig(epochs=3, warmup_epochs=0, batch_size=128, lr=0.02, min_lr=0.001)


def _budget_key(b: Any) -> tuple[int, int]:
    # ints ascending; anything else (refused below) after them, in its given order
    return (0, b) if isinstance(b, int) and not isinstance(b, bool) else (1, 0)


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """Everything that decides a search's results (device and progress bars do not).

    Attributes:
        data: training set name (the candidates' validation split is carved from it; the test
            set is never used by the search).
        subset: use the first N training images (smoke runs).
        val_size: held-out fraction (or count, when >= 1) of the training set used to evaluate
            candidates.
        C, layers, cell_free, imagenet_stem: the supernet's macro structure (docs/design.md §1).
        candidates: number of architectures sampled, evaluated and finetuned (paper: 1,000).
        budget: exact number of sep-convs per cell for the candidates (None: unconstrained), or
            several budgets (a tuple): candidate ``i`` then has budget ``budget[i % len(budget)]``
            (Finding #2 compares budgets). The supernet itself is trained on uniformly random
            bits (docs/design.md §4).
        supernet: the supernet's PGD adversarial training recipe.
        finetune: each candidate's PGD finetuning recipe (its ``epochs`` are the paper's K=3).
        eval_attack: attack spec (``robnet.attacks.spec``) for the candidates' robust accuracy.
        eval_samples: validation images per candidate evaluation (None: the whole split).
        eval_batch_size: batch for candidate evaluation and BN recalibration.
        bn_batches: training batches used to recalibrate a candidate's BatchNorm statistics.
        finetune_schedule: ``"full"`` (the paper: every candidate gets ``finetune.epochs``) or
            ``"halving"`` (successive halving: every candidate gets one epoch and is evaluated, the
            better half continues, up to ``finetune.epochs``; docs/search.md).
        retest: candidates (a seeded subset) whose PGD accuracy is measured again on the second
            half of the validation images with a fresh attack seed, for the study's test-retest
            noise; None: all of them.
        test_samples: test images on which the chosen best genotype is re-measured (None: the
            whole test split); the test split is used for nothing else.
        seed: root of every random choice.
    """

    data: str = "cifar10"
    subset: int | None = None
    val_size: float = 0.1
    C: int = 36
    layers: int = 20
    cell_free: bool = False
    imagenet_stem: bool = False
    candidates: int = 1000
    budget: int | tuple[int, ...] | None = None
    supernet: TrainConfig = field(default_factory=_paper_supernet)
    finetune: TrainConfig = field(default_factory=_paper_finetune)
    eval_attack: str = "pgd7"
    eval_samples: int | None = None
    eval_batch_size: int = 256
    bn_batches: int = 10
    finetune_schedule: str = "full"
    retest: int | None = 10
    test_samples: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SearchConfig: {name} must be an integer >= 1, got {value!r}")

        positive("C", self.C)
        positive("layers", self.layers)
        positive("candidates", self.candidates)
        positive("subset", self.subset, allow_none=True)
        positive("eval_samples", self.eval_samples, allow_none=True)
        positive("eval_batch_size", self.eval_batch_size)
        positive("bn_batches", self.bn_batches)
        positive("test_samples", self.test_samples, allow_none=True)
        if self.retest is not None and (isinstance(self.retest, bool) or not isinstance(self.retest, int)
                                        or self.retest < 0):
            raise ValueError(f"SearchConfig: retest must be a count >= 0 of candidates or None (all), got "
                             f"{self.retest!r}")
        if self.finetune_schedule not in SCHEDULES:
            raise ValueError(f"SearchConfig: finetune_schedule must be one of {', '.join(SCHEDULES)}, got "
                             f"{self.finetune_schedule!r}")
        if self.C % 2:
            raise ValueError(f"SearchConfig: C must be even (FactorizedReduce halves it), got {self.C}")
        if isinstance(self.budget, list | tuple):
            # normal form: sorted, so that "10,7,4" and "4,7,10" are the same search (and tuples are
            # what JSON lists read back as)
            object.__setattr__(self, "budget", tuple(sorted(self.budget, key=_budget_key)))
        for b in self.budgets():
            if b is not None and (isinstance(b, bool) or not isinstance(b, int) or not 0 <= b <= NUM_EDGES):
                raise ValueError(f"SearchConfig: budget must be an integer in 0..{NUM_EDGES} sep-convs per cell, "
                                 f"got {b!r}")
        if isinstance(self.budget, tuple) and (not self.budget or len(set(self.budget)) != len(self.budget)):
            raise ValueError(f"SearchConfig: several budgets must be distinct and at least one, got {self.budget!r}")
        if not math.isfinite(self.val_size) or self.val_size <= 0 or (
                self.val_size >= 1 and self.val_size != int(self.val_size)):
            raise ValueError(f"SearchConfig: val_size must be a fraction in (0, 1) or a whole count >= 1, "
                             f"got {self.val_size!r}")
        # normal form: a count is an int, a fraction a float ("--val-size 64" and val_size=64 are one search)
        object.__setattr__(self, "val_size", int(self.val_size) if self.val_size >= 1 else float(self.val_size))
        if not isinstance(self.supernet, TrainConfig) or not isinstance(self.finetune, TrainConfig):
            raise TypeError("SearchConfig: supernet and finetune must be TrainConfig instances")
        # normal form: "pgd7:eps=1/10" and "pgd7:eps=0.1" are the same search (raises on a bad spec)
        object.__setattr__(self, "eval_attack", format_attack(parse_attack(self.eval_attack)))
        for b, n in zip(self.budgets(), self.per_budget(), strict=True):
            size = space_size(cell_free=self.cell_free, layers=self.layers, budget=b)
            if n > size:
                raise ValueError(f"SearchConfig: {n} candidates requested from a search space "
                                 f"{'(budget ' + str(b) + ') ' if b is not None else ''}"
                                 f"that holds only {size} distinct architectures")

    def budgets(self) -> tuple[int | None, ...]:
        """The candidates' budgets (one entry per budget; ``(None,)`` when unconstrained)."""
        return self.budget if isinstance(self.budget, tuple) else (self.budget,)

    def budget_of(self, candidate_id: int) -> int | None:
        """The budget candidate ``candidate_id`` is sampled under."""
        budgets = self.budgets()
        return budgets[candidate_id % len(budgets)]

    def per_budget(self) -> list[int]:
        """How many candidates each budget gets (ids are dealt round-robin)."""
        k = len(self.budgets())
        return [len(range(i, self.candidates, k)) for i in range(k)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        """Inverse of :meth:`to_dict` (as read back from ``search.json``)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"search config has unknown fields {', '.join(unknown)} (written by a newer "
                             "robnet?)")
        kwargs = dict(data)
        for key in ("supernet", "finetune"):
            if isinstance(kwargs.get(key), dict):
                kwargs[key] = TrainConfig(**kwargs[key])
        return cls(**kwargs)


def _cpu_demo() -> dict[str, Any]:
    # Sized so that the whole `fspkit demo` (search, statistics, figures, report) finishes in under 10
    # minutes on 2 idle CPU cores with >= 60 finetuned candidates (benchmarks/results/bench_search.md), on
    # the embedded 8x8 digits (eps 0.1 as in the robnet demo). 6 cells: 8x8 (cells 0-1), 4x4 (2-3), 2x2
    # (4-5), so the deep cells 4-5 hold a reduction and a normal cell; every candidate is retested. One
    # evaluation batch holds the 287 validation images: at C=4 a step's cost is per-op overhead, nearly
    # independent of the batch, so one batch of 287 costs 0.75x two of 144 (BN recalibration keeps its
    # 576 images in 2 batches).
    supernet = TrainConfig(epochs=30, warmup_epochs=2, batch_size=64, lr=0.1, warmup_lr=0.02, eps=0.1,
                           step_size=0.025, attack_steps=5, crop_padding=1, flip=False, val_attack_steps=5)
    finetune = TrainConfig(epochs=1, warmup_epochs=0, batch_size=64, lr=0.02, min_lr=0.001, eps=0.1,
                           step_size=0.025, attack_steps=5, crop_padding=1, flip=False, val_attack_steps=5)
    return {"data": "digits", "val_size": 0.2, "C": 4, "layers": 6, "candidates": 60, "budget": (4, 7, 10),
            "supernet": supernet, "finetune": finetune, "eval_attack": "pgd7:eps=0.1,step_size=0.025",
            "eval_batch_size": 288, "bn_batches": 2, "retest": None}


PRESETS: dict[str, str] = {
    "paper": "C=36, 20 cells, 300 supernet epochs, 1,000 candidates, 3-epoch finetune, CIFAR-10, PGD-7 8/255",
    "cpu-demo": "C=4, 6 cells, digits (8x8), 30 supernet epochs, 60 candidates (budgets 4, 7, 10), 1-epoch "
                "finetune, every candidate retested, PGD-7 eps 0.1",
    "small": "paper, with 7 sep-convs per cell (RobNet-small's budget)",
    "medium": "paper, with 10 sep-convs per cell (RobNet-medium's budget)",
    "large": "paper, with 13 sep-convs per cell (RobNet-large's budget)",
}


def preset_config(name: str, **overrides: Any) -> SearchConfig:
    """The named preset (see :data:`PRESETS`) with ``overrides`` applied."""
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}.{hint}")
    base: dict[str, Any] = {}
    if name == "cpu-demo":
        base = _cpu_demo()
    elif name in PAPER_BUDGETS:
        base = {"budget": PAPER_BUDGETS[name]}
    base.update(overrides)
    if "seed" in overrides and "supernet" not in overrides:
        # the supernet's data order and attack noise follow the search's seed (as the CLI does)
        base["supernet"] = dataclasses.replace(base.get("supernet", _paper_supernet()), seed=overrides["seed"])
    return SearchConfig(**base)


def space_size(*, cell_free: bool, layers: int, budget: int | None) -> int:
    """Number of distinct genotypes: valid cells (with the budget), to the power of the number of
    cells for cell-free spaces."""
    cells = count_cells(budget=budget)
    return cells ** layers if cell_free else cells


def sample_candidates(config: SearchConfig) -> list[Genotype]:
    """``config.candidates`` distinct genotypes, seeded by ``config.seed``.

    Uniform over the valid genotypes (with the budget); duplicates are redrawn. When more than
    half of a small space is asked for, the space is enumerated and sampled without replacement
    instead of redrawing (which would slow down like a coupon collector).
    """
    groups = [_sample_distinct(config, b, n) for b, n in zip(config.budgets(), config.per_budget(), strict=True)]
    k = len(groups)
    return [groups[i % k][i // k] for i in range(config.candidates)]


def _sample_distinct(config: SearchConfig, budget: int | None, n: int) -> list[Genotype]:
    rng = random.Random(derive_seed(config.seed, "sample", -1 if budget is None else budget))
    size = space_size(cell_free=config.cell_free, layers=config.layers, budget=budget)
    if not config.cell_free and n > size // 2:
        cells = list(iter_cells(budget=budget))
        return [Genotype.shared(c) for c in rng.sample(cells, n)]
    seen: set[str] = set()
    out: list[Genotype] = []
    while len(out) < n:
        g = sample(rng, cell_free=config.cell_free, layers=config.layers, budget=budget)
        key = str(g)
        if key not in seen:
            seen.add(key)
            out.append(g)
    return out

"""robnet.search.config: the search's settings, its presets and the candidate sampler."""

import dataclasses
import json
import math
import re
from collections import Counter

import pytest

from robnet.models.genotype import NUM_EDGES, count_cells, iter_cells
from robnet.search.config import (
    PAPER_BUDGETS,
    PRESETS,
    SearchConfig,
    preset_config,
    sample_candidates,
    space_size,
)
from robnet.train.config import TrainConfig


def _cfg(**overrides):
    return preset_config("cpu-demo", **{"layers": 3, **overrides})


# ----------------------------------------------------------------------------- the space


def test_space_size_by_hand():
    # every intermediate node f_i (i + 1 incoming edges, 4 codes each) needs one non-'00' edge
    assert space_size(cell_free=False, layers=20, budget=None) == (4**2 - 1) * (4**3 - 1) * (4**4 - 1) * (4**5 - 1)
    # no sep-conv: each edge is '00' or '10', and a node needs one identity
    assert space_size(cell_free=False, layers=20, budget=0) == 3 * 7 * 15 * 31 == 9765
    # every edge a sep-conv: only the identity bits are free, nothing can be dead
    assert space_size(cell_free=False, layers=20, budget=NUM_EDGES) == 2**14
    # cell-free: one independent cell per layer
    assert space_size(cell_free=True, layers=3, budget=0) == 9765**3
    assert sum(count_cells(budget=b) for b in range(NUM_EDGES + 1)) == count_cells()


# ----------------------------------------------------------------------------- sampling


def test_sampling_is_seeded_and_deduplicated():
    cfg = _cfg(candidates=60, budget=None)
    first = sample_candidates(cfg)
    assert [str(g) for g in first] == [str(g) for g in sample_candidates(_cfg(candidates=60, budget=None))]
    assert len({str(g) for g in first}) == 60
    other = sample_candidates(_cfg(candidates=60, budget=None, seed=1))
    assert [str(g) for g in other] != [str(g) for g in first]
    # a larger N extends the same seeded draw (the first 60 stay the same)
    assert [str(g) for g in sample_candidates(_cfg(candidates=80, budget=None))][:60] == [str(g) for g in first]


def test_sampling_more_than_half_a_small_space_enumerates_it():
    # budget 0 holds 9765 cells: asking for all of them takes every one exactly once
    cfg = _cfg(candidates=9765, budget=0)
    drawn = sample_candidates(cfg)
    assert {g.cells[0] for g in drawn} == set(iter_cells(budget=0))
    assert len(drawn) == 9765
    assert [str(g) for g in drawn[:20]] == [str(g) for g in sample_candidates(cfg)[:20]]


def test_a_single_budget_is_exact_in_every_cell():
    for budget in (0, 7, 14):
        for g in sample_candidates(_cfg(candidates=30, budget=budget)):
            assert g.num_convs() == [budget]
    free = sample_candidates(_cfg(candidates=10, budget=5, cell_free=True))
    assert all(g.cell_free and len(g.cells) == 3 and g.num_convs() == [5, 5, 5] for g in free)
    assert len({str(g) for g in free}) == 10


def test_several_budgets_are_dealt_round_robin():
    cfg = _cfg(candidates=11, budget=(4, 7, 10))
    drawn = sample_candidates(cfg)
    assert [g.num_convs()[0] for g in drawn] == [4, 7, 10] * 3 + [4, 7]
    assert [cfg.budget_of(i) for i in range(11)] == [4, 7, 10] * 3 + [4, 7]
    assert cfg.per_budget() == [4, 4, 3]
    assert len({str(g) for g in drawn}) == 11
    # each budget's group is its own seeded draw: adding a budget leaves the others' draws alone
    alone = sample_candidates(_cfg(candidates=4, budget=4))
    assert [str(g) for g in drawn[0::3]] == [str(g) for g in alone]


def test_budget_read_back_from_json_is_a_tuple():
    cfg = _cfg(budget=(4, 7))
    again = SearchConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.budget == (4, 7)
    assert isinstance(again.supernet, TrainConfig) and again.finetune == cfg.finetune


def test_more_candidates_than_the_space_is_refused():
    with pytest.raises(ValueError, match="9766 candidates requested from a search space \\(budget 0\\) that holds "
                                         "only 9765 distinct architectures"):
        _cfg(candidates=9766, budget=0)
    # several budgets: the budget that gets too many is named (ids dealt round-robin: 9766 go to budget 0)
    with pytest.raises(ValueError, match="\\(budget 0\\) that holds only 9765"):
        _cfg(candidates=2 * 9765 + 1, budget=(0, 14))
    assert _cfg(candidates=2 * 9765, budget=(0, 14)).per_budget() == [9765, 9765]


# ----------------------------------------------------------------------------- presets


def test_paper_budget_presets():
    assert {name: preset_config(name).budget for name in ("small", "medium", "large")} == \
        {"small": 7, "medium": 10, "large": 13} == PAPER_BUDGETS
    paper = preset_config("paper")
    assert (paper.C, paper.layers, paper.candidates, paper.budget, paper.data) == (36, 20, 1000, None, "cifar10")
    assert (paper.supernet.epochs, paper.finetune.epochs) == (300, 3)
    assert math.isclose(paper.supernet.eps, 8 / 255) and paper.eval_attack == "pgd7"
    # a preset differs from the paper's only in the budget
    assert dataclasses.replace(preset_config("medium"), budget=None) == paper
    assert preset_config("large", candidates=5).candidates == 5
    assert set(PRESETS) == {"paper", "cpu-demo", "small", "medium", "large"}


def test_cpu_demo_preset():
    demo = preset_config("cpu-demo")
    assert (demo.data, demo.C, demo.layers, demo.candidates, demo.budget) == ("digits", 4, 6, 60, (4, 7, 10))
    assert demo.per_budget() == [20, 20, 20]
    assert demo.candidates >= 60 and demo.retest is None  # at least 60 finetuned candidates, all retested
    # 6 cells: the deep cells (from the second reduction on) hold a reduction and a normal cell
    from robnet.models.genotype import deep_cells, reduction_cells

    assert list(deep_cells(demo.layers)) == [4, 5] and reduction_cells(demo.layers) == (2, 4)


def test_unknown_preset_is_refused_with_a_close_match():
    with pytest.raises(ValueError, match=re.escape("unknown preset 'cpu_demo'; expected one of paper, cpu-demo, small, "
                                                   "medium, large. Did you mean 'cpu-demo'?")):
        preset_config("cpu_demo")
    with pytest.raises(ValueError, match=r"unknown preset 'xyz'; expected one of .*large\.$"):
        preset_config("xyz")


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("budget", [-1, 15, True, 2.0, "7"])
def test_budget_outside_0_to_14_is_refused(budget):
    with pytest.raises(ValueError, match=f"budget must be an integer in 0..14 sep-convs per cell, got {budget!r}"):
        _cfg(budget=budget)


def test_several_budgets_must_be_distinct_and_valid():
    with pytest.raises(ValueError, match="several budgets must be distinct and at least one, got \\(4, 4\\)"):
        _cfg(budget=(4, 4))
    with pytest.raises(ValueError, match="several budgets must be distinct and at least one, got \\(\\)"):
        _cfg(budget=())
    with pytest.raises(ValueError, match=r"budget must be an integer in 0\.\.14 .* got 20"):
        _cfg(budget=(4, 20))


@pytest.mark.parametrize(("field", "value", "match"), [
    ("C", 5, "C must be even \\(FactorizedReduce halves it\\), got 5"),
    ("C", 0, "C must be an integer >= 1, got 0"),
    ("layers", 0, "layers must be an integer >= 1, got 0"),
    ("candidates", 0, "candidates must be an integer >= 1, got 0"),
    ("candidates", True, "candidates must be an integer >= 1, got True"),
    ("subset", 0, "subset must be an integer >= 1, got 0"),
    ("eval_samples", -3, "eval_samples must be an integer >= 1, got -3"),
    ("bn_batches", 0, "bn_batches must be an integer >= 1, got 0"),
    ("val_size", 0.0, "val_size must be a fraction in \\(0, 1\\) or a whole count >= 1, got 0.0"),
    ("val_size", 1.5, "val_size must be a fraction in \\(0, 1\\) or a whole count >= 1, got 1.5"),
    ("val_size", float("nan"), "val_size must be a fraction in \\(0, 1\\) or a whole count >= 1, got nan"),
    ("eval_attack", "pgd7:eps=zz", "cannot parse 'zz' as a number"),
])
def test_bad_fields_are_refused(field, value, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**{field: value})


def test_recipes_must_be_train_configs():
    with pytest.raises(TypeError, match="supernet and finetune must be TrainConfig instances"):
        _cfg(finetune={"epochs": 1})


def test_unknown_fields_in_a_stored_config_are_refused():
    data = {**_cfg().to_dict(), "temperature": 1.0}
    with pytest.raises(ValueError, match="search config has unknown fields temperature \\(written by a newer "
                                         "robnet\\?\\)"):
        SearchConfig.from_dict(data)


def test_sampling_is_uniform_over_the_budget_0_space_edges():
    # with budget 0 every edge is '00' or '10'; by symmetry of the valid set, the first edge of f1
    # (s0->f1) is '10' in 2 of the 3 valid (edge 0, edge 1) pairs: 2/3 of a uniform sample
    drawn = sample_candidates(_cfg(candidates=3000, budget=0))
    share = Counter(g.cells[0][0] for g in drawn)["10"] / 3000
    assert abs(share - 2 / 3) < 0.04  # 4.6 standard errors of a binomial share at n=3000


def test_equal_settings_written_differently_are_one_config():
    a = _cfg(budget=(10, 7, 4), eval_attack="pgd7:eps=1/10,step_size=1/40", val_size=64.0)
    b = _cfg(budget=(4, 7, 10), eval_attack="pgd7:eps=0.1,step_size=0.025", val_size=64)
    assert a == b and a.budget == (4, 7, 10) and a.eval_attack == "pgd7:eps=0.1,step_size=0.025"
    assert json.dumps(dataclasses.asdict(a), sort_keys=True) == json.dumps(dataclasses.asdict(b), sort_keys=True)
    with pytest.raises(ValueError, match="sets 'eps' twice"):
        _cfg(eval_attack="pgd7:eps=0.1,eps=0.2")

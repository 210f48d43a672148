"""fspkit.demo: the study's search follows its flags (the seed seeds the search itself), and a study folder
made with other settings gets a hint the user can follow."""

from __future__ import annotations

import re

import pytest

from fspkit.demo import run_study, study_config
from robnet.search import sample_candidates


def test_the_seed_seeds_the_search():
    """Before: `fspkit demo --seed 5` gave the search records of --seed 0 (only the analysis changed)."""
    a, b = study_config("cpu-demo", seed=0), study_config("cpu-demo", seed=5)
    assert (a.seed, b.seed) == (0, 5) and (a.supernet.seed, b.supernet.seed) == (0, 5)
    assert [str(g) for g in sample_candidates(a)] != [str(g) for g in sample_candidates(b)]


def test_overrides_reach_the_search():
    cfg = study_config("cpu-demo", seed=1, overrides={"candidates": 12, "supernet_epochs": 2,
                                                      "finetune_schedule": "halving"})
    assert (cfg.candidates, cfg.supernet.epochs, cfg.finetune_schedule) == (12, 2, "halving")
    assert cfg.supernet.warmup_epochs <= 1


@pytest.mark.slow
def test_a_folder_of_another_study_is_refused_with_a_hint_to_follow(tmp_path):
    tiny = {"candidates": 3, "supernet_epochs": 1, "layers": 3}
    run_study(tmp_path, seed=0, overrides=tiny, quiet=True, procs=1)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path} holds a study made with other settings (candidates "
                                                   "(3 in the folder, 4 now)")) as err:
        run_study(tmp_path, seed=0, overrides={**tiny, "candidates": 4}, quiet=True, procs=1)
    assert "Hint: use another --out, or --overwrite to replace it" in str(err.value)
    assert "config flags" not in str(err.value)  # a demo user gave none

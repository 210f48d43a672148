"""fspkit.demo: the study's search follows its flags (the seed seeds the search itself), and a study folder
made with other settings gets a hint the user can follow."""

from __future__ import annotations

import dataclasses
import re

import pytest

from fspkit.demo import _finetuning, run_study, study_config
from robnet.search import preset_config, sample_candidates


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


def test_the_report_states_the_candidate_epochs_each_schedule_spent():
    demo = preset_config("cpu-demo")
    full = dataclasses.replace(demo, finetune=dataclasses.replace(demo.finetune, epochs=3))
    halving = dataclasses.replace(full, finetune_schedule="halving")
    # halving over 4 finetuned candidates: all 4, then 2, then 1 per epoch (3, 2, 1, 1 epochs); one filtered out
    records = [{"finetune_epochs": e, "filtered_out": False} for e in (3, 2, 1, 1)]
    records.append({"finetune_epochs": 0, "filtered_out": True})
    assert _finetuning(full, [{"finetune_epochs": 3, "filtered_out": False}] * 4) == (
        "full (the paper's): 3 epochs per candidate, 12 candidate-epochs")
    assert _finetuning(halving, records) == (
        "successive halving up to 3 epochs: 7 candidate-epochs, 0.58x the 12 of full finetuning (what it keeps of "
        "full's top 10% needs a full run of the same supernet: docs/search.md)")


@pytest.mark.slow
def test_a_folder_of_another_study_is_refused_with_a_hint_to_follow(tmp_path):
    tiny = {"candidates": 3, "supernet_epochs": 1, "layers": 3}
    run_study(tmp_path, seed=0, overrides=tiny, quiet=True, procs=1)
    report = (tmp_path / "report.md").read_text()
    assert "| finetuning | full (the paper's): 1 epoch per candidate, 3 candidate-epochs |" in report
    assert "| resumed |" not in report
    run_study(tmp_path, seed=0, overrides=tiny, quiet=True, procs=1)  # complete: only the analysis runs again
    assert "| resumed | yes: the wall and search times are this invocation's" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path} holds a study made with other settings (candidates "
                                                   "(3 in the folder, 4 now)")) as err:
        run_study(tmp_path, seed=0, overrides={**tiny, "candidates": 4}, quiet=True, procs=1)
    assert "Hint: use another --out, or --overwrite to replace it" in str(err.value)
    assert "config flags" not in str(err.value)  # a demo user gave none

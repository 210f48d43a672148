"""robnet.search.rundir: the search's run folder (config pinning, candidates, per-rank record shards)."""

import dataclasses
import json
import re

import pytest
import torch

from robnet.data.datasets import load_dataset
from robnet.io import results
from robnet.search.config import preset_config
from robnet.search.records import RecordError, records_path, scores_path
from robnet.search.rundir import SearchDir, load_split


def _cfg(**overrides):
    return preset_config("cpu-demo", **{"candidates": 6, "subset": 200, "layers": 3, **overrides})


def _open(path, config=None, **kwargs):
    kwargs.setdefault("create", True)
    return SearchDir.open(path, config, argv=["robnet", "search", "test"], **kwargs)


def test_a_new_folder_records_config_hash_and_invocation(tmp_path):
    cfg = _cfg()
    sd = _open(tmp_path / "run", cfg, plugin={"fspkit": {"keep": 0.5}})
    stored = json.loads((tmp_path / "run" / "search.json").read_text())
    assert (stored["format"], stored["version"]) == ("robnet-search", 1)
    assert stored["config"] == json.loads(results.dumps(cfg.to_dict()))
    assert stored["plugin"] == {"fspkit": {"keep": 0.5}}
    assert stored["config_hash"] == sd.config_hash == results.config_hash(
        {"config": cfg.to_dict(), "plugin": {"fspkit": {"keep": 0.5}}})
    assert stored["provenance"]["seed"] == cfg.seed
    [inv] = stored["invocations"]
    assert inv["argv"] == ["robnet", "search", "test"] and inv["world_size"] == 1
    # the plugin settings are part of the hash: another filter is another search
    other = _open(tmp_path / "other", cfg, plugin={"fspkit": {"keep": 0.3}})
    assert other.config_hash != sd.config_hash
    assert _open(tmp_path / "plain", cfg).config_hash != sd.config_hash


def test_reopening_keeps_the_folder_config_and_appends_the_invocation(tmp_path):
    cfg = _cfg(budget=(4, 7))
    _open(tmp_path, cfg)
    again = _open(tmp_path, None, create=False)
    assert again.config == cfg and again.config.budget == (4, 7) and again.plugin == {}
    same = _open(tmp_path, cfg, create=False)
    assert same.config_hash == again.config_hash
    assert len(json.loads((tmp_path / "search.json").read_text())["invocations"]) == 3


def test_a_folder_made_by_another_config_is_refused_naming_the_fields(tmp_path):
    cfg = _cfg()
    _open(tmp_path, cfg)
    with pytest.raises(ValueError, match=re.escape(
            f"{tmp_path} holds a search made by another config: candidates (6 in the folder, 7 now). Hint: continue "
            "it with the folder's own settings (leave the config flags out), start over with --overwrite, or use "
            "another --out")):
        _open(tmp_path, _cfg(candidates=7))
    changed = _cfg(finetune=dataclasses.replace(cfg.finetune, epochs=2), seed=3)
    with pytest.raises(ValueError, match=re.escape("finetune.epochs (1 in the folder, 2 now); seed (0 in the "
                                                   "folder, 3 now)")):
        _open(tmp_path, changed)
    many = _cfg(C=6, layers=4, candidates=5, seed=1, bn_batches=3)
    with pytest.raises(ValueError, match=re.escape(
            "another config: C (4 in the folder, 6 now); bn_batches (2 in the folder, 3 now); candidates (6 in the "
            "folder, 5 now); layers (3 in the folder, 4 now); and 2 more. Hint")):  # seed, supernet.seed
        _open(tmp_path, many)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path} holds a search made with other settings: fspkit "
                                                   "(None in the folder, {'keep': 0.5} now). Hint: start over "
                                                   "with --overwrite, or use another --out")):
        _open(tmp_path, None, plugin={"fspkit": {"keep": 0.5}})
    # nothing was recorded by the refused invocations
    assert len(json.loads((tmp_path / "search.json").read_text())["invocations"]) == 1


def test_a_folder_without_a_search(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path} holds no search (search.json missing). Hint: start "
                                                   f"one with `robnet search all --out {tmp_path}`")):
        _open(tmp_path, None, create=False)
    (tmp_path / "search.json").write_text("{not json")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'search.json'} is unreadable (")):
        _open(tmp_path, None, create=False)
    (tmp_path / "search.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=re.escape("search.json: expected a JSON object")):
        _open(tmp_path, None, create=False)


def test_candidates_round_trip(tmp_path):
    from robnet.search.config import sample_candidates

    sd = _open(tmp_path, _cfg())
    assert not sd.has_candidates()
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path} has no sampled candidates yet. Hint: run `robnet "
                                                   f"search sample --out {tmp_path}` first")):
        sd.read_candidates()
    genotypes = sample_candidates(sd.config)
    sd.write_candidates(genotypes)
    assert sd.read_candidates() == [{"id": i, "genotype": str(g)} for i, g in enumerate(genotypes)]
    assert json.loads((tmp_path / "candidates.json").read_text())["config_hash"] == sd.config_hash


def test_shards_are_merged_by_id_and_only_the_own_torn_tail_is_cut(tmp_path):
    sd = _open(tmp_path, _cfg())
    h = {"config_hash": sd.config_hash}
    results.append_jsonl(records_path(tmp_path, 0), [{"id": 0, "v": "a", **h}, {"id": 2, "v": "b", **h}])
    results.append_jsonl(records_path(tmp_path, 1), [{"id": 1, "v": "c", **h}, {"id": 2, "v": "dup", **h}])
    with records_path(tmp_path, 0).open("a") as f:
        f.write('{"id": 4, "v"')
    with records_path(tmp_path, 1).open("a") as f:
        f.write('{"id": 5')
    size1 = records_path(tmp_path, 1).stat().st_size
    got = sd.read_shards("records", repair_rank=0)
    assert got == {0: {"id": 0, "v": "a", **h}, 2: {"id": 2, "v": "b", **h}, 1: {"id": 1, "v": "c", **h}}
    assert records_path(tmp_path, 0).read_text().endswith(f'"{sd.config_hash}"}}\n')  # own shard repaired
    assert records_path(tmp_path, 1).stat().st_size == size1  # another rank's shard untouched
    assert sd.read_shards("scores") == {}
    assert scores_path(tmp_path, 3).name == "scores.rank3.jsonl"


def test_the_split_is_the_training_set_only(tmp_path):
    cfg = _cfg(subset=200, val_size=0.2)
    train, val = load_split(cfg)
    assert (len(train), len(val)) == (160, 40)
    # together, exactly the first 200 training images (the test set is never used)
    whole = load_dataset("digits", split="train").subset(range(200))
    rows = sorted(map(tuple, torch.cat([train.images, val.images]).flatten(1).tolist()))
    assert rows == sorted(map(tuple, whole.images.flatten(1).tolist()))
    sd = _open(tmp_path / "run", cfg)
    assert sd.split()[0] is sd.split()[0]  # read once per folder object
    counts = _cfg(subset=200, val_size=50)
    assert [len(p) for p in load_split(counts)] == [150, 50]
    with pytest.raises(ValueError, match=r"subset 999999 is larger than the digits training set \(\d+ images\)"):
        load_split(_cfg(subset=999999))


def test_shards_refuse_the_records_of_another_search(tmp_path):
    sd = _open(tmp_path, _cfg())
    results.append_jsonl(records_path(tmp_path, 1), [{"id": 1, "config_hash": sd.config_hash},
                                                     {"id": 3, "config_hash": "0123456789abcdef"}])
    with pytest.raises(RecordError, match=re.escape(f"{records_path(tmp_path, 1)}: line 2: a record of another search "
                                                    f"(config_hash '0123456789abcdef', this folder's is "
                                                    f"'{sd.config_hash}')")):
        sd.read_shards("records")
    results.append_jsonl(records_path(tmp_path, 0), [{"v": 1, "config_hash": sd.config_hash}])
    with pytest.raises(RecordError, match=re.escape(f"{records_path(tmp_path, 0)}: line 1: the record has no 'id'")):
        sd.read_shards("records")


def test_supernet_not_trained_yet(tmp_path):
    sd = _open(tmp_path, _cfg())
    arch = sd.supernet_arch()
    assert arch == {"name": "supernet", "num_classes": 10, "C": 4, "layers": 3, "in_channels": 1,
                    "cell_free": False, "imagenet_stem": False}
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}: the supernet is not trained yet. Hint: run `robnet "
                                                   f"search supernet --out {tmp_path}`")):
        sd.load_supernet(device=torch.device("cpu"))


def test_a_read_only_open_records_nothing(tmp_path):
    _open(tmp_path, _cfg())
    before = (tmp_path / "search.json").read_bytes()
    sd = _open(tmp_path, None, create=False, record=False)
    assert sd.config == _cfg() and (tmp_path / "search.json").read_bytes() == before


def test_check_split_refuses_what_the_data_cannot_satisfy():
    from robnet.search.rundir import check_split

    check_split(_cfg(subset=200, val_size=64, eval_samples=64))
    with pytest.raises(ValueError, match=re.escape("eval_samples 65 is larger than the validation split (64 images). "
                                                   "Hint: lower --samples, or raise --val-size / --subset")):
        check_split(_cfg(subset=200, val_size=64, eval_samples=65))
    big_finetune = dataclasses.replace(_cfg().finetune, batch_size=160)
    with pytest.raises(ValueError, match=re.escape("the search's finetune recipe cannot train on its 136 training "
                                                   "images: training set of 136 images gives no full batch of 160")):
        check_split(_cfg(subset=200, val_size=64, finetune=big_finetune))
    # the supernet's global batch is sharded over the processes
    with pytest.raises(ValueError, match=re.escape("the search's supernet recipe cannot train on its 136 training "
                                                   "images: global batch 64 is not divisible by 3 processes")):
        check_split(_cfg(subset=200, val_size=64), world_size=3)

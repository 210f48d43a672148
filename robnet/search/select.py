"""Honest selection: the best candidate is chosen on the validation split, then re-measured on data
that no choice ever saw (the dataset's test split).

The search's best validation accuracy is the maximum of many noisy estimates, so it is biased
upward (the winner's curse). :func:`select_stage` finetunes the chosen genotype again exactly as the
search did (the same seeds: on the CPU the same weights), checks its validation accuracy, and
measures it on the test split; ``selection.json`` holds both, side by side.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from robnet.attacks.report import wilson_interval
from robnet.attacks.spec import parse_attack
from robnet.data.loader import DeviceLoader
from robnet.io import results
from robnet.models.supernet import SuperNet
from robnet.search import records as R
from robnet.search.finetune import candidate_tuner
from robnet.search.rundir import SELECTION_FILE, SearchDir
from robnet.search.stages import evaluate_candidate
from robnet.utils import dist_info

__all__ = ["best_record", "read_selection", "select_stage"]

log = logging.getLogger(__name__)


def best_record(final: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate with the highest validation PGD accuracy after finetuning (ties: the smaller id),
    among those that got the most finetuning epochs (successive halving's finalists)."""
    rows = [r for r in final.values() if r.get(R.PGD_ACC) is not None]
    if not rows:
        return None
    most = max(r.get(R.FINETUNE_EPOCHS, 0) for r in rows)
    finalists = [r for r in rows if r.get(R.FINETUNE_EPOCHS, 0) == most]
    return min(finalists, key=lambda r: (-r[R.PGD_ACC], r[R.ID]))


def _measure(model: torch.nn.Module, batches: list[Any], sd: SearchDir, seed: int, device: torch.device,
             key: str) -> dict[str, Any]:
    acc, seconds = evaluate_candidate(model, batches, parse_attack(sd.config.eval_attack), seed, device, key=key)
    hits = int(acc.adv_hits.sum())
    return {R.CLEAN_ACC: acc.clean_acc, R.PGD_ACC: acc.adv_acc, "n": acc.n,
            "pgd_acc_ci95": list(wilson_interval(hits, acc.n)), "seconds": seconds}


def select_stage(sd: SearchDir, supernet: SuperNet, *, device: torch.device) -> dict[str, Any] | None:
    """Re-finetune the best candidate and measure it on the test split (first process only; the
    others wait); writes and returns ``selection.json``'s content (None when no candidate has a final
    accuracy). Idempotent: an existing selection of the same config is returned as it is."""
    existing = read_selection(sd)
    sd.barrier()  # every process looks before the first one writes, so all take the same branch
    if existing is not None:
        return existing
    out = None
    final = sd.read_shards("records")
    missing = len(sd.read_candidates()) - len(final)
    if missing:
        raise ValueError(f"{sd.path}: {missing} candidates are not finetuned yet, so the best one cannot be chosen. "
                         f"Hint: run the finetune stage first (`robnet search finetune --out {sd.path}`)")
    if dist_info()[0] == 0:
        best = best_record(final)
        if best is not None:
            out = _select(sd, supernet, best, device)
            results.write_json(sd.path / SELECTION_FILE, out)
    sd.barrier()
    return read_selection(sd) if out is None else out


def _select(sd: SearchDir, supernet: SuperNet, best: dict[str, Any], device: torch.device) -> dict[str, Any]:
    t0 = time.perf_counter()
    tuner = candidate_tuner(sd, supernet, best, device)
    for _ in range(best.get(R.FINETUNE_EPOCHS, sd.config.finetune.epochs)):
        tuner.run_epoch(progress=False)
    val = _measure(tuner.model, sd.eval_batches(device), sd, best[R.SEED], device, "eval-attack")
    test_batches = list(DeviceLoader(sd.test_set(), batch_size=sd.config.eval_batch_size, device=device))
    test = _measure(tuner.model, test_batches, sd, best[R.SEED], device, "test-attack")
    if abs(val[R.PGD_ACC] - best[R.PGD_ACC]) > 1e-9:
        log.warning("the re-finetuned best candidate %d has validation PGD accuracy %.4f, its record %.4f "
                    "(non-deterministic kernels?)", best[R.ID], val[R.PGD_ACC], best[R.PGD_ACC])
    return {"config_hash": sd.config_hash, R.ID: best[R.ID], R.GENOTYPE: best[R.GENOTYPE],
            "chosen_by": "the highest validation PGD accuracy after finetuning (the search's records)",
            "attack": sd.config.eval_attack, "record": {R.PGD_ACC: best[R.PGD_ACC], R.CLEAN_ACC: best[R.CLEAN_ACC]},
            "validation": val, "test": test, "seconds": time.perf_counter() - t0}


def read_selection(sd: SearchDir) -> dict[str, Any] | None:
    """``selection.json`` of this search, or None when there is none (yet)."""
    path = sd.path / SELECTION_FILE
    if not path.exists():
        return None
    data = R.read_json_object(path)
    return data if data.get("config_hash") == sd.config_hash else None

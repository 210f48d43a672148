"""The second pass of the search: finetune the candidates, evaluate them, write their final records.

Two schedules (``SearchConfig.finetune_schedule``; docs/search.md):

* ``full`` (the paper's protocol): every candidate the filter keeps gets ``finetune.epochs``
  epochs of PGD finetuning from its inherited weights, then its final evaluation.
* ``halving`` (successive halving): every kept candidate gets one epoch and is evaluated; the
  better half (ranked by that PGD accuracy, ties by id) continues for another epoch, and so on up
  to ``finetune.epochs``. A candidate that stops gets its final evaluation after the epochs it
  had; ``finetune_epochs`` in its record says how many. A racing candidate's state (weights,
  optimizer, epochs) waits in ``RUN_DIR/finetune/{id}.pt`` between epochs, and each epoch's
  evaluation goes to ``rungs.rank{R}.jsonl``, so a kill at any moment loses at most one epoch.

The final evaluation of a candidate gives ``clean_acc`` and ``pgd_acc`` on the validation images,
``pgd_acc_half`` (the same attack on their first half), and for the seeded retest subset
``pgd_acc_retest``: the PGD accuracy measured again on the second half with a fresh attack seed,
from which the study computes the measurement's test-retest noise.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import torch

from robnet.attacks.spec import parse_attack
from robnet.io import results
from robnet.io.files import atomic_write
from robnet.models.genotype import Genotype
from robnet.models.supernet import SuperNet
from robnet.search import records as R
from robnet.search.config import SearchConfig
from robnet.search.rundir import SearchDir
from robnet.search.stages import (
    AFTER,
    CandidateFilter,
    ScoreContext,
    Scorer,
    evaluate_candidate,
    progress_bar,
    with_provenance,
)
from robnet.train.finetune import Finetuner
from robnet.train.loop import TrainingDiverged
from robnet.utils import dist_info

__all__ = ["candidate_tuner", "finetune_stage", "retest_ids", "survivors"]

Batches = Sequence[tuple[torch.Tensor, torch.Tensor]]

log = logging.getLogger(__name__)


def retest_ids(config: SearchConfig) -> set[int]:
    """The candidates whose PGD accuracy is measured twice (a seeded subset, or all of them)."""
    if config.retest is None or config.retest >= config.candidates:
        return set(range(config.candidates))
    rng = random.Random(results.derive_seed(config.seed, "retest"))
    return set(rng.sample(range(config.candidates), config.retest))


def survivors(accuracies: dict[int, float]) -> list[int]:
    """The better half (rounded up) of ``id -> PGD accuracy``, ties broken by the smaller id."""
    ranked = sorted(accuracies, key=lambda i: (-accuracies[i], i))
    return sorted(ranked[:math.ceil(len(ranked) / 2)])


def candidate_tuner(sd: SearchDir, supernet: SuperNet, scored: dict[str, Any], device: torch.device) -> Finetuner:
    """A candidate's :class:`~robnet.train.Finetuner`: the supernet's weights, the search's recipe, the
    candidate's seed (its data order, augmentation and attack noise)."""
    cfg = sd.config
    model = supernet.extract(Genotype.parse(scored[R.GENOTYPE])).to(device)
    recipe = dataclasses.replace(cfg.finetune, seed=scored[R.SEED] % (2 ** 31))  # the candidate's data order, noise
    train_part, _ = sd.split()
    return Finetuner(model, train_part, epochs=cfg.finetune.epochs, config=recipe, device=device)


def _final(sd: SearchDir, tuner: Finetuner, scored: dict[str, Any], batches: Batches, device: torch.device,
           scorer: Scorer | None, retest: bool, seconds_ft: float) -> dict[str, Any]:
    """The final evaluation of a finetuned candidate, its retest and the scorer's fields."""
    model, seed = tuner.model, scored[R.SEED]
    attack = parse_attack(sd.config.eval_attack)
    acc, seconds = evaluate_candidate(model, batches, attack, seed, device, keep=scorer is not None)
    half = acc.n // 2
    record = {**scored, R.CLEAN_ACC: acc.clean_acc, R.PGD_ACC: acc.adv_acc, R.N_EVAL: acc.n, R.FILTERED_OUT: False,
              R.FINETUNE_EPOCHS: tuner.epochs_done, R.PGD_ACC_HALF: None, R.PGD_ACC_RETEST: None,
              "seconds_finetune": seconds_ft, "seconds_eval": seconds}
    if retest and half >= 1:
        second = _second_half(batches, half)
        again, _ = evaluate_candidate(model, second, attack, seed, device, key="retest")
        record[R.PGD_ACC_HALF] = float(acc.adv_hits[:half].double().mean())
        record[R.PGD_ACC_RETEST] = again.adv_acc
    if scorer is not None:
        record.update(scorer(model, ScoreContext(AFTER, batches, attack, seed, device, scored[R.ID], acc.adversarial,
                                                 seconds)))
    return record


def _second_half(batches: Batches, start: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The samples ``start:`` of ``batches``, in batches of the same size."""
    x = torch.cat([b[0] for b in batches])[start:]
    y = torch.cat([b[1] for b in batches])[start:]
    size = len(batches[0][1])
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def _diverged(scored: dict[str, Any], err: TrainingDiverged, seconds: float) -> dict[str, Any]:
    """The record of a candidate whose finetuning diverged: one such candidate must not stop a search of
    1,000 (and stop it again at every rerun)."""
    log.warning("candidate %d: %s; recorded without finetuned accuracies", scored[R.ID], err)
    reason = f"finetuning diverged in epoch {err.epoch}: {err.what} (lr {err.lr:.4g})"
    return {**scored, R.CLEAN_ACC: None, R.PGD_ACC: None, R.FILTERED_OUT: False, R.FINETUNE_EPOCHS: err.epoch,
            R.PGD_ACC_HALF: None, R.PGD_ACC_RETEST: None, "clean_acc_missing": reason, "pgd_acc_missing": reason,
            "seconds_finetune": seconds}


def _filtered(scored: dict[str, Any]) -> dict[str, Any]:
    reason = "filtered out before finetuning by the candidate filter"
    return {**scored, R.CLEAN_ACC: None, R.PGD_ACC: None, R.FILTERED_OUT: True, R.FINETUNE_EPOCHS: 0,
            R.PGD_ACC_HALF: None, R.PGD_ACC_RETEST: None, "clean_acc_missing": reason, "pgd_acc_missing": reason}


def _append(sd: SearchDir, kind: str, record: dict[str, Any]) -> None:
    rank = dist_info()[0]
    results.append_jsonl(sd.shard(kind, rank), with_provenance(sd, record, rank))


def _full(sd: SearchDir, supernet: SuperNet, todo: list[dict[str, Any]], keep: set[int], batches: Batches,
          device: torch.device, scorer: Scorer | None, progress: bool, total: int) -> None:
    retest = retest_ids(sd.config)
    bar = progress_bar(total, total - len(todo), "finetune candidates", progress)
    for scored in todo:
        if scored[R.ID] not in keep:
            _append(sd, "records", _filtered(scored))
            bar.update(1)
            continue
        t0 = time.perf_counter()
        tuner = candidate_tuner(sd, supernet, scored, device)
        try:
            for _ in range(sd.config.finetune.epochs):
                tuner.run_epoch(progress=False)
        except TrainingDiverged as err:
            _append(sd, "records", _diverged(scored, err, time.perf_counter() - t0))
        else:
            record = _final(sd, tuner, scored, batches, device, scorer, scored[R.ID] in retest,
                            time.perf_counter() - t0)
            _append(sd, "records", record)
        bar.update(1)
    bar.close()


def finetune_stage(sd: SearchDir, supernet: SuperNet, scored: dict[int, dict[str, Any]], *, device: torch.device,
                   scorer: Scorer | None = None, candidate_filter: CandidateFilter | None = None,
                   progress: bool = True) -> int:
    """Finetune and evaluate this process's candidates by ``config.finetune_schedule``, resuming from
    the files on disk; returns how many final records this call wrote.

    Args:
        sd: the run folder.
        supernet: the trained supernet the candidates inherit from.
        scored: every candidate's first-pass record by id (:func:`robnet.search.stages.score_stage`).
        device: where to finetune.
        scorer: adds fields to each final record (e.g. fspkit's FSP distances after finetuning).
        candidate_filter: from the first-pass records, the ids to finetune (None: all).
        progress: tqdm bars (first process only).
    """
    rank, world = dist_info()
    ordered = [scored[i] for i in sorted(scored)]
    keep = candidate_filter(ordered) if candidate_filter is not None else set(scored)
    batches = sd.eval_batches(device)
    final = sd.read_shards("records", repair_rank=rank)
    mine = [r for r in ordered if r[R.ID] % world == rank]
    todo = [r for r in mine if r[R.ID] not in final]
    if sd.config.finetune_schedule == "halving":
        _halving(sd, supernet, ordered, keep, batches, device, scorer, progress)
    else:
        _full(sd, supernet, todo, keep, batches, device, scorer, progress, len(mine))
    sd.barrier()
    return len(todo)


# --------------------------------------------------------------------------- successive halving
def _race_epoch(sd: SearchDir, supernet: SuperNet, scored: dict[str, Any], epoch: int, batches: Batches,
                device: torch.device) -> None:
    """One more epoch of a racing candidate, from its saved state; its state and rung record."""
    t0 = time.perf_counter()
    tuner = candidate_tuner(sd, supernet, scored, device)
    path = sd.state_path(scored[R.ID])
    if epoch > 1 or path.exists():
        tuner.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    try:
        if tuner.epochs_done < epoch:  # a state saved just before a kill already holds this epoch
            tuner.run_epoch(progress=False)
            atomic_write(path, lambda f: torch.save(tuner.state_dict(), f))
    except TrainingDiverged as err:
        _append(sd, "records", _diverged(scored, err, time.perf_counter() - t0))
        _append(sd, "rungs", {R.ID: scored[R.ID], "epoch": epoch, R.PGD_ACC: None, "diverged": True})
        return
    acc, _ = evaluate_candidate(tuner.model, batches, parse_attack(sd.config.eval_attack), scored[R.SEED], device)
    _append(sd, "rungs", {R.ID: scored[R.ID], "epoch": epoch, R.PGD_ACC: acc.adv_acc, R.CLEAN_ACC: acc.clean_acc,
                          "seconds_finetune": time.perf_counter() - t0})


def _stop(sd: SearchDir, supernet: SuperNet, scored: dict[str, Any], batches: Batches, device: torch.device,
          scorer: Scorer | None, retest: set[int], seconds_ft: float) -> None:
    """The final record of a candidate that leaves the race (its state file is then removed)."""
    tuner = candidate_tuner(sd, supernet, scored, device)
    path = sd.state_path(scored[R.ID])
    tuner.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    _append(sd, "records", _final(sd, tuner, scored, batches, device, scorer, scored[R.ID] in retest, seconds_ft))
    path.unlink(missing_ok=True)


def _halving(sd: SearchDir, supernet: SuperNet, ordered: list[dict[str, Any]], keep: set[int], batches: Batches,
             device: torch.device, scorer: Scorer | None, progress: bool) -> None:
    rank, world = dist_info()
    by_id = {r[R.ID]: r for r in ordered}
    final = sd.read_shards("records", repair_rank=rank)
    for r in ordered:
        if r[R.ID] % world == rank and r[R.ID] not in keep and r[R.ID] not in final:
            _append(sd, "records", _filtered(r))
    retest = retest_ids(sd.config)
    racing = sorted(keep)
    epochs = sd.config.finetune.epochs
    sd.state_path(0).parent.mkdir(parents=True, exist_ok=True)
    for epoch in range(1, epochs + 1):
        rungs = _rungs(sd, repair_rank=rank)
        todo = [i for i in racing if i % world == rank and (i, epoch) not in rungs and i not in final]
        bar = progress_bar(len(racing), len(racing) - len(todo) * world, f"finetune epoch {epoch}/{epochs}", progress)
        for i in todo:
            _race_epoch(sd, supernet, by_id[i], epoch, batches, device)
            bar.update(world)
        bar.close()
        sd.barrier()
        rungs = _rungs(sd)
        final = sd.read_shards("records", repair_rank=rank)
        accs = {i: rungs[(i, epoch)][R.PGD_ACC] for i in racing if rungs[(i, epoch)][R.PGD_ACC] is not None}
        going = survivors(accs) if epoch < epochs else []
        for i in racing:
            if i % world == rank and i not in going and i not in final:
                spent = sum(rungs[(i, e)].get("seconds_finetune", 0.0) for e in range(1, epoch + 1))
                _stop(sd, supernet, by_id[i], batches, device, scorer, retest, spent)
        racing = going


def _rungs(sd: SearchDir, *, repair_rank: int | None = None) -> dict[tuple[int, int], dict[str, Any]]:
    return R.read_shards(sd.path, "rungs", config_hash=sd.config_hash, repair_rank=repair_rank,
                         key=lambda r: (r[R.ID], r["epoch"]))

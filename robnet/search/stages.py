"""The one-shot robust architecture search of Guo et al. (CVPR 2020, section 3), which the
official release never shipped (SPEC §4).

Stages, all on one run folder (``--out RUN_DIR``):

1. ``supernet``: PGD adversarial training of the weight-sharing supernet
   (:mod:`robnet.models.supernet`), one random architecture per batch, the same on every rank.
2. ``sample``: ``config.candidates`` distinct genotypes (seeded; optional conv budget).
3. ``finetune``: each candidate inherits the supernet's weights, has its BatchNorm statistics
   recalibrated, is evaluated (clean and PGD accuracy on the validation split), then
   PGD-finetuned for K epochs and evaluated again. An optional ``scorer`` adds fields to each
   candidate's record (fspkit plugs in its FSP distances and proxies this way: robnet never
   imports fspkit), and an optional ``candidate_filter`` chooses, from the scores of every
   candidate, which ones are finetuned (the paper's FSP filter).
4. ``report``: progress, ETA, the top-k table and the command to train the best genotype.

Records are JSON Lines, one file per rank (``scores.rank{R}.jsonl`` for the first pass,
``records.rank{R}.jsonl`` for the final one), appended and fsynced per candidate; candidates are
sharded over ranks by id (``id % world == rank``) and each is processed in one process, so a
rerun of the same command after a kill continues where it stopped (no candidate lost or
duplicated; a torn last line is dropped and redone) and one CPU, one GPU or a cluster produce
the same records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robnet.attacks.spec import AttackConfig, make_attack, parse_attack
from robnet.data.loader import DeviceLoader
from robnet.io import results
from robnet.models.genotype import Genotype
from robnet.search.candidate import accuracy, count_flops, count_params, recalibrate_bn
from robnet.search.config import SearchConfig
from robnet.search.rundir import SearchDir, records_path, scores_path

__all__ = ["CandidateFilter", "ScoreContext", "Scorer", "finetune_stage", "genotype_stats"]

log = logging.getLogger(__name__)

BEFORE = "before_finetune"
AFTER = "after_finetune"


@dataclass(frozen=True)
class ScoreContext:
    """What a scorer gets besides the candidate network.

    Attributes:
        stage: ``"before_finetune"`` (inherited weights, BN recalibrated) or ``"after_finetune"``.
        batches: the candidate's validation batches on the device (the same for every candidate).
        attack: the search's evaluation attack (its settings, as recorded).
        attack_fn: ``attack_fn(key)`` binds that attack to a random-start generator seeded from
            ``(seed, key)``: ``attack_fn("fsp")(model, x, y) -> x_adv``.
        seed: this candidate's seed (derive further seeds from it).
        device: where the network lives.
        candidate_id: the candidate's id.
        adversarial: the adversarial batches the stage's accuracy evaluation of this network
            made (one per batch; empty when not given); :meth:`replay_attack` hands them out, so
            a scorer that needs adversarial inputs does not run the attack a second time.
        adversarial_seconds: what that evaluation cost (the attack's share of a scorer's cost when
            it replays the batches).
    """

    stage: str
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]]
    attack: AttackConfig
    seed: int
    device: torch.device
    candidate_id: int
    adversarial: Sequence[torch.Tensor] = ()
    adversarial_seconds: float = 0.0

    def replay_attack(self) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
        """An attack that returns :attr:`adversarial`'s batches in order (one pass over
        :attr:`batches`), checking that each call's input is the batch it was made from."""
        if len(self.adversarial) != len(self.batches):
            raise ValueError(f"replay_attack: {len(self.adversarial)} adversarial batches for {len(self.batches)} "
                             "batches")
        calls = iter(range(len(self.batches)))

        def replay(_model: nn.Module, x: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
            i = next(calls, None)
            if i is None or x.shape != self.batches[i][0].shape or not torch.equal(x, self.batches[i][0]):
                raise ValueError("replay_attack: called with other inputs than the context's batches, in order")
            return self.adversarial[i]

        return replay

    def attack_fn(self, key: str) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
        gen = torch.Generator(device=self.device).manual_seed(results.derive_seed(self.seed, key))
        return make_attack(self.attack, generator=gen)


Scorer = Callable[[nn.Module, ScoreContext], dict[str, Any]]
CandidateFilter = Callable[[list[dict[str, Any]]], set[int]]


def genotype_stats(genotype: Genotype) -> dict[str, Any]:
    """Architecture statistics recorded per candidate (SPEC §2): density, sep-convs and
    direct-edge convs per cell (means over cells: integers for cell-based genotypes), bit vector."""
    convs = genotype.num_convs()
    direct = genotype.direct_edge_convs()

    def mean(v: list[int]) -> float:
        return v[0] if len(v) == 1 else sum(v) / len(v)

    return {"genotype": str(genotype), "bits": genotype.bits(), "density": genotype.density(),
            "convs": mean(convs), "direct_convs": mean(direct)}


def _eval_batches(sd: SearchDir, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    cfg = sd.config
    _, val = sd.split()
    if cfg.eval_samples is not None:
        if cfg.eval_samples > len(val):
            raise ValueError(f"eval_samples {cfg.eval_samples} is larger than the validation split ({len(val)})")
        val = val.subset(range(cfg.eval_samples))
    return list(DeviceLoader(val, batch_size=cfg.eval_batch_size, device=device))


def _evaluate(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], attack: AttackConfig,
              seed: int, device: torch.device, *, keep: bool) -> tuple[float, float, float, tuple[torch.Tensor, ...]]:
    """(clean acc, attacked acc, seconds, adversarial batches if ``keep``) of the search's attack,
    seeded from ``(seed, "eval-attack")``."""
    gen = torch.Generator(device=device).manual_seed(results.derive_seed(seed, "eval-attack"))
    t0 = time.perf_counter()
    acc = accuracy(model, batches, make_attack(attack, generator=gen), keep_adversarial=keep)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return acc.clean_acc, acc.adv_acc, time.perf_counter() - t0, acc.adversarial


def _score_candidate(sd: SearchDir, supernet: Any, cand: dict[str, Any], batches: Sequence[Any],
                     train_loader: DeviceLoader, device: torch.device, scorer: Scorer | None) -> dict[str, Any]:
    """First pass: inherited weights, BN recalibration, accuracy before finetuning, scorer fields."""
    cfg = sd.config
    genotype = Genotype.parse(cand["genotype"])
    seed = results.derive_seed(cfg.seed, "candidate", cand["id"])
    t0 = time.perf_counter()
    model = supernet.extract(genotype).to(device)
    train_loader.seed = results.derive_seed(seed, "bn") % (2 ** 31)
    recalibrate_bn(model, train_loader, max_batches=cfg.bn_batches)
    seconds_inherit = time.perf_counter() - t0
    attack = parse_attack(cfg.eval_attack)
    clean, adv, seconds, adversarial = _evaluate(model, batches, attack, seed, device, keep=scorer is not None)
    record: dict[str, Any] = {"id": cand["id"], **genotype_stats(genotype), "budget": cfg.budget_of(cand["id"]),
                              "params": count_params(model),
                              "flops": count_flops(model, tuple(batches[0][0].shape[1:])),
                              "clean_acc_before_finetune": clean, "pgd_acc_before_finetune": adv,
                              "seconds_pgd_before": seconds, "seed": seed}
    if scorer is not None:
        ctx = ScoreContext(BEFORE, batches, attack, seed, device, cand["id"], adversarial, seconds)
        record.update(scorer(model, ctx))
    record["seconds_inherit"] = seconds_inherit  # weight copy + BN recalibration
    record["seconds_first_pass"] = time.perf_counter() - t0  # all of the above, scorer included
    return record


def _finetune_candidate(sd: SearchDir, supernet: Any, scored: dict[str, Any], batches: Sequence[Any],
                        device: torch.device, scorer: Scorer | None, progress: bool) -> dict[str, Any]:
    """Second pass: K epochs of PGD finetuning from the inherited weights, then evaluation.

    A candidate whose finetuning diverges is recorded with null accuracies and the reason: one
    such candidate must not stop a search of 1,000 (and stop it again at every rerun).
    """
    from robnet.train.loop import TrainingDiverged, finetune

    cfg = sd.config
    genotype = Genotype.parse(scored["genotype"])
    seed = scored["seed"]
    model = supernet.extract(genotype).to(device)
    train_part, _ = sd.split()
    ft_config = _replace_seed(cfg.finetune, seed)
    t0 = time.perf_counter()
    try:
        finetune(model, train_part, epochs=cfg.finetune.epochs, config=ft_config, device=device, progress=progress)
    except TrainingDiverged as err:
        log.warning("candidate %d: %s; recorded without finetuned accuracies", scored["id"], err)
        reason = f"finetuning diverged in epoch {err.epoch}: {err.what} (lr {err.lr:.4g})"
        return {**scored, "clean_acc": None, "pgd_acc": None, "filtered_out": False, "clean_acc_missing": reason,
                "pgd_acc_missing": reason, "seconds_finetune": time.perf_counter() - t0}
    seconds_ft = time.perf_counter() - t0
    attack = parse_attack(cfg.eval_attack)
    clean, adv, seconds_eval, adversarial = _evaluate(model, batches, attack, seed, device, keep=scorer is not None)
    record = {**scored, "clean_acc": clean, "pgd_acc": adv, "filtered_out": False, "seconds_finetune": seconds_ft}
    if scorer is not None:
        record.update(scorer(model, ScoreContext(AFTER, batches, attack, seed, device, scored["id"], adversarial,
                                                 seconds_eval)))
    return record


def _replace_seed(config: Any, seed: int) -> Any:
    import dataclasses

    return dataclasses.replace(config, seed=seed % (2 ** 31))


def _filtered_record(scored: dict[str, Any]) -> dict[str, Any]:
    reason = "filtered out before finetuning by the candidate filter"
    return {**scored, "clean_acc": None, "pgd_acc": None, "filtered_out": True,
            "clean_acc_missing": reason, "pgd_acc_missing": reason}


def _bar(total: int, initial: int, desc: str, progress: bool, rank: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="cand",
                disable=True if not progress or rank else None)


def finetune_stage(sd: SearchDir, *, device: torch.device, scorer: Scorer | None = None,
                   candidate_filter: CandidateFilter | None = None, progress: bool = True) -> int:
    """Run both candidate passes for this rank's shard; returns the number of candidates this
    call finished. Resumes from the records already on disk (every rank's shards are read, so a
    change in the number of processes between runs loses and repeats nothing)."""
    from robnet.utils import dist_info

    rank, world = dist_info()
    supernet = sd.load_supernet(device)
    candidates = sd.read_candidates()
    batches = _eval_batches(sd, device)
    train_part, _ = sd.split()
    train_loader = DeviceLoader(train_part, batch_size=sd.config.eval_batch_size, device=device, shuffle=True)
    mine = [c for c in candidates if c["id"] % world == rank]
    done = 0

    scored = sd.read_shards("scores", repair_rank=rank)
    todo = [c for c in mine if c["id"] not in scored]
    bar = _bar(len(mine), len(mine) - len(todo), "score candidates", progress, rank)
    for cand in todo:
        record = _score_candidate(sd, supernet, cand, batches, train_loader, device, scorer)
        results.append_jsonl(scores_path(sd.path, rank), _with_provenance(sd, record, rank))
        bar.update(1)
    bar.close()

    sd.barrier()
    scored = sd.read_shards("scores", repair_rank=rank)
    missing = [c["id"] for c in candidates if c["id"] not in scored]
    if missing:
        raise ValueError(f"{len(missing)} candidates have no first-pass score after all ranks finished "
                         f"(e.g. id {missing[0]}); rerun the same command to complete them")
    ordered = [scored[c["id"]] for c in candidates]
    keep = candidate_filter(ordered) if candidate_filter is not None else {r["id"] for r in ordered}

    final = sd.read_shards("records", repair_rank=rank)
    todo2 = [scored[c["id"]] for c in mine if c["id"] not in final]
    bar = _bar(len(mine), len(mine) - len(todo2), "finetune candidates", progress, rank)
    for rec in todo2:
        if rec["id"] in keep:
            out = _finetune_candidate(sd, supernet, rec, batches, device, scorer, progress=False)
        else:
            out = _filtered_record(rec)
        results.append_jsonl(records_path(sd.path, rank), _with_provenance(sd, out, rank))
        done += 1
        bar.update(1)
    bar.close()
    sd.barrier()
    return done


def _with_provenance(sd: SearchDir, record: dict[str, Any], rank: int) -> dict[str, Any]:
    return {**record, "config_hash": sd.config_hash, "versions": results.versions(), "rank": rank}


# --------------------------------------------------------------------------- sample / report
def sample_stage(sd: SearchDir) -> list[Genotype]:
    """Sample the candidates (rank 0 writes ``candidates.json``); idempotent: a folder that already
    holds them keeps them (they are a pure function of the config, which the folder pins)."""
    from robnet.search.config import sample_candidates
    from robnet.utils import dist_info

    if sd.has_candidates():
        return [Genotype.parse(c["genotype"]) for c in sd.read_candidates()]
    genotypes = sample_candidates(sd.config)
    if dist_info()[0] == 0:
        sd.write_candidates(genotypes)
    sd.barrier()
    return genotypes


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _supernet_progress(sd: SearchDir) -> tuple[int, int]:
    import csv

    log_csv = sd.supernet_dir / "log.csv"
    done = 0
    if log_csv.exists():
        with log_csv.open(newline="") as f:
            done = sum(1 for _ in csv.DictReader(f))
    return done, sd.config.supernet.epochs


def report_text(sd: SearchDir, *, top: int = 10) -> str:
    """Progress (done/total, ETA), the top-``top`` candidates by PGD accuracy after finetuning, and
    the command that trains the best genotype from scratch."""
    cfg = sd.config
    lines = [f"search {sd.path} (config {sd.config_hash}; {cfg.data}, C={cfg.C}, {cfg.layers} cells, "
             f"{'cell-free' if cfg.cell_free else 'cell-based'}, budget {cfg.budget}, attack {cfg.eval_attack})"]
    ep_done, ep_total = _supernet_progress(sd)
    lines.append(f"supernet   {ep_done}/{ep_total} epochs")
    if not sd.has_candidates():
        lines.append(f"candidates not sampled yet (next: robnet search sample --out {sd.path})")
        return "\n".join(lines)
    n = len(sd.read_candidates())
    scored = sd.read_shards("scores")
    final = sd.read_shards("records")
    filtered = sum(1 for r in final.values() if r.get("filtered_out"))
    per_score = _mean([r["seconds_first_pass"] for r in scored.values() if "seconds_first_pass" in r])
    per_ft = _mean([r["seconds_finetune"] for r in final.values() if r.get("seconds_finetune") is not None])
    world = max(1, int(_last_world(sd)))
    eta = 0.0
    if per_score is not None:
        eta += per_score * (n - len(scored)) / world
    if per_ft is not None:
        eta += per_ft * (n - len(final) - 0) / world
    known = per_score is not None and (per_ft is not None or len(final) == n)
    lines.append(f"scored     {len(scored)}/{n}")
    lines.append(f"finished   {len(final)}/{n}" + (f" ({filtered} filtered out before finetuning)" if filtered else ""))
    if len(final) < n:
        lines.append(f"ETA        {_fmt_seconds(eta) if known else 'unknown until a candidate finishes'}"
                     f" at {world} process(es)")
    rows = sorted((r for r in final.values() if r.get("pgd_acc") is not None),
                  key=lambda r: (-r["pgd_acc"], r["id"]))[:top]
    if not rows:
        return "\n".join(lines)
    lines.append("")
    lines.append(f"top {len(rows)} by PGD accuracy after finetuning (validation split, {cfg.eval_attack}):")
    lines.append(f"{'id':>5} {'pgd':>6} {'clean':>6} {'pgd@0':>6} {'density':>7} {'convs':>5} {'params':>9}  genotype")
    for r in rows:
        lines.append(f"{r['id']:>5} {r['pgd_acc']:6.3f} {r['clean_acc']:6.3f} {r['pgd_acc_before_finetune']:6.3f} "
                     f"{r['density']:7.3f} {r['convs']:5g} {r['params']:9,d}  {r['genotype']}")
    best = rows[0]
    model = "robnet_free" if cfg.cell_free else "robnet_large"
    lines.append("")
    lines.append("train the best genotype from scratch (the paper's protocol; add --data-dir, and torchrun for "
                 "several GPUs):")
    lines.append(f"  robnet train --model {model} --genotype '{best['genotype']}' --C {cfg.C} --layers {cfg.layers} "
                 f"--data {cfg.data} --out runs/search_best")
    return "\n".join(lines)


def _last_world(sd: SearchDir) -> int:
    import json

    try:
        inv = json.loads((sd.path / "search.json").read_text()).get("invocations") or []
    except (OSError, ValueError):
        return 1
    return int(inv[-1].get("world_size", 1)) if inv else 1


# --------------------------------------------------------------------------- supernet
def step_genotype(config: SearchConfig, epoch: int, step: int) -> Genotype:
    """The architecture the supernet trains at ``(epoch, step)``: uniformly random bits (SPEC §4.1),
    a pure function of the config's seed, so every rank draws the same one without communicating."""
    import random

    from robnet.models.genotype import sample

    rng = random.Random(results.derive_seed(config.seed, "supernet-arch", epoch, step))
    return sample(rng, cell_free=config.cell_free, layers=config.layers)


def _check_same_on_ranks(genotype: Genotype, device: torch.device) -> None:
    """Under DDP, fail loudly if ranks ever train different architectures in one step."""
    import hashlib

    from robnet.utils import dist_info

    if dist_info()[1] < 2:
        return
    h = int.from_bytes(hashlib.blake2b(str(genotype).encode(), digest_size=7).digest(), "big")
    t = torch.tensor([h, -h], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    if int(t[0]) != h or -int(t[1]) != h:
        raise RuntimeError("ranks sampled different supernet architectures in one step; every rank must run "
                           "the same robnet version and search config")


def supernet_stage(sd: SearchDir, *, device: torch.device, progress: bool = True,
                   max_epochs: int | None = None) -> None:
    """PGD adversarial training of the supernet into ``RUN_DIR/supernet`` (resumable like
    ``robnet train``: a rerun continues from the last finished epoch)."""
    from robnet.train.loop import train

    cfg = sd.config
    done, total = _supernet_progress(sd)
    if done >= total:
        log.info("supernet already trained (%d/%d epochs)", done, total)
        return
    train_part, _ = sd.split()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(results.derive_seed(cfg.seed, "supernet-init") % (2 ** 63))
        net = sd.build_supernet()

    def step_args(epoch: int, step: int) -> tuple[Genotype]:
        g = step_genotype(cfg, epoch, step)
        _check_same_on_ranks(g, device)
        return (g,)

    resume = (sd.supernet_dir / "run.json").exists() or (sd.supernet_dir / "last.pt").exists()
    train(net, train_part, config=cfg.supernet, out_dir=sd.supernet_dir, arch=sd.supernet_arch(), val_data=None,
          device=device, resume=resume, progress=progress, max_epochs=max_epochs,
          meta={"search": str(sd.path), "config_hash": sd.config_hash}, step_args=step_args)

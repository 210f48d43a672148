"""The stages of the one-shot search before finetuning: the supernet, the candidates, the first pass.

1. :func:`supernet_stage`: PGD adversarial training of the weight-sharing supernet
   (:mod:`robnet.models.supernet`), one random architecture per batch, the same on every process.
2. :func:`sample_stage`: ``config.candidates`` distinct genotypes (seeded; optional conv budget).
3. :func:`score_stage`: each candidate inherits the supernet's weights, has its BatchNorm
   statistics recalibrated and is evaluated (clean and PGD accuracy on the validation split); an
   optional ``scorer`` adds fields (fspkit plugs in its FSP distances and proxies this way: robnet
   never imports fspkit). Its records feed the candidate filter and the finetuning
   (:mod:`robnet.search.finetune`).

Candidates are sharded over processes by id (``id % world == rank``), each processed in one
process, and every record is appended and fsynced, so a rerun after a kill continues where it
stopped and one CPU, one GPU or a cluster produce the same records (docs/search.md).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from robnet.attacks.config import AttackConfig, make_attack
from robnet.attacks.spec import parse_attack
from robnet.data.loader import DeviceLoader
from robnet.io import results
from robnet.models.genotype import Genotype, sample
from robnet.models.supernet import SuperNet
from robnet.search import records as R
from robnet.search.candidate import AccuracyResult, accuracy, count_flops, count_params, recalibrate_bn
from robnet.search.config import SearchConfig, sample_candidates
from robnet.search.rundir import SearchDir
from robnet.train.loop import TrainingDiverged
from robnet.train.run import train
from robnet.utils import dist_info

__all__ = ["CandidateFilter", "ScoreContext", "Scorer", "genotype_stats", "sample_stage", "score_stage",
           "step_genotype", "supernet_stage"]

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
        """The search's attack with a random start seeded from ``(seed, key)``."""
        gen = torch.Generator(device=self.device).manual_seed(results.derive_seed(self.seed, key))
        return make_attack(self.attack, generator=gen)


Scorer = Callable[[nn.Module, ScoreContext], dict[str, Any]]
CandidateFilter = Callable[[list[dict[str, Any]]], set[int]]


def genotype_stats(genotype: Genotype) -> dict[str, Any]:
    """Architecture statistics recorded per candidate (docs/design.md §2): density, sep-convs and
    direct-edge convs per cell (means over cells: integers for cell-based genotypes), bit vector."""
    convs = genotype.num_convs()
    direct = genotype.direct_edge_convs()

    def mean(v: list[int]) -> float:
        return v[0] if len(v) == 1 else sum(v) / len(v)

    return {R.GENOTYPE: str(genotype), R.BITS: genotype.bits(), R.DENSITY: genotype.density(),
            R.CONVS: mean(convs), R.DIRECT_CONVS: mean(direct)}


def candidate_seed(config: SearchConfig, candidate_id: int) -> int:
    """The seed every random choice of one candidate's evaluation derives from."""
    return results.derive_seed(config.seed, "candidate", candidate_id)


def evaluate_candidate(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], attack: AttackConfig,
                       seed: int, device: torch.device, *, key: str = "eval-attack",
                       keep: bool = False) -> tuple[AccuracyResult, float]:
    """The search's attack (random start seeded from ``(seed, key)``) on ``batches``: the per-sample
    hits (and the adversarial batches with ``keep``) and the seconds it took."""
    gen = torch.Generator(device=device).manual_seed(results.derive_seed(seed, key))
    t0 = time.perf_counter()
    acc = accuracy(model, batches, make_attack(attack, generator=gen), keep_adversarial=keep)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return acc, time.perf_counter() - t0


def with_provenance(sd: SearchDir, record: dict[str, Any], rank: int) -> dict[str, Any]:
    """A record as written: its fields, the config hash, the versions and the writing process."""
    return {**record, R.CONFIG_HASH: sd.config_hash, R.VERSIONS: results.versions(), R.RANK: rank}


def progress_bar(total: int, initial: int, desc: str, progress: bool, unit: str = "cand") -> Any:
    """A tqdm bar on stderr, shown by the first process only (and only on a terminal)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit,
                disable=True if not progress or dist_info()[0] else None)


# --------------------------------------------------------------------------- the first pass
def _score_candidate(sd: SearchDir, supernet: SuperNet, cand: dict[str, Any], batches: Sequence[Any],
                     train_loader: DeviceLoader, device: torch.device, scorer: Scorer | None) -> dict[str, Any]:
    """Inherited weights, BN recalibration, accuracy before finetuning, scorer fields."""
    cfg = sd.config
    genotype = Genotype.parse(cand[R.GENOTYPE])
    seed = candidate_seed(cfg, cand[R.ID])
    t0 = time.perf_counter()
    model = supernet.extract(genotype).to(device)
    train_loader.seed = results.derive_seed(seed, "bn") % (2 ** 31)
    recalibrate_bn(model, train_loader, max_batches=cfg.bn_batches)
    seconds_inherit = time.perf_counter() - t0
    attack = parse_attack(cfg.eval_attack)
    acc, seconds = evaluate_candidate(model, batches, attack, seed, device, keep=scorer is not None)
    flops = count_flops(model, tuple(batches[0][0].shape[1:]))
    record: dict[str, Any] = {R.ID: cand[R.ID], **genotype_stats(genotype), R.BUDGET: cfg.budget_of(cand[R.ID]),
                              R.PARAMS: count_params(model), R.FLOPS: flops,
                              R.CLEAN_ACC_BEFORE: acc.clean_acc, R.PGD_ACC_BEFORE: acc.adv_acc, R.N_EVAL: acc.n,
                              "seconds_pgd_before": seconds, R.SEED: seed}
    if scorer is not None:
        ctx = ScoreContext(BEFORE, batches, attack, seed, device, cand[R.ID], acc.adversarial, seconds)
        record.update(scorer(model, ctx))
    record["seconds_inherit"] = seconds_inherit  # weight copy + BN recalibration
    record["seconds_first_pass"] = time.perf_counter() - t0  # all of the above, scorer included
    return record


def score_stage(sd: SearchDir, supernet: SuperNet, *, device: torch.device, scorer: Scorer | None = None,
                progress: bool = True) -> dict[int, dict[str, Any]]:
    """The first pass over this process's candidates (resuming from the shards on disk); returns
    every process's first-pass records by id once all processes are done.

    Raises:
        ValueError: a candidate without a first-pass record after every process finished.
    """
    rank, world = dist_info()
    candidates = sd.read_candidates()
    batches = sd.eval_batches(device)
    train_part, _ = sd.split()
    train_loader = DeviceLoader(train_part, batch_size=sd.config.eval_batch_size, device=device, shuffle=True)
    mine = [c for c in candidates if c[R.ID] % world == rank]
    done = sd.read_shards("scores", repair_rank=rank)
    todo = [c for c in mine if c[R.ID] not in done]
    bar = progress_bar(len(mine), len(mine) - len(todo), "score candidates", progress)
    for cand in todo:
        record = _score_candidate(sd, supernet, cand, batches, train_loader, device, scorer)
        results.append_jsonl(sd.shard("scores", rank), with_provenance(sd, record, rank))
        bar.update(1)
    bar.close()
    sd.barrier()
    scored = sd.read_shards("scores")
    missing = [c[R.ID] for c in candidates if c[R.ID] not in scored]
    if missing:
        raise ValueError(f"{len(missing)} candidates have no first-pass score after all processes finished "
                         f"(e.g. id {missing[0]}); rerun the same command to complete them")
    return scored


# --------------------------------------------------------------------------- sample
def sample_stage(sd: SearchDir) -> list[Genotype]:
    """Sample the candidates (the first process writes ``candidates.json``); idempotent: a folder that
    already holds them keeps them (they are a pure function of the config, which the folder pins).

    Every process looks before any writes (a barrier between): a process that looked only after the
    first one wrote would skip the barrier the others wait at, and the next one would pair wrongly."""
    have = sd.has_candidates()
    sd.barrier()
    if have:
        return [Genotype.parse(c[R.GENOTYPE]) for c in sd.read_candidates()]
    genotypes = sample_candidates(sd.config)
    if dist_info()[0] == 0:
        sd.write_candidates(genotypes)
    sd.barrier()
    return genotypes


# --------------------------------------------------------------------------- supernet
def supernet_progress(sd: SearchDir) -> tuple[int, int]:
    """(epochs done, epochs) of the supernet's training, from its ``log.csv``."""
    log_csv = sd.supernet_dir / "log.csv"
    done = 0
    if log_csv.exists():
        with log_csv.open(newline="") as f:
            done = sum(1 for _ in csv.DictReader(f))
    return done, sd.config.supernet.epochs


def step_genotype(config: SearchConfig, epoch: int, step: int) -> Genotype:
    """The architecture the supernet trains at ``(epoch, step)``: uniformly random bits (paper §3.2),
    a pure function of the config's seed, so every process draws the same one without communicating."""
    rng = random.Random(results.derive_seed(config.seed, "supernet-arch", epoch, step))
    return sample(rng, cell_free=config.cell_free, layers=config.layers)


def _check_same_on_ranks(genotype: Genotype, device: torch.device) -> None:
    """Under DDP, fail loudly if processes ever train different architectures in one step."""
    if dist_info()[1] < 2:
        return
    h = int.from_bytes(hashlib.blake2b(str(genotype).encode(), digest_size=7).digest(), "big")
    t = torch.tensor([h, -h], dtype=torch.int64, device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    if int(t[0]) != h or -int(t[1]) != h:
        raise RuntimeError("processes sampled different supernet architectures in one step; every process must "
                           "run the same robnet version and search config")


def supernet_stage(sd: SearchDir, *, device: torch.device, progress: bool = True,
                   max_epochs: int | None = None) -> None:
    """PGD adversarial training of the supernet into ``RUN_DIR/supernet``, under DDP over the search's
    processes (resumable like ``robnet train``: a rerun continues from the last finished epoch).

    Raises:
        TrainingDiverged: the supernet's loss or weights became non-finite (with the search's hint).
    """
    cfg = sd.config
    done, total = supernet_progress(sd)
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
    try:
        train(net, train_part, config=cfg.supernet, out_dir=sd.supernet_dir, arch=sd.supernet_arch(),
              val_data=None, device=device, resume=resume, progress=progress, max_epochs=max_epochs,
              meta={"search": str(sd.path), "config_hash": sd.config_hash}, step_args=step_args)
    except TrainingDiverged as err:
        raise TrainingDiverged(epoch=err.epoch, what=err.what, lr=err.lr, kept=err.kept,
                               hint=f"start the search again with a lower --supernet-lr (now {err.lr:.4g} at that "
                                    "epoch) in another --out, or with --overwrite") from None

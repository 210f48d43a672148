"""Realistic synthetic search records with known planted effects (for the stats, study and plot tests).

``make_records(n, ...)`` returns one dict per candidate with the columns of a ``fspkit search``
run (see ``fspkit.stats.study``): a sampled genotype with its bits, density, conv counts and a
parameter count, accuracies before and after finetuning, per-cell FSP distances (raw, relative and
activation scale), the three zero-cost proxies and their timings. The planted truth:

* Finding #1/#2: final PGD accuracy rises with density (every bit helps: conv bits by
  ``DENSITY_EFFECT * CONV_WEIGHT`` per unit of conv density, identity bits by ``DENSITY_EFFECT``),
  plus ``DIRECT_EFFECT`` per direct-edge conv, multiplied by ``(14 - budget) / 14`` (direct convs
  help most under small budgets; unconstrained candidates count as budget 7).
* Finding #3: the *relative* FSP distance of cell ``c`` falls with robustness by
  ``REL_SLOPE * depth(c)`` per standard deviation of final PGD accuracy, where depth runs from 0
  (first cell) to 1 (last cell): no effect in the first cell, the strongest in the deepest. The
  activation scale grows with depth and with density but is independent of robustness otherwise,
  and the raw distance is ``fsp_rel * fsp_scale`` (so it partly tracks the scale, docs/design.md §5).
* Proxies: ``pgd_acc_before_finetune`` is final PGD accuracy minus 0.1 plus small noise (strong),
  ``proxy_grad_norm`` is weakly positive, ``proxy_synflow`` tracks the parameter count,
  ``proxy_naswot`` is pure noise.
* Measurement: each accuracy rests on ``n_eval`` validation images; a ``retest`` share of the
  candidates carries ``pgd_acc_half`` and ``pgd_acc_retest``, two independent half-size measurements
  (binomial noise around the final accuracy).

:func:`make_capacity_records` makes records where PGD accuracy depends on the parameter count alone
(``density_effect=0``: density merely correlates with it through the conv bits) or also on the
identity-bit density at fixed capacity (``density_effect > 0``).

Everything is drawn from ``numpy.random.default_rng(seed)`` and ``random.Random(seed)`` (the
genotype sampler): the same arguments give the same records.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from robnet.models.genotype import deep_cells, sample

DENSITY_EFFECT = 0.25
CONV_WEIGHT = 2.0
DIRECT_EFFECT = 0.05
REL_SLOPE = 0.6
NOISE = 0.01
FSP_COLUMNS = ("fsp", "fsp_before_finetune", "fsp_rel", "fsp_rel_before_finetune", "fsp_scale",
               "fsp_scale_before_finetune", "fsp_deep", "fsp_deep_before_finetune", "seconds_fsp")
PROXY_COLUMNS = ("proxy_grad_norm", "proxy_synflow", "proxy_naswot", "seconds_grad_norm", "seconds_synflow",
                 "seconds_naswot")


def _genotypes(n: int, seed: int, cells: int, cell_free: bool, budgets: Sequence[int | None]) -> list[Any]:
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[Any, int | None]] = []
    tries = 0
    while len(out) < n:
        budget = budgets[len(out) % len(budgets)]
        g = sample(rng, cell_free=cell_free, layers=cells, budget=budget)
        tries += 1
        if tries > 100 * n:
            raise ValueError(f"could not sample {n} distinct genotypes (budgets {budgets})")
        if str(g) not in seen:
            seen.add(str(g))
            out.append((g, budget))
    return out


def _fsp_fields(on: bool, after: tuple[np.ndarray, ...], before: tuple[np.ndarray, ...],
                rng: np.random.Generator) -> dict[str, Any]:
    """One record's FSP columns from its (raw, relative, scale) per-cell rows after and before finetuning."""
    deep = list(deep_cells(len(after[0])))  # the search's filter score: the mean over the deep cells
    return {
        "fsp": after[0].tolist() if on else None, "fsp_before_finetune": before[0].tolist(),
        "fsp_rel": after[1].tolist() if on else None, "fsp_rel_before_finetune": before[1].tolist(),
        "fsp_scale": after[2].tolist() if on else None, "fsp_scale_before_finetune": before[2].tolist(),
        "fsp_deep": float(after[0][deep].mean()) if on else None,
        "fsp_deep_before_finetune": float(before[0][deep].mean()),
        "filtered_out": not on, "seconds_fsp": float(0.2 + rng.uniform(0, 0.05)),
    }


def _proxy_fields(pgd: float, params: int, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "proxy_grad_norm": float(5.0 + 20.0 * pgd + rng.normal(0, 1.0)),
        "proxy_synflow": float(np.log(params) + rng.normal(0, 0.01)),
        "proxy_naswot": float(rng.normal(100.0, 5.0)),
        "seconds_grad_norm": float(0.05 + rng.uniform(0, 0.01)),
        "seconds_synflow": float(0.03 + rng.uniform(0, 0.01)),
        "seconds_naswot": float(0.04 + rng.uniform(0, 0.01)),
    }


def _accuracies(bits: np.ndarray, direct: np.ndarray, budgets: Sequence[int | None],
                rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(pgd, clean, pgd before finetuning, clean before finetuning) with the planted effects."""
    n = len(bits)
    conv_density, id_density = bits[:, 1::2].mean(axis=1), bits[:, 0::2].mean(axis=1)
    eff_budget = np.array([7 if b is None else b for b in budgets], dtype=float)
    pgd = (0.2 + DENSITY_EFFECT * (CONV_WEIGHT * conv_density + id_density) / 2
           + DIRECT_EFFECT * direct * (14 - eff_budget) / 14 + rng.normal(0, NOISE, n))
    pgd = np.clip(pgd, 0.0, 1.0)
    clean = np.clip(pgd + 0.3 + rng.normal(0, 0.02, n), 0.0, 1.0)
    pgd_before = np.clip(pgd - 0.1 + rng.normal(0, 0.01, n), 0.0, 1.0)
    clean_before = np.clip(pgd_before + 0.25 + rng.normal(0, 0.02, n), 0.0, 1.0)
    return pgd, clean, pgd_before, clean_before


def _kept(fsp_before: np.ndarray, keep: float | None) -> np.ndarray:
    """The FSP filter's kept candidates: the ``keep`` fraction with the smallest deep-cell mean distance."""
    kept = np.ones(len(fsp_before), dtype=bool)
    if keep is not None:
        order = np.argsort(fsp_before[:, list(deep_cells(fsp_before.shape[1]))].mean(axis=1), kind="stable")
        kept[:] = False
        kept[order[: int(np.ceil(keep * len(fsp_before)))]] = True
    return kept


def make_records(n: int = 60, *, seed: int = 0, cells: int = 5, cell_free: bool = False,
                 budgets: Sequence[int | None] = (None,), fsp: bool = True, proxies: bool = True,
                 fsp_keep: float | None = None, world_size: int = 1, n_eval: int = 1000,
                 retest: float = 0.5) -> list[dict[str, Any]]:
    """``n`` synthetic candidate records (see the module docstring for the planted effects).

    Args:
        n: number of candidates (distinct genotypes).
        seed: seed of every random draw.
        cells: number of cells in the network (the length of every per-cell list).
        cell_free: one cell per layer (``bits`` then has ``28 * cells`` entries).
        budgets: conv budgets cycled over the candidates (None: unconstrained sampling).
        fsp: include the FSP columns (a ``robnet search`` run has none).
        proxies: include the zero-cost proxy columns.
        fsp_keep: the FSP filter of ``fspkit search --fsp-keep``: only this fraction (smallest
            ``fsp_deep_before_finetune``) keep their after-finetuning columns; the others are
            ``filtered_out`` with nulls there.
        world_size: ranks the candidates are sharded over (``rank = id % world_size``).
        n_eval: validation images behind each accuracy.
        retest: share of the candidates (the first ones) measured twice on half the images.
    """
    rng = np.random.default_rng(seed)
    drawn = _genotypes(n, seed, cells, cell_free, list(budgets))
    bits = np.array([g.bits() for g, _ in drawn], dtype=float)  # (n, 28 * cells_in_genotype)
    conv_density = bits[:, 1::2].mean(axis=1)
    direct = np.array([np.mean(g.direct_edge_convs()) for g, _ in drawn])
    pgd, clean, pgd_before, clean_before = _accuracies(bits, direct, [b for _, b in drawn], rng)
    z = (pgd - pgd.mean()) / pgd.std()
    depth = np.linspace(0.0, 1.0, cells)  # (cells,)
    convs = np.array([np.mean(g.num_convs()) for g, _ in drawn])
    params = (20_000 + 1_500 * convs * cells + rng.integers(0, 200, n)).astype(int)

    def per_cell(noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = (1.0 + 2.0 * depth)[None, :] * (1.0 + conv_density)[:, None] * np.exp(rng.normal(0, 0.1, (n, cells)))
        rel = 0.05 * np.exp(-REL_SLOPE * depth[None, :] * z[:, None] + rng.normal(0, noise, (n, cells)))
        return rel * scale, rel, scale  # (n, cells) each

    fsp_after, rel_after, scale_after = per_cell(0.1)
    fsp_bef, rel_bef, scale_bef = per_cell(0.3)
    kept = _kept(fsp_bef, fsp_keep)
    records: list[dict[str, Any]] = []
    for i, (g, budget) in enumerate(drawn):
        on = bool(kept[i])
        r: dict[str, Any] = {
            "id": i, "genotype": str(g), "bits": [int(b) for b in bits[i]], "budget": budget,
            "density": float(g.density()), "convs": float(convs[i]), "direct_convs": float(direct[i]),
            "params": int(params[i]), "flops": int(params[i]) * 64,
            "clean_acc": float(clean[i]) if on else None, "pgd_acc": float(pgd[i]) if on else None,
            "clean_acc_before_finetune": float(clean_before[i]), "pgd_acc_before_finetune": float(pgd_before[i]),
            "seconds_pgd_before": float(0.5 + rng.uniform(0, 0.1)),
            "seconds_finetune": float(10.0 + rng.uniform(0, 1)) if on else None,
            "seed": 1000 + i, "config_hash": "0123456789abcdef", "versions": {"robnet": "0.1.0"},
            "rank": i % world_size, "n_eval": n_eval, "finetune_epochs": 3 if on else 0,
            "pgd_acc_half": None, "pgd_acc_retest": None,
        }
        if on and i < retest * n:  # two half-size measurements with binomial noise
            r["pgd_acc_half"], r["pgd_acc_retest"] = (float(v) for v in rng.binomial(n_eval // 2, pgd[i], 2)
                                                      / (n_eval // 2))
        if fsp:
            r.update(_fsp_fields(on, (fsp_after[i], rel_after[i], scale_after[i]),
                                 (fsp_bef[i], rel_bef[i], scale_bef[i]), rng))
        if proxies:
            r.update(_proxy_fields(float(pgd[i]), int(params[i]), rng))
        records.append(r)
    return records


def make_capacity_records(n: int = 90, *, seed: int = 0, density_effect: float = 0.0,
                          budgets: Sequence[int | None] = (4, 7, 10), cells: int = 5) -> list[dict[str, Any]]:
    """Records whose PGD accuracy depends on the parameter count (capacity) alone, plus
    ``density_effect`` times the identity-bit density (free: no parameters), plus noise.

    The parameter count grows with the conv count (clustered by budget) with a little noise, and the
    accuracy grows with its logarithm; density counts the conv bits too, so it correlates with the
    accuracy through capacity even when ``density_effect`` is 0.
    """
    rng = np.random.default_rng(seed + 7919)
    records = make_records(n, seed=seed, cells=cells, budgets=budgets, fsp=False, proxies=False, retest=0.0)
    bits = np.array([r["bits"] for r in records], dtype=float)
    id_density = bits[:, 0::2].mean(axis=1)
    convs = np.array([r["convs"] for r in records])
    params = (20_000 + 1_500 * convs * cells) * np.exp(rng.normal(0, 0.05, n))
    pgd = 0.25 + 0.08 * np.log(params / 20_000) + density_effect * id_density + rng.normal(0, 0.01, n)
    for r, p, a in zip(records, params, np.clip(pgd, 0, 1), strict=True):
        r.update(params=int(p), flops=int(p) * 64, pgd_acc=float(a), clean_acc=min(1.0, float(a) + 0.3),
                 pgd_acc_before_finetune=max(0.0, float(a) - 0.1))
    return records

"""FSP in the one-shot search: what ``fspkit search`` plugs into :mod:`robnet.search.stages`.

robnet's pipeline takes two callables and never imports fspkit:

* :class:`FSPScorer` (a ``scorer``): for every candidate, with the inherited weights (before
  finetuning) and again after finetuning, the per-cell clean-vs-PGD FSP distance L_l, the
  scale-free relative distance ||G(x) - G(x_adv)||^2 / ||G(x)||^2 and the activation scale
  ||G(x)||^2 (docs/design.md §5), on the search's validation batches and attack; before finetuning also
  the zero-cost proxies of :mod:`fspkit.proxies`, each with its cost in seconds.
* :func:`fsp_filter` (a ``candidate_filter``): from every candidate's first-pass record, the ids
  to finetune: the fraction ``keep`` with the smallest FSP distance of the deep cells (the paper
  dropped high-FSP candidates of the cell-free space before finetuning: Finding #3), or those
  under a threshold.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from fspkit.proxies import PROXIES, ProxyConfig, compute_proxies, proxy_record
from fspkit.score import score
from robnet.models.genotype import deep_cells

__all__ = ["FSPScorer", "FSPSearchConfig", "deep_fsp", "fsp_filter", "plugins"]


@dataclass(frozen=True, kw_only=True)
class FSPSearchConfig:
    """fspkit's settings of a search (recorded in the run folder beside robnet's config).

    Attributes:
        keep: fraction of candidates finetuned, those with the smallest deep-cell FSP distance
            before finetuning (None: no fraction filter).
        threshold: finetune only candidates whose deep-cell FSP distance is at most this (None:
            no threshold). ``keep`` and ``threshold`` are exclusive.
        proxies: zero-cost proxies computed on the inherited weights (empty: none).
        proxy_batch: images of the first validation batch the proxies see.
    """

    keep: float | None = None
    threshold: float | None = None
    proxies: tuple[str, ...] = PROXIES
    proxy_batch: int = 64

    def __post_init__(self) -> None:
        if self.keep is not None and self.threshold is not None:
            raise ValueError("give --fsp-keep or --fsp-threshold, not both")
        if self.keep is not None and (not math.isfinite(self.keep) or not 0 < self.keep <= 1):
            raise ValueError(f"--fsp-keep must be a fraction in (0, 1], got {self.keep}")
        if self.threshold is not None and (not math.isfinite(self.threshold) or self.threshold < 0):
            raise ValueError(f"--fsp-threshold must be a finite distance >= 0, got {self.threshold}")
        if self.proxies:
            ProxyConfig(proxies=tuple(self.proxies))  # validates the names
        if self.proxy_batch < 2:
            raise ValueError(f"proxy_batch must be >= 2 (NASWOT compares samples), got {self.proxy_batch}")

    def plugin(self) -> dict[str, Any]:
        """The settings as recorded in ``search.json`` (a changed filter is a different search)."""
        return {"fspkit": {**asdict(self), "proxies": list(self.proxies)}}


def deep_fsp(values: Sequence[float | None]) -> float | None:
    """Mean FSP distance of the deep cells (:func:`robnet.models.genotype.deep_cells`: the last third;
    as :meth:`fspkit.score.FSPReport.deep_mean`); None when one of them is missing or not finite."""
    if not values:
        return None
    deep = [values[i] for i in deep_cells(len(values))]
    if any(v is None or not math.isfinite(v) for v in deep):
        return None
    return sum(float(v) for v in deep if v is not None) / len(deep)


class FSPScorer:
    """The search's per-candidate scorer (see the module docstring)."""

    def __init__(self, config: FSPSearchConfig) -> None:
        self.config = config

    def __call__(self, model: nn.Module, ctx: Any) -> dict[str, Any]:
        suffix = "_before_finetune" if ctx.stage == "before_finetune" else ""
        t0 = time.perf_counter()
        # the adversarial batches of the search's own accuracy evaluation when it passes them (no
        # second attack), else a fresh attack with its own seed
        attack = ctx.replay_attack() if len(ctx.adversarial) else ctx.attack_fn("fsp-attack")
        report = score(model, ctx.batches, attack, seed=ctx.seed)
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        out: dict[str, Any] = {f"fsp{suffix}": report.fsp(), f"fsp_rel{suffix}": report.fsp_rel(),
                               f"fsp_scale{suffix}": report.fsp_scale(), f"fsp_strided{suffix}": report.fsp_strided(),
                               f"fsp_deep{suffix}": deep_fsp(report.fsp())}
        if suffix:
            # the cost of FSP as a standalone filter: the attack (here shared with the accuracy
            # evaluation when replayed) plus the fused scoring forward
            replayed = ctx.adversarial_seconds if len(ctx.adversarial) else 0.0
            out["seconds_fsp"] = time.perf_counter() - t0 + replayed
            if self.config.proxies:
                x, y = ctx.batches[0]
                k = min(len(x), self.config.proxy_batch)
                scores = compute_proxies(model, x[:k], y[:k], config=ProxyConfig(proxies=tuple(self.config.proxies)))
                out.update(proxy_record(scores))
        return out


def fsp_filter(config: FSPSearchConfig, records: list[dict[str, Any]]) -> set[int]:
    """The ids to finetune: every candidate without a filter; else the ``keep`` fraction with the
    smallest ``fsp_deep_before_finetune`` (ties broken by id; ``ceil(keep * n)`` kept), or those at
    most ``threshold``. A candidate whose distance is missing (not finite) is never kept by a filter."""
    ids = [int(r["id"]) for r in records]
    if config.keep is None and config.threshold is None:
        return set(ids)
    scored = [(r.get("fsp_deep_before_finetune"), int(r["id"])) for r in records]
    finite = [(s, i) for s, i in scored if s is not None and math.isfinite(s)]
    if config.threshold is not None:
        return {i for s, i in finite if s <= config.threshold}
    assert config.keep is not None
    n_keep = math.ceil(config.keep * len(records))
    return {i for _, i in sorted(finite)[:n_keep]}


def plugins(plugin: dict[str, Any]) -> tuple[FSPScorer, Callable[[list[dict[str, Any]]], set[int]]]:
    """The FSP scorer and filter of a run folder's pinned fspkit settings (``search.json``'s ``plugin``).

    Raises:
        ValueError: the folder holds a ``robnet search`` (no fspkit settings).
    """
    settings = plugin.get("fspkit")
    if settings is None:
        raise ValueError("this run folder was made by `robnet search` (no FSP scores): fspkit cannot add them "
                         "to a finished pass. Hint: use another --out for `fspkit search`")
    cfg = FSPSearchConfig(**{**settings, "proxies": tuple(settings.get("proxies", ()))})
    return FSPScorer(cfg), partial(fsp_filter, cfg)

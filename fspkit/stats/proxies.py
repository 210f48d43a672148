"""The proxy table: every cheap robustness score beside the free baselines, on the same candidates
(see :mod:`fspkit.stats.filtering` for the statistics of each row; docs/study.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from fspkit.stats.core import LEVEL, N_BOOT, RESAMPLE_MAX_N, Records, RngLike, _generator, column, has_column
from fspkit.stats.correlation import Correlation, Difference, compare_correlations, partial_correlation
from fspkit.stats.filtering import filter_quality, mean_seconds, score_column
from robnet.search import records as R

__all__ = ["BASELINES", "PROXIES", "ProxyRow", "ProxyTable", "proxy_table"]

# proxy -> (score column, seconds column or None, lower is better). FSP distance: lower is more robust
# (Finding #3); gradient norm, SynFlow, NASWOT and PGD accuracy: higher is better, as their papers rank
# architectures. Per-cell FSP columns are scored by their mean over the deep cells, as the search's filter.
PROXIES: dict[str, tuple[str, str | None, bool]] = {
    "fsp": (R.FSP + R.BEFORE, R.SECONDS_PREFIX + "fsp", True),
    "fsp_rel": (R.FSP_REL + R.BEFORE, R.SECONDS_PREFIX + "fsp", True),
    "grad_norm": (R.PROXY_PREFIX + "grad_norm", R.SECONDS_PREFIX + "grad_norm", False),
    "synflow": (R.PROXY_PREFIX + "synflow", R.SECONDS_PREFIX + "synflow", False),
    "naswot": (R.PROXY_PREFIX + "naswot", R.SECONDS_PREFIX + "naswot", False),
    "pgd_before_finetune": (R.PGD_ACC_BEFORE, R.SECONDS_PREFIX + "pgd_before", False),
}
# Free baselines (cost 0): larger, denser networks are predicted more robust (paper Fig. 1, Finding #1).
BASELINES: dict[str, tuple[str, str | None, bool]] = {
    "params": (R.PARAMS, None, False),
    "flops": (R.FLOPS, None, False),
    "convs": (R.CONVS, None, False),
    "density": (R.DENSITY, None, False),
}


@dataclass(frozen=True, kw_only=True)
class ProxyRow:
    """One score against final PGD accuracy (inherited weights, before finetuning).

    Attributes:
        proxy, column: the score's name and column; lower_is_better: how it is read; baseline: a free
            architecture statistic (cost 0) rather than a measured proxy.
        spearman: sign-adjusted Spearman correlation (positive: ranks robust candidates first), the
            number the text table, the JSON and the figure all show.
        partial_params: the same given the parameter count (secondary control; None for ``params`` or
            when undefined).
        recall, recall_ci, recall_ci_method, recall_pvalue, n_keep, n_top, n_top_kept, random_recall,
            compute_saved: the filter at the table's ``keep`` (:class:`fspkit.stats.FilterQuality`).
        vs_params: its Spearman minus the parameter count's on the same candidates (None for params);
            beats_params: True when that difference's interval lies above 0, False otherwise.
        seconds_per_candidate: mean cost (0 for a baseline; None when not recorded).
    """

    proxy: str
    column: str
    lower_is_better: bool
    baseline: bool
    n: int
    spearman: Correlation
    partial_params: Correlation | None
    recall: float
    recall_ci: tuple[float, float]
    recall_ci_method: str
    recall_pvalue: float
    n_keep: int
    n_top: int
    n_top_kept: int
    random_recall: float
    compute_saved: float
    vs_params: Difference | None
    beats_params: bool | None
    seconds_per_candidate: float | None


@dataclass(frozen=True, kw_only=True)
class ProxyTable:
    """Cheap robustness scores and free baselines side by side.

    Attributes:
        rows: proxies first, then baselines; notes: rows left out and why, caveats.
        finetune_seconds: mean finetuning cost per candidate, the cost a filter saves (None if absent).
    """

    rows: tuple[ProxyRow, ...]
    keep: float
    top: float
    notes: tuple[str, ...]
    finetune_seconds: float | None


class _Settings(NamedTuple):
    keep: float
    top: float
    n_boot: int
    n_perm: int
    level: float
    resample_max_n: int | None


def _row(name: str, spec: tuple[str, str | None, bool], score: np.ndarray, target: np.ndarray,
         params: np.ndarray | None, records: Records, o: _Settings, notes: list[str],
         gen: np.random.Generator) -> ProxyRow:
    col, sec, lower = spec
    q = filter_quality(score, target, keep=o.keep, top=o.top, lower_is_better=lower, n_boot=o.n_boot,
                       n_perm=o.n_perm, rng=gen, names=(col, R.PGD_ACC), level=o.level,
                       resample_max_n=o.resample_max_n)
    partial = diff = None
    if params is not None and name != "params":
        try:
            partial = partial_correlation(score, target, params, n_boot=o.n_boot, n_perm=o.n_perm, rng=gen,
                                          names=(col, R.PGD_ACC, R.PARAMS), level=o.level, sign=-1 if lower else 1,
                                          resample_max_n=o.resample_max_n)
        except ValueError as e:
            notes.append(f"{name}: no partial correlation given params ({e})")
        diff = compare_correlations(score, params, target, signs=(-1 if lower else 1, 1), n_boot=o.n_boot, rng=gen,
                                    names=(col, R.PARAMS, R.PGD_ACC), level=o.level, resample_max_n=o.resample_max_n)
    baseline = name in BASELINES
    seconds = 0.0 if baseline else (mean_seconds(records, sec) if sec else None)
    return ProxyRow(proxy=name, column=col, lower_is_better=lower, baseline=baseline, n=q.n, spearman=q.spearman,
                    partial_params=partial, recall=q.recall, recall_ci=q.recall_ci,
                    recall_ci_method=q.recall_ci_method, recall_pvalue=q.recall_pvalue, n_keep=q.n_keep,
                    n_top=q.n_top, n_top_kept=q.n_top_kept, random_recall=q.random_recall,
                    compute_saved=q.compute_saved, vs_params=diff,
                    beats_params=None if diff is None else bool(math.isfinite(diff.ci[0]) and diff.ci[0] > 0),
                    seconds_per_candidate=seconds)


def proxy_table(records: Records, proxies: Sequence[str] | None = None, *, keep: float = 0.3, top: float = 0.1,
                n_boot: int = N_BOOT, n_perm: int = 0, rng: RngLike = None, level: float = LEVEL,
                resample_max_n: int | None = RESAMPLE_MAX_N) -> ProxyTable:
    """Each score's sign-adjusted Spearman with final PGD accuracy, its top-``top`` recall keeping ``keep``
    of the candidates (exact p-value against a random filter, interval), its correlation given the
    parameter count, whether it beats the parameter count, and its cost per candidate.

    Only candidates with a final PGD accuracy and every score's value count, so all rows rank the same
    candidates; when the run used the FSP filter, the filtered-out candidates have no final accuracy
    and every recall is over the finetuned ones only (noted). Scores whose column is absent, or that
    are constant, are left out with a note.

    Args:
        records: candidate records.
        proxies: names of :data:`PROXIES` and :data:`BASELINES` (default: every one recorded).
        keep, top: the kept fraction and the true top fraction.
        n_boot, n_perm, rng, level, resample_max_n: as :func:`fspkit.stats.correlate`.

    Raises:
        ValueError: an unknown name, records without ``pgd_acc``.
    """
    specs = {**PROXIES, **BASELINES}
    names = list(specs) if proxies is None else list(proxies)
    unknown = [p for p in names if p not in specs]
    if unknown:
        raise ValueError(f"proxy_table: unknown proxy {unknown[0]!r}; expected some of {', '.join(specs)}")
    gen, target = _generator(rng), column(records, R.PGD_ACC)
    notes: list[str] = []
    if any(r.get(R.FILTERED_OUT) for r in records):
        notes.append(f"{sum(bool(r.get(R.FILTERED_OUT)) for r in records)} candidates were filtered out before "
                     "finetuning (no final PGD accuracy): recalls are over the finetuned candidates only")
    scores = {}
    for name in names:
        col = specs[name][0]
        if not has_column(records, col):
            notes.append(f"{name}: column {col!r} absent, left out")
        else:
            scores[name] = score_column(records, col)
    ok = np.isfinite(target) & np.logical_and.reduce([np.isfinite(v) for v in scores.values()] or [target == target])
    settings = _Settings(keep, top, n_boot, n_perm, level, resample_max_n)
    params = scores.get("params", score_column(records, R.PARAMS) if has_column(records, R.PARAMS) else None)
    params = None if params is None or np.ptp(params[ok]) == 0 else params[ok]
    rows = []
    for name, values in scores.items():
        if np.ptp(values[ok]) == 0:
            notes.append(f"{name}: constant on these candidates, left out")
            continue
        rows.append(_row(name, specs[name], values[ok], target[ok], params, records, settings, notes, gen))
    return ProxyTable(rows=tuple(rows), keep=keep, top=top, notes=tuple(notes),
                      finetune_seconds=mean_seconds(records, R.SECONDS_PREFIX + "finetune"))

"""How well a cheap score filters candidates before finetuning, and the proxy table.

A filter keeps the ``keep`` fraction of candidates with the best score; its recall is the share of
the true top-``top`` candidates (by final PGD accuracy) it keeps. Against a random filter of the same
size the number kept is hypergeometric, which gives an exact one-sided p-value
(:func:`fspkit.stats.inference.recall_pvalue`); the interval resamples candidates and recomputes both
sets (percentile bootstrap), or, above ``resample_max_n``, is the Wilson interval of the kept share of
the top set.

The proxy table puts every score side by side, the baselines included: parameter count, FLOPs, conv
count and density cost nothing and are rows like any proxy. Each row's Spearman correlation is
sign-adjusted (positive: the score ranks robust candidates first), and is compared with the parameter
count's on the same resamples: a proxy "beats parameters" only when the difference's interval lies
above 0. The rank correlation given parameters is reported as a secondary control (see
:mod:`fspkit.stats.controls` for why it is not the test). docs/study.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fspkit.stats import resampling as rs
from fspkit.stats.core import (
    LEVEL,
    N_BOOT,
    RESAMPLE_MAX_N,
    Records,
    RngLike,
    _fraction,
    _generator,
    _vector,
    column,
    has_column,
    list_column,
)
from fspkit.stats.correlation import Correlation, correlate
from fspkit.stats.depth import deep_mean
from fspkit.stats.inference import recall_pvalue, wilson_interval
from robnet.search import records as R

__all__ = ["FilterQuality", "filter_quality", "keep_mask", "score_column", "top_mask"]


@dataclass(frozen=True, kw_only=True)
class FilterQuality:
    """How well a cheap score picks the most robust candidates before finetuning.

    Attributes:
        n: candidates; n_keep = ceil(keep * n) kept by the score (stable order on ties).
        n_top: the true top by final PGD accuracy: every candidate at or above the ceil(top * n)-th
            highest accuracy (ties at the edge all count, so n_top may exceed ceil(top * n)).
        recall: n_top_kept / n_top, with ``recall_ci`` (``recall_ci_method``) and ``recall_pvalue``, the
            exact probability that a random filter of n_keep keeps at least n_top_kept of them.
        random_recall: n_keep / n, the expected recall of a random filter.
        compute_saved: 1 - n_keep / n, the share of finetuning runs skipped.
        spearman: the sign-adjusted correlation of the score with final PGD accuracy (positive: the
            score ranks robust candidates first, whichever direction it is read in).
    """

    n: int
    keep: float
    top: float
    n_keep: int
    n_top: int
    n_top_kept: int
    recall: float
    recall_ci: tuple[float, float]
    recall_ci_method: str
    recall_pvalue: float
    random_recall: float
    compute_saved: float
    lower_is_better: bool
    spearman: Correlation


def keep_mask(score: Any, keep: float, *, lower_is_better: bool = True) -> np.ndarray:
    """Which candidates a filter keeping the ``keep`` fraction with the best score keeps: the
    ``ceil(keep * n)`` smallest (``lower_is_better``) or largest, ties in input order.  (n,) bool."""
    s = np.asarray(score, dtype=float)
    kept = np.zeros(len(s), dtype=bool)
    kept[np.argsort(s if lower_is_better else -s, kind="stable")[:math.ceil(keep * len(s) - 1e-9)]] = True
    return kept


def top_mask(acc: Any, top: float) -> np.ndarray:
    """The true top: every candidate at or above the ``ceil(top * n)``-th highest accuracy.  (n,) bool."""
    y = np.asarray(acc, dtype=float)
    edge = np.sort(y)[::-1][math.ceil(top * len(y) - 1e-9) - 1]
    return y >= edge


def _boot_recall(key: np.ndarray, y: np.ndarray, n_keep: int, m_top: int, idx: np.ndarray) -> np.ndarray:
    """Recall on each resample: kept = the n_keep smallest keys, top = at or above the m_top-th highest y."""
    kept = np.argsort(key[idx], axis=1, kind="stable")[:, :n_keep]
    yb = y[idx]
    edge = -np.partition(-yb, m_top - 1, axis=1)[:, m_top - 1]
    is_top = yb >= edge[:, None]
    return np.take_along_axis(is_top, kept, axis=1).sum(axis=1) / is_top.sum(axis=1)


def _recall_interval(key: np.ndarray, y: np.ndarray, n_keep: int, m_top: int, hits: int, n_top: int,
                     n_boot: int, gen: np.random.Generator, level: float,
                     resample_max_n: int | None) -> tuple[tuple[float, float], str]:
    n = len(key)
    if not n_boot:
        return (math.nan, math.nan), "none"
    if resample_max_n is not None and n > resample_max_n:
        return wilson_interval(hits, n_top, level), "Wilson (top set fixed)"
    if not rs.enough_resamples([n]):
        return (math.nan, math.nan), f"none: n = {n} has only {rs.distinct_resamples(n)} distinct resamples"
    boot = np.concatenate([_boot_recall(key, y, n_keep, m_top, idx) for idx in rs.index_chunks(gen, n, n_boot)])
    ci, _ = rs.percentile_interval(boot, level)
    return ci, f"bootstrap percentile ({n_boot})"


def filter_quality(score: Any, final_pgd: Any, *, keep: float = 0.3, top: float = 0.1, lower_is_better: bool = True,
                   n_boot: int = N_BOOT, n_perm: int = 0, rng: RngLike = None,
                   names: tuple[str, str] = ("score", R.PGD_ACC), level: float = LEVEL,
                   resample_max_n: int | None = RESAMPLE_MAX_N) -> FilterQuality:
    """Recall of the true top-``top`` candidates among the ``keep`` fraction with the best score
    (the smallest when ``lower_is_better``, as for FSP distance), its exact p-value against a random
    filter and its interval, and the sign-adjusted Spearman correlation (see :class:`FilterQuality`).

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a constant column, keep/top outside (0, 1].
    """
    _fraction(keep, "keep")
    _fraction(top, "top")
    s = _vector(score, names[0])
    y = _vector(final_pgd, names[1], n=len(s), other=names[0])
    n, gen = len(s), _generator(rng)
    kept, is_top = keep_mask(s, keep, lower_is_better=lower_is_better), top_mask(y, top)
    n_keep, n_top, hits = int(kept.sum()), int(is_top.sum()), int(np.sum(kept & is_top))
    corr = correlate(s, y, n_boot=n_boot, n_perm=n_perm, rng=gen, names=names, level=level,
                     sign=-1 if lower_is_better else 1, resample_max_n=resample_max_n)
    ci, ci_method = _recall_interval(s if lower_is_better else -s, y, n_keep, math.ceil(top * n - 1e-9), hits, n_top,
                                     n_boot, gen, level, resample_max_n)
    return FilterQuality(n=n, keep=keep, top=top, n_keep=n_keep, n_top=n_top, n_top_kept=hits, recall=hits / n_top,
                         recall_ci=ci, recall_ci_method=ci_method, recall_pvalue=recall_pvalue(hits, n, n_top, n_keep),
                         random_recall=n_keep / n, compute_saved=1 - n_keep / n, lower_is_better=lower_is_better,
                         spearman=corr)


def score_column(records: Records, name: str) -> np.ndarray:
    """A score column as (n,) floats: a per-cell list column (FSP) is its mean over the deep cells."""
    first = next((r[name] for r in records if r.get(name) is not None), None)
    return deep_mean(list_column(records, name)) if isinstance(first, list) else column(records, name)


def mean_seconds(records: Records, name: str) -> float | None:
    """Mean of a ``seconds_*`` column (None when absent)."""
    if not has_column(records, name):
        return None
    return float(np.nanmean(column(records, name)))


def present(records: Records, names: Sequence[str]) -> list[str]:
    """The names whose column at least one record holds."""
    return [n for n in names if has_column(records, n)]

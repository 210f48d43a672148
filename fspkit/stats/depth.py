"""Finding #3 by depth: each cell's FSP distance against PGD accuracy, the deep cells, the cell types,
the robust-vs-fragile profile of Fig. 7, and the pooling-sensitivity check.

The paper found a lower FSP distance in the deeper cells of robust networks. Every correlation here
is of the *negated* distance (``sign=-1``): positive means "lower distance, more robust", the paper's
direction. The deep cells are ``robnet.models.genotype.deep_cells(L)`` (the deepest stage, from the
second reduction cell on), the reduction cells ``reduction_cells(L)``; docs/design.md §5.

The raw distance largely tracks the scale of the activations (docs/design.md §5), so each cell also
reports the relative distance ``||G(x) - G(x_adv)||^2 / ||G(x)||^2`` and the raw distance's partial
correlation given the scale ``||G(x)||^2``. Where a reduction cell's input is larger than its output,
the larger map is average-pooled to the smaller before the FSP matrix (docs/study.md); when the records
also hold ``fsp_strided`` (the larger map subsampled by striding instead), the deep-cell result is
computed both ways and the difference reported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from fspkit.stats.core import (
    LEVEL,
    N_BOOT,
    RESAMPLE_MAX_N,
    RngLike,
    _generator,
    _vector,
    column,
    has_column,
    list_column,
)
from fspkit.stats.correlation import Correlation, Difference, compare_correlations, correlate, partial_correlation
from fspkit.stats.inference import holm
from fspkit.stats.resampling import median_interval
from robnet.models.genotype import deep_cells, reduction_cells
from robnet.search import records as R

__all__ = [
    "FSP_STRIDED", "STAGES", "CellCorrelations", "DepthProfile", "PerCell", "PoolingCheck", "StageColumns",
    "TypeCorrelation", "cell_kinds", "deep_mean", "per_cell",
]

# The per-cell FSP distance with the larger map of a reduction cell subsampled by striding (the
# pooling-sensitivity check); a column of the records schema once fspkit records it.
FSP_STRIDED = getattr(R, "FSP_STRIDED", "fsp_strided")
GROUP_SHARE = 0.3  # the robust / fragile groups of the profile: top and bottom 30%, as Finding #1


class StageColumns(NamedTuple):
    """The columns of one stage: raw, relative, scale and strided distances, PGD and clean accuracy."""

    raw: str
    rel: str
    scale: str
    pgd: str
    clean: str
    strided: str


STAGES: dict[str, StageColumns] = {
    "after": StageColumns(R.FSP, R.FSP_REL, R.FSP_SCALE, R.PGD_ACC, R.CLEAN_ACC, FSP_STRIDED),
    "before": StageColumns(R.FSP + R.BEFORE, R.FSP_REL + R.BEFORE, R.FSP_SCALE + R.BEFORE, R.PGD_ACC_BEFORE,
                           R.CLEAN_ACC_BEFORE, FSP_STRIDED + R.BEFORE),
}


@dataclass(frozen=True, kw_only=True)
class CellCorrelations:
    """One cell's negated FSP distance against PGD accuracy (positive: the paper's direction).

    Attributes:
        cell: depth, 0 = the first cell; kind: ``reduction`` or ``normal``; deep: one of the deep cells.
        fsp_pgd: raw distance; rel_pgd: relative distance; partial: raw given the scale; strided: raw
            distance with strided subsampling. None when their columns are absent.
        holm_pvalue: ``fsp_pgd``'s p-value after Holm's correction over the deep cells (None elsewhere).
    """

    cell: int
    kind: str
    deep: bool
    fsp_pgd: Correlation
    rel_pgd: Correlation | None
    partial: Correlation | None
    strided: Correlation | None
    holm_pvalue: float | None


@dataclass(frozen=True, kw_only=True)
class TypeCorrelation:
    """The cells of one type (``reduction`` / ``normal``) among the deep cells or all cells (``scope``):
    the negated mean log raw distance over them against PGD accuracy (the log puts cells of different
    widths on one footing)."""

    kind: str
    scope: str
    cells: tuple[int, ...]
    correlation: Correlation


@dataclass(frozen=True, kw_only=True)
class DepthProfile:
    """Fig. 7's profile of one column: per cell, the median of the robust (top) and fragile (bottom)
    group with distribution-free intervals (order statistics; NaN ends when a group is too small)."""

    column: str
    k: int
    robust_median: tuple[float, ...]
    robust_low: tuple[float, ...]
    robust_high: tuple[float, ...]
    fragile_median: tuple[float, ...]
    fragile_low: tuple[float, ...]
    fragile_high: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class PoolingCheck:
    """The deep-cell result with average pooling (the default) and with strided subsampling.

    Attributes:
        pooled, strided: the negated deep-cell mean distance against PGD accuracy, each way.
        difference: strided minus pooled, with its interval.
        cells: the deep cells; pooled_coefs / strided_coefs: each deep cell's coefficient each way.
    """

    pooled: Correlation
    strided: Correlation
    difference: Difference
    cells: tuple[int, ...]
    pooled_coefs: tuple[float, ...]
    strided_coefs: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class PerCell:
    """Finding #3 for one stage (``after``: finetuned weights; ``before``: inherited; ``arrays``).

    Attributes:
        n: candidates; dropped: records lacking the columns (filtered out).
        cells: per cell, first cell first; deep_cells, reduction_cells: by the one rule of robnet.
        deep, deep_rel: the negated mean distance over the deep cells (the FSP filter's score).
        types: per cell type, over the deep cells and over all cells.
        profiles: Fig. 7's robust-vs-fragile medians (raw, then relative when recorded).
        pooling: the pooling-sensitivity check (None without ``fsp_strided``).
    """

    stage: str
    method: str
    n: int
    dropped: int
    cells: tuple[CellCorrelations, ...]
    deep_cells: tuple[int, ...]
    reduction_cells: tuple[int, ...]
    deep: Correlation
    deep_rel: Correlation | None
    types: tuple[TypeCorrelation, ...]
    profiles: tuple[DepthProfile, ...]
    pooling: PoolingCheck | None


def cell_kinds(cells: int) -> tuple[str, ...]:
    """``reduction`` or ``normal`` for each of ``cells`` cells (robnet's reduction cells)."""
    red = set(reduction_cells(cells))
    return tuple("reduction" if c in red else "normal" for c in range(cells))


def deep_mean(per_cell: Any) -> np.ndarray:
    """Mean over the deep cells (``robnet.models.genotype.deep_cells``): the FSP score of
    ``fspkit search --fsp-keep`` and of the proxy table.  (n, L) -> (n,)."""
    arr = np.asarray(per_cell, dtype=float)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"deep_mean: expected an (n candidates, cells) array, got shape {arr.shape}")
    return arr[:, list(deep_cells(arr.shape[1]))].mean(axis=1)


class _Arrays(NamedTuple):
    fsp: np.ndarray
    pgd: np.ndarray
    rel: np.ndarray | None
    scale: np.ndarray | None
    strided: np.ndarray | None
    names: StageColumns
    dropped: int


class _Opts(NamedTuple):
    method: str
    n_boot: int
    n_perm: int
    level: float
    resample_max_n: int | None
    gen: np.random.Generator


def _stage_arrays(records: Sequence[Mapping[str, Any]], stage: str) -> _Arrays:
    """The columns of ``stage`` over the records that hold all those recorded, and how many did not."""
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {', '.join(STAGES)}, got {stage!r}")
    cols = STAGES[stage]
    fsp, pgd = list_column(records, cols.raw), column(records, cols.pgd)
    extra = [list_column(records, c) if has_column(records, c) else None for c in (cols.rel, cols.scale, cols.strided)]
    keep = np.isfinite(fsp).all(axis=1) & np.isfinite(pgd)
    for v in extra:
        if v is not None:
            keep &= np.isfinite(v).all(axis=1)
    rel, scale, strided = (None if v is None else v[keep] for v in extra)
    return _Arrays(fsp[keep], pgd[keep], rel, scale, strided, cols, int(np.sum(~keep)))


def _matrix(values: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or (shape is not None and arr.shape != shape):
        raise ValueError(f"{name}: expected an (n candidates, cells) array{'' if shape is None else f' {shape}'}, "
                         f"got shape {arr.shape}")
    return arr


def _from_arrays(data: Any, pgd_acc: Any, fsp_rel: Any, fsp_scale: Any, fsp_strided: Any) -> _Arrays:
    if pgd_acc is None:
        raise ValueError("per_cell: with an array of FSP distances, pgd_acc is required")
    fsp = _matrix(data, "fsp")
    rel, scale, strided = (None if v is None else _matrix(v, name, fsp.shape)
                           for v, name in ((fsp_rel, "fsp_rel"), (fsp_scale, "fsp_scale"),
                                           (fsp_strided, "fsp_strided")))
    return _Arrays(fsp, np.asarray(pgd_acc, dtype=float), rel, scale, strided, STAGES["after"], 0)


def _corr(x: np.ndarray, y: np.ndarray, names: tuple[str, str], o: _Opts, sign: int = -1) -> Correlation:
    return correlate(x, y, method=o.method, n_boot=o.n_boot, n_perm=o.n_perm, rng=o.gen, names=names,
                     level=o.level, sign=sign, resample_max_n=o.resample_max_n)


def _optional(run: Callable[[], Correlation]) -> Correlation | None:
    """A secondary correlation, or None where it is undefined (a constant column, a control that
    explains the variable): the cell's main correlation still stands."""
    try:
        return run()
    except ValueError:
        return None


def _cell(c: int, kind: str, deep: bool, a: _Arrays, o: _Opts) -> CellCorrelations:
    cols, y, rel_m, strided_m, scale_m = a.names, a.pgd, a.rel, a.strided, a.scale
    rel = None if rel_m is None else _optional(lambda: _corr(rel_m[:, c], y, (f"{cols.rel}[cell {c}]", cols.pgd), o))
    strided = None if strided_m is None else _optional(
        lambda: _corr(strided_m[:, c], y, (f"{cols.strided}[cell {c}]", cols.pgd), o))
    partial = None if scale_m is None else _optional(lambda: partial_correlation(
        a.fsp[:, c], y, scale_m[:, c], method="pearson" if o.method == "pearson" else "spearman", n_boot=o.n_boot,
        n_perm=o.n_perm, rng=o.gen, names=(f"{cols.raw}[cell {c}]", cols.pgd, f"{cols.scale}[cell {c}]"),
        level=o.level, sign=-1, resample_max_n=o.resample_max_n))
    return CellCorrelations(cell=c, kind=kind, deep=deep, fsp_pgd=_corr(a.fsp[:, c], y, (f"{cols.raw}[cell {c}]",
                                                                                         cols.pgd), o),
                            rel_pgd=rel, partial=partial, strided=strided, holm_pvalue=None)


def _log(m: np.ndarray) -> np.ndarray:
    """Natural log with zeros raised to a tenth of the smallest positive value (a distance can be 0)."""
    pos = m[m > 0]
    return np.log(np.maximum(m, pos.min() / 10 if len(pos) else 1e-300))


def _types(a: _Arrays, deep: Sequence[int], kinds: Sequence[str], o: _Opts) -> tuple[TypeCorrelation, ...]:
    out = []
    logs = _log(a.fsp)
    for scope, scope_cells in (("deep", list(deep)), ("all", list(range(a.fsp.shape[1])))):
        for kind in ("reduction", "normal"):
            cells = [c for c in scope_cells if kinds[c] == kind]
            if not cells or np.ptp(logs[:, cells].mean(axis=1)) == 0:
                continue
            corr = _corr(logs[:, cells].mean(axis=1), a.pgd, (f"mean log {a.names.raw}[{kind} cells {cells}]",
                                                               a.names.pgd), o)
            out.append(TypeCorrelation(kind=kind, scope=scope, cells=tuple(cells), correlation=corr))
    return tuple(out)


def _profile(m: np.ndarray, name: str, groups: tuple[np.ndarray, np.ndarray], level: float) -> DepthProfile:
    parts = []
    for g in groups:
        stats = [median_interval(m[g, c], level) for c in range(m.shape[1])]
        parts.append((tuple(s[0] for s in stats), tuple(s[1][0] for s in stats), tuple(s[1][1] for s in stats)))
    (rm, rl, rh), (fm, fl, fh) = parts
    return DepthProfile(column=name, k=len(groups[0]), robust_median=rm, robust_low=rl, robust_high=rh,
                        fragile_median=fm, fragile_low=fl, fragile_high=fh)


def _profiles(a: _Arrays, level: float) -> tuple[DepthProfile, ...]:
    n = len(a.pgd)
    k = min(n // 2, round(GROUP_SHARE * n))
    if k < 1:
        return ()
    order = np.argsort(-a.pgd, kind="stable")
    groups = (order[:k], order[n - k:])
    out = [_profile(a.fsp, a.names.raw, groups, level)]
    if a.rel is not None:
        out.append(_profile(a.rel, a.names.rel, groups, level))
    return tuple(out)


def _pooling(a: _Arrays, deep: Sequence[int], o: _Opts) -> PoolingCheck | None:
    if a.strided is None:
        return None
    cols, cells = a.names, list(deep)
    pooled_score, strided_score = a.fsp[:, cells].mean(axis=1), a.strided[:, cells].mean(axis=1)
    pooled = _corr(pooled_score, a.pgd, (f"deep mean {cols.raw}", cols.pgd), o)
    strided = _corr(strided_score, a.pgd, (f"deep mean {cols.strided}", cols.pgd), o)
    diff = compare_correlations(strided_score, pooled_score, a.pgd, signs=(-1, -1), n_boot=o.n_boot, rng=o.gen,
                                names=(f"deep mean {cols.strided}", f"deep mean {cols.raw}", cols.pgd),
                                level=o.level, resample_max_n=o.resample_max_n)
    coef = [float(np.nan_to_num(_corr(m[:, c], a.pgd, ("x", "y"), o._replace(n_boot=0, n_perm=0)).coef))
            for m in (a.fsp, a.strided) for c in cells]
    return PoolingCheck(pooled=pooled, strided=strided, difference=diff, cells=tuple(cells),
                        pooled_coefs=tuple(coef[:len(cells)]), strided_coefs=tuple(coef[len(cells):]))


def per_cell(data: Any, pgd_acc: Any = None, *, fsp_rel: Any = None, fsp_scale: Any = None, fsp_strided: Any = None,
             stage: str = "after", method: str = "spearman", n_boot: int = N_BOOT, n_perm: int = 0,
             rng: RngLike = None, level: float = LEVEL, resample_max_n: int | None = RESAMPLE_MAX_N) -> PerCell:
    """Finding #3 by depth (module docstring): per cell, per cell type, the deep cells (Holm over them),
    the robust-vs-fragile profile, and the pooling check.

    Args:
        data: records (the columns of ``stage`` are read; records lacking any recorded one are dropped
            and counted) or an (n, cells) array of raw distances.
        pgd_acc, fsp_rel, fsp_scale, fsp_strided: with an array ``data``: (n,) and (n, cells) arrays.
        stage: with records, ``after`` (finetuned: ``fsp`` vs ``pgd_acc``) or ``before`` (inherited
            weights: ``fsp_before_finetune`` vs ``pgd_acc_before_finetune``).
        method, n_boot, n_perm, rng, level, resample_max_n: as :func:`fspkit.stats.correlate`.

    Raises:
        ValueError: shapes that do not match, NaN, fewer than 4 candidates, a constant column (named
            ``fsp[cell 2]``), a missing ``pgd_acc``; TypeError: records and arrays mixed.
    """
    if isinstance(data, Sequence) and len(data) > 0 and isinstance(data[0], Mapping):
        if any(v is not None for v in (pgd_acc, fsp_rel, fsp_scale, fsp_strided)):
            raise TypeError("per_cell: pass either records (and read their columns) or arrays, not both")
        a = _stage_arrays(data, stage)
    else:
        a, stage = _from_arrays(data, pgd_acc, fsp_rel, fsp_scale, fsp_strided), "arrays"
    a = a._replace(pgd=_vector(a.pgd, a.names.pgd, n=len(a.fsp), other=a.names.raw, min_n=4))
    o = _Opts(method, n_boot, n_perm, level, resample_max_n, _generator(rng))
    n_cells = a.fsp.shape[1]
    deep, kinds = tuple(deep_cells(n_cells)), cell_kinds(n_cells)
    cells = [_cell(c, kinds[c], c in deep, a, o) for c in range(n_cells)]
    adjusted = holm([cells[c].fsp_pgd.pvalue for c in deep])
    for c, p in zip(deep, adjusted, strict=True):
        cells[c] = replace(cells[c], holm_pvalue=float(p))
    deep_rel = None if a.rel is None else _optional(
        lambda: _corr(deep_mean(a.rel), a.pgd, (f"deep mean {a.names.rel}", a.names.pgd), o))
    return PerCell(stage=stage, method=method, n=len(a.pgd), dropped=a.dropped, cells=tuple(cells),
                   deep_cells=deep, reduction_cells=tuple(sorted(set(reduction_cells(n_cells)))),
                   deep=_corr(deep_mean(a.fsp), a.pgd, (f"deep mean {a.names.raw}", a.names.pgd), o),
                   deep_rel=deep_rel, types=_types(a, deep, kinds, o), profiles=_profiles(a, level),
                   pooling=_pooling(a, deep, o))

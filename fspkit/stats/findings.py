"""Statistics of a robust architecture search: correlations with bootstrap intervals, regressions, the
paper's Findings #1-#3, and how well a cheap score filters candidates (numpy, scipy, scikit-learn).

Every function validates its inputs (equal lengths, no NaN, at least 3 points, no constant column)
and raises one ``ValueError`` naming the offending column; every random draw goes through an explicit
``numpy.random.Generator`` or int seed (``rng``; ``None`` means seed 0, so the same inputs always give
the same intervals). Results are frozen dataclasses; ``fspkit.stats.study`` turns them into reports. The
generic machinery (validation, :func:`correlate`, :func:`partial_correlation`, :func:`regress`,
:func:`filter_quality`, record columns) lives in ``fspkit.stats.core`` and is re-exported here.

Paper: Guo et al., "When NAS Meets Robustness: In Search of Robust Architectures against
Adversarial Attacks", CVPR 2020, section 3 (Findings #1-#3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from fspkit.stats.core import (
    METHODS,
    Correlation,
    FilterQuality,
    Records,
    Regression,
    RngLike,
    _fraction,
    _generator,
    _method,
    _seed,
    _vector,
    column,
    correlate,
    filter_quality,
    has_column,
    list_column,
    partial_correlation,
    regress,
)

__all__ = [
    "BITS_PER_CELL", "METHODS", "PROXIES", "STAGES", "BudgetGroup", "CellCorrelations", "Correlation",
    "DirectConvs", "FilterQuality", "Finding1", "Finding2", "PerCell", "ProxyRow", "ProxyTable", "Regression",
    "bit_names", "column", "correlate", "deep_mean", "direct_convs_by_budget", "filter_quality", "finding1",
    "finding2", "has_column", "list_column", "partial_correlation", "per_cell", "proxy_table", "regress",
]

# ---------------------------------------------------------------------------------- Finding #1

_SOURCES = ("s0", "s1", "f1", "f2", "f3")
# Edge order of robnet.models.genotype (SPEC §1): f1 <- s0,s1 | f2 <- s0,s1,f1 | f3 <- ... | f4 <- ...
_EDGES = tuple((src, node) for node in range(4) for src in range(node + 2))
BITS_PER_CELL = 28


def bit_names(n_bits: int) -> tuple[str, ...]:
    """Name of every genotype bit, ``e4:f1->f2:id`` / ``e4:f1->f2:conv`` (identity bit first, as in
    ``robnet.models.genotype``); with more than one cell (cell-free) prefixed by the cell, ``c3:e4:f1->f2:conv``.

    Raises:
        ValueError: ``n_bits`` is not a positive multiple of 28.
    """
    if n_bits <= 0 or n_bits % BITS_PER_CELL:
        raise ValueError(f"bits: expected 28 bits per cell (a positive multiple of 28), got {n_bits} per candidate")
    cells = n_bits // BITS_PER_CELL
    edge = [f"e{i}:{_SOURCES[src]}->f{node + 1}" for i, (src, node) in enumerate(_EDGES)]
    names = [f"{e}:{op}" for e in edge for op in ("id", "conv")]
    if cells == 1:
        return tuple(names)
    return tuple(f"c{c}:{name}" for c in range(cells) for name in names)


@dataclass(frozen=True, kw_only=True, eq=False)
class Finding1:
    """Top-k vs bottom-k architectures by PGD accuracy (paper Finding #1, Fig. 4).

    Attributes:
        n: candidates; k: size of each group.
        top_index, bottom_index: indices (into the inputs) of the k most and least robust candidates.
        index: ``top_index`` then ``bottom_index``; ``labels`` (2k,) is 1 for top (robust), 0 for bottom.
        top_min_pgd, bottom_max_pgd: the PGD accuracy at each group's edge.
        feature_names: one per bit (see :func:`bit_names`); ``weights``: the classifier's weight per bit.
        intercept: the classifier's intercept.
        n_positive, n_negative: weights above / below zero among the bits that vary within the 2k;
            ``n_constant`` bits do not vary there (reported as weight 0, left out of the share).
        positive_share: ``n_positive / (n_positive + n_negative)``; the paper found almost all positive.
        cv_accuracy, cv_std, cv_folds: stratified k-fold accuracy of the classifier (chance is 0.5).
        embedding: t-SNE of the 2k bit vectors, (2k, 2), rows aligned with ``index``; None if skipped.
        perplexity: the t-SNE perplexity used (clipped to (2k - 1) / 3 for small groups).
    """

    n: int
    k: int
    top_index: np.ndarray
    bottom_index: np.ndarray
    index: np.ndarray
    labels: np.ndarray
    top_min_pgd: float
    bottom_max_pgd: float
    feature_names: tuple[str, ...]
    weights: np.ndarray
    intercept: float
    n_positive: int
    n_negative: int
    n_constant: int
    positive_share: float
    cv_accuracy: float
    cv_std: float
    cv_folds: int
    embedding: np.ndarray | None
    perplexity: float | None
    C: float


def _bits_matrix(bits: Any) -> np.ndarray:
    try:
        arr = np.asarray(bits, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(f"bits: expected an (n, 28 * cells) array of 0/1, got {type(bits).__name__} ({e})") from e
    if arr.ndim != 2:
        raise ValueError(f"bits: expected an (n, 28 * cells) array of 0/1, got shape {arr.shape}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("bits: every entry must be 0 or 1 (genotype bit vectors, Genotype.bits())")
    bit_names(arr.shape[1])
    return arr


def finding1(bits: Any, pgd_acc: Any, *, k: int | None = None, rng: RngLike, C: float = 1.0, cv: int = 5,
             tsne: bool = True, perplexity: float = 30.0) -> Finding1:
    """Finding #1: do robust architectures have more connections?

    Sort candidates by PGD accuracy (ties keep input order), take the top-k (label 1, robust) and
    bottom-k (label 0), fit an L2 logistic regression (strength ``C``) on their 0/1 bit vectors, and
    report the weight of every (edge, op) bit, the share that is positive, the stratified ``cv``-fold
    accuracy, and a t-SNE embedding of the 2k vectors. The bits are *not* standardised: they share the
    0/1 scale, each weight is the change in log-odds of "robust" when that op is present, and
    standardising (a positive rescaling per column) could not change a weight's sign anyway.

    Args:
        bits: (n, 28 * cells) genotype bits, identity bit first per edge.
        pgd_acc: (n,) final PGD accuracy.
        k: group size (default ``round(0.3 * n)``; the paper used 300 of 1000). Needs 2 <= k <= n / 2.
        rng: generator or seed for the folds and t-SNE.
        C: inverse L2 strength of the classifier.
        cv: folds of the cross-validated accuracy (at most k).
        tsne: compute the embedding (the slow part for large k).
        perplexity: t-SNE perplexity before clipping.

    Raises:
        ValueError: bad bits, NaN, unequal lengths, constant accuracy, k out of range, C or perplexity
            not positive, cv below 2.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import TSNE
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    gen = _generator(rng)
    x = _bits_matrix(bits)
    pgd = _vector(pgd_acc, "pgd_acc", n=len(x), other="bits", min_n=4)
    n = len(pgd)
    k = round(0.3 * n) if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n // 2:
        raise ValueError(f"k: expected an int in 2..{n // 2} (each group needs 2 candidates and they may not "
                         f"overlap), got {k!r} for n = {n}")
    if not (isinstance(C, int | float) and C > 0 and isinstance(perplexity, int | float) and perplexity > 0):
        raise ValueError(f"finding1: C and perplexity must be positive numbers, got C={C!r}, perplexity={perplexity!r}")
    if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
        raise ValueError(f"finding1: cv must be an int >= 2 (folds), got {cv!r}")
    order = np.argsort(-pgd, kind="stable")
    top, bottom = order[:k], order[n - k:][::-1]
    index = np.concatenate([top, bottom])
    labels = np.concatenate([np.ones(k, dtype=int), np.zeros(k, dtype=int)])
    xs = x[index]
    clf = LogisticRegression(C=C, max_iter=5000).fit(xs, labels)
    weights = clf.coef_[0].copy()
    varies = np.ptp(xs, axis=0) > 0
    weights[~varies] = 0.0  # a constant bit only duplicates the unpenalised intercept (its fitted weight ~1e-9)
    n_pos, n_neg = int(np.sum(weights[varies] > 0)), int(np.sum(weights[varies] < 0))
    folds = min(cv, k)
    kf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=_seed(gen))
    scores = cross_val_score(LogisticRegression(C=C, max_iter=5000), xs, labels, cv=kf)
    emb, perp = None, None
    if tsne:
        perp = float(max(1.0, min(perplexity, (2 * k - 1) / 3)))
        emb = TSNE(n_components=2, perplexity=perp, init="pca", random_state=_seed(gen)).fit_transform(xs)
    return Finding1(n=n, k=k, top_index=top, bottom_index=bottom, index=index, labels=labels,
                    top_min_pgd=float(pgd[top].min()), bottom_max_pgd=float(pgd[bottom].max()),
                    feature_names=bit_names(x.shape[1]), weights=weights, intercept=float(clf.intercept_[0]),
                    n_positive=n_pos, n_negative=n_neg, n_constant=int(np.sum(~varies)),
                    positive_share=n_pos / max(1, n_pos + n_neg), cv_accuracy=float(scores.mean()),
                    cv_std=float(scores.std()), cv_folds=folds, embedding=emb, perplexity=perp, C=C)


# ---------------------------------------------------------------------------------- density, direct-edge convs


@dataclass(frozen=True, kw_only=True, eq=False)
class Finding2:
    """Density against PGD accuracy (paper Eq. 2, Fig. 5): a least-squares line with its confidence
    band, and the Spearman correlation. (The paper discusses density under its Finding #1, "robust
    architectures tend to have dense connections"; the name ``finding2`` is this API's and stays.)

    Attributes:
        n: candidates; level: coverage of the intervals.
        slope, intercept, slope_stderr, slope_ci, slope_pvalue, r2: the fit ``pgd = intercept + slope * density``.
        x_grid: ``grid`` densities from the smallest to the largest; y_fit: the line there.
        band_low, band_high: pointwise confidence band of the mean, ``y_fit -/+ t * s *
            sqrt(1/n + (x - mean x)^2 / Sxx)`` with t at ``level`` and n - 2 degrees of freedom.
        spearman: rank correlation with its bootstrap interval.
    """

    n: int
    level: float
    slope: float
    intercept: float
    slope_stderr: float
    slope_ci: tuple[float, float]
    slope_pvalue: float
    r2: float
    x_grid: np.ndarray
    y_fit: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    spearman: Correlation


def finding2(density: Any, pgd_acc: Any, *, level: float = 0.95, grid: int = 50, n_boot: int = 1000,
             rng: RngLike = None, names: tuple[str, str] = ("density", "pgd_acc")) -> Finding2:
    """Is a denser architecture more robust? Linear fit, band and Spearman (see :class:`Finding2`).

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a constant variable, grid < 2.
    """
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid: expected an int >= 2 (points of the plotted band), got {grid!r}")
    _fraction(level, "level")
    x = _vector(density, names[0])
    y = _vector(pgd_acc, names[1], n=len(x), other=names[0])
    spear = correlate(x, y, n_boot=n_boot, rng=rng, names=names, level=level)
    n = len(x)
    fit = sps.linregress(x, y)
    resid = y - (fit.intercept + fit.slope * x)
    s = math.sqrt(float(resid @ resid) / (n - 2))
    t = float(sps.t.ppf(0.5 + level / 2, n - 2))
    sxx = float(((x - x.mean()) ** 2).sum())
    xg = np.linspace(x.min(), x.max(), grid)
    yg = fit.intercept + fit.slope * xg
    half = t * s * np.sqrt(1 / n + (xg - x.mean()) ** 2 / sxx)
    return Finding2(n=n, level=level, slope=float(fit.slope), intercept=float(fit.intercept),
                    slope_stderr=float(fit.stderr), slope_ci=(float(fit.slope - t * fit.stderr),
                                                              float(fit.slope + t * fit.stderr)),
                    slope_pvalue=float(fit.pvalue), r2=float(fit.rvalue**2), x_grid=xg, y_fit=yg,
                    band_low=yg - half, band_high=yg + half, spearman=spear)


@dataclass(frozen=True, kw_only=True)
class BudgetGroup:
    """Candidates of one conv budget (Finding #2, Fig. 6).

    Attributes:
        budget: sep-convs per cell (None: sampled without a budget).
        n: candidates in the group.
        counts: the distinct direct-edge conv counts, ascending; ``mean_pgd``, ``std_pgd`` and
            ``n_per_count`` give the PGD accuracy at each (std 0 for a single candidate).
        correlation: direct-edge convs vs PGD accuracy within the group; None when undefined.
        note: why ``correlation`` is None ("" otherwise).
    """

    budget: int | None
    n: int
    counts: tuple[float, ...]
    mean_pgd: tuple[float, ...]
    std_pgd: tuple[float, ...]
    n_per_count: tuple[int, ...]
    correlation: Correlation | None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class DirectConvs:
    """Direct-edge convs against PGD accuracy, one :class:`BudgetGroup` per budget (ascending, None last)."""

    groups: tuple[BudgetGroup, ...]
    method: str


def _budgets(budget: Any, n: int) -> list[int | None]:
    values = list(budget)
    if len(values) != n:
        raise ValueError(f"budget has {len(values)} values but direct_convs has {n}: they must be paired")
    out: list[int | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        elif isinstance(v, int | np.integer | float) and not isinstance(v, bool) and float(v).is_integer():
            out.append(int(v))
        else:
            raise ValueError(f"budget: expected whole numbers of sep-convs per cell or None, got {v!r}")
    return out


def direct_convs_by_budget(direct_convs: Any, budget: Any, pgd_acc: Any, *, method: str = "spearman",
                           n_boot: int = 1000, rng: RngLike = None) -> DirectConvs:
    """Finding #2: PGD accuracy against the number of convs on direct edges, per conv budget.

    Within each budget, the mean PGD accuracy per direct-conv count and the correlation of the two
    (the paper: direct-edge convs help under small budgets). Groups where the correlation is
    undefined (fewer than 3 candidates, or one count only) keep their means and say why.

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a budget that is not a whole number.
    """
    _method(method)
    gen = _generator(rng)
    dc = _vector(direct_convs, "direct_convs", constant_ok=True)
    pgd = _vector(pgd_acc, "pgd_acc", n=len(dc), other="direct_convs", constant_ok=True)
    budgets = _budgets(budget, len(dc))
    keys = sorted({b for b in budgets if b is not None}) + ([None] if None in budgets else [])
    groups = []
    for b in keys:
        mask = np.array([v == b for v in budgets])
        x, y = dc[mask], pgd[mask]
        counts = np.unique(x)
        means = tuple(float(y[x == c].mean()) for c in counts)
        stds = tuple(float(y[x == c].std()) for c in counts)
        corr, note = None, ""
        if len(x) < 3 or len(counts) < 2 or np.ptp(y) == 0:
            note = (f"only {len(x)} candidate(s)" if len(x) < 3 else
                    "one direct-conv count only" if len(counts) < 2 else "constant PGD accuracy")
        else:
            corr = correlate(x, y, method=method, n_boot=n_boot, rng=gen, names=("direct_convs", "pgd_acc"))
        groups.append(BudgetGroup(budget=b, n=len(x), counts=tuple(float(c) for c in counts), mean_pgd=means,
                                  std_pgd=stds, n_per_count=tuple(int(np.sum(x == c)) for c in counts),
                                  correlation=corr, note=note))
    return DirectConvs(groups=tuple(groups), method=method)


# ---------------------------------------------------------------------------------- Finding #3 per cell


@dataclass(frozen=True, kw_only=True)
class CellCorrelations:
    """One cell's FSP distance against robustness (paper Finding #3, Fig. 7).

    Attributes:
        cell: depth, 0 = the first cell.
        fsp_pgd, fsp_gap: raw distance vs PGD accuracy / vs the clean-minus-PGD gap.
        rel_pgd, rel_gap: the same for the relative distance ||G(x) - G(x_adv)||^2 / ||G(x)||^2.
        partial: raw distance vs PGD accuracy controlling for the activation scale ``fsp_scale``.
        Each is None when its columns were not given.
    """

    cell: int
    fsp_pgd: Correlation
    fsp_gap: Correlation | None
    rel_pgd: Correlation | None
    rel_gap: Correlation | None
    partial: Correlation | None


@dataclass(frozen=True, kw_only=True)
class PerCell:
    """Per-cell correlations, first cell first; ``dropped`` records lacked the columns (filtered out)."""

    stage: str
    method: str
    n: int
    dropped: int
    cells: tuple[CellCorrelations, ...]


# stage -> columns (raw, relative, scale, PGD accuracy, clean accuracy) of the same networks
STAGES: dict[str, tuple[str, str, str, str, str]] = {
    "after": ("fsp", "fsp_rel", "fsp_scale", "pgd_acc", "clean_acc"),
    "before": ("fsp_before_finetune", "fsp_rel_before_finetune", "fsp_scale_before_finetune",
               "pgd_acc_before_finetune", "clean_acc_before_finetune"),
}


def _is_records(data: Any) -> bool:
    return isinstance(data, Sequence) and len(data) > 0 and isinstance(data[0], Mapping)


def _matrix(values: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 2 or (shape is not None and arr.shape != shape):
        raise ValueError(f"{name}: expected an (n candidates, cells) array{'' if shape is None else f' {shape}'}, "
                         f"got shape {arr.shape}")
    return arr


_Opt = np.ndarray | None


def _stage_arrays(records: Records, stage: str) -> tuple[np.ndarray, np.ndarray, _Opt, _Opt, _Opt, int]:
    """(fsp, pgd, rel, scale, clean) of ``stage`` over the records that hold all of them, and how many did not."""
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {', '.join(STAGES)}, got {stage!r}")
    raw, rel, scale, pgd, clean = STAGES[stage]
    fsp_a, pgd_a = list_column(records, raw), column(records, pgd)
    rel_a = list_column(records, rel) if has_column(records, rel) else None
    scale_a = list_column(records, scale) if has_column(records, scale) else None
    clean_a = column(records, clean) if has_column(records, clean) else None
    keep = np.isfinite(fsp_a).all(axis=1) & np.isfinite(pgd_a)
    for v in (rel_a, scale_a, clean_a):
        if v is not None:
            keep &= np.isfinite(v).all(axis=1) if v.ndim == 2 else np.isfinite(v)

    def rows(v: _Opt) -> _Opt:
        return None if v is None else v[keep]

    return fsp_a[keep], pgd_a[keep], rows(rel_a), rows(scale_a), rows(clean_a), int(np.sum(~keep))


def per_cell(data: Any, pgd_acc: Any = None, *, clean_acc: Any = None, fsp_rel: Any = None, fsp_scale: Any = None,
             stage: str = "after", method: str = "spearman", n_boot: int = 1000, rng: RngLike = None) -> PerCell:
    """Finding #3 by depth: each cell's FSP distance against PGD accuracy and the clean-minus-PGD gap.

    The paper found lower FSP distance in the deeper cells of robust networks (a negative
    correlation with PGD accuracy). The raw distance largely tracks the scale of the activations
    (SPEC §5), so the relative distance and the partial correlation of the raw distance given the
    scale ``fsp_scale`` (mean ||G(x)||_F^2) are reported beside it.

    Args:
        data: records (the columns of ``stage`` are read; records lacking any are dropped and
            counted) or an (n, cells) array of raw distances.
        pgd_acc, clean_acc, fsp_rel, fsp_scale: with an array ``data``: (n,), (n,), (n, cells), (n, cells).
        stage: with records, ``after`` (the finetuned networks: ``fsp`` vs ``pgd_acc``) or ``before``
            (inherited weights: ``fsp_before_finetune`` vs ``pgd_acc_before_finetune``).
        method, n_boot, rng: as :func:`correlate`.

    Raises:
        ValueError: shapes that do not match, NaN, fewer than 4 candidates, a constant column (named
            ``fsp[cell 2]``), a missing ``pgd_acc``; TypeError: records and arrays mixed.
    """
    gen = _generator(rng)
    names = ("fsp", "fsp_rel", "fsp_scale", "pgd_acc", "clean_acc")
    dropped = 0
    if _is_records(data):
        if any(v is not None for v in (pgd_acc, clean_acc, fsp_rel, fsp_scale)):
            raise TypeError("per_cell: pass either records (and read their columns) or arrays, not both")
        fsp, pgd, rel, scale, clean, dropped = _stage_arrays(data, stage)
        names = STAGES[stage]
    else:
        if pgd_acc is None:
            raise ValueError("per_cell: with an array of FSP distances, pgd_acc is required")
        fsp = _matrix(data, "fsp")
        pgd = np.asarray(pgd_acc, dtype=float)
        rel = None if fsp_rel is None else _matrix(fsp_rel, "fsp_rel", fsp.shape)
        scale = None if fsp_scale is None else _matrix(fsp_scale, "fsp_scale", fsp.shape)
        clean = None if clean_acc is None else np.asarray(clean_acc, dtype=float)
        stage = "arrays"
    pgd = _vector(pgd, names[3], n=len(fsp), other=names[0], min_n=4)
    gap = None if clean is None else _vector(clean, names[4], n=len(pgd), other=names[3]) - pgd
    gap_name = f"{names[4]} - {names[3]}"
    def corr(v: np.ndarray | None, name: str, y: np.ndarray | None, y_name: str, c: int) -> Correlation | None:
        if v is None or y is None:
            return None
        return correlate(v[:, c], y, method=method, n_boot=n_boot, rng=gen, names=(f"{name}[cell {c}]", y_name))

    cells = []
    for c in range(fsp.shape[1]):
        fsp_pgd = correlate(fsp[:, c], pgd, method=method, n_boot=n_boot, rng=gen,
                            names=(f"{names[0]}[cell {c}]", names[3]))
        partial = None if scale is None else partial_correlation(
            fsp[:, c], pgd, scale[:, c], method="pearson" if method == "pearson" else "spearman", n_boot=n_boot,
            rng=gen, names=(f"{names[0]}[cell {c}]", names[3], f"{names[2]}[cell {c}]"))
        cells.append(CellCorrelations(cell=c, fsp_pgd=fsp_pgd, fsp_gap=corr(fsp, names[0], gap, gap_name, c),
                                      rel_pgd=corr(rel, names[1], pgd, names[3], c),
                                      rel_gap=corr(rel, names[1], gap, gap_name, c), partial=partial))
    return PerCell(stage=stage, method=method, n=len(pgd), dropped=dropped, cells=tuple(cells))


PROXIES: dict[str, tuple[str, str, bool]] = {
    "fsp": ("fsp_before_finetune", "seconds_fsp", True),
    "fsp_rel": ("fsp_rel_before_finetune", "seconds_fsp", True),
    "grad_norm": ("proxy_grad_norm", "seconds_grad_norm", False),
    "synflow": ("proxy_synflow", "seconds_synflow", False),
    "naswot": ("proxy_naswot", "seconds_naswot", False),
    "pgd_before_finetune": ("pgd_acc_before_finetune", "seconds_pgd_before", False),
}


@dataclass(frozen=True, kw_only=True)
class ProxyRow:
    """One proxy: its :class:`FilterQuality` against final PGD accuracy and its cost per candidate."""

    proxy: str
    column: str
    lower_is_better: bool
    quality: FilterQuality
    seconds_per_candidate: float | None


@dataclass(frozen=True, kw_only=True)
class ProxyTable:
    """Cheap robustness proxies side by side (inherited weights, before finetuning).

    Attributes:
        rows: one per proxy found; notes: proxies left out and why, caveats.
        finetune_seconds: mean finetuning cost per candidate, the cost a filter saves (None if absent).
    """

    rows: tuple[ProxyRow, ...]
    keep: float
    top: float
    notes: tuple[str, ...]
    finetune_seconds: float | None


def deep_mean(per_cell: Any) -> np.ndarray:
    """Mean of the deepest third of the cells, ``ceil(L / 3)`` of them (at least one): the FSP score of
    ``fspkit search --fsp-keep`` (``FSPReport.deep_mean``; Finding #3 is about the deep cells).  (n, L) -> (n,)."""
    arr = np.asarray(per_cell, dtype=float)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"deep_mean: expected an (n candidates, cells) array, got shape {arr.shape}")
    return arr[:, -max(1, math.ceil(arr.shape[1] / 3)):].mean(axis=1)


def _mean_seconds(records: Records, name: str) -> float | None:
    if not has_column(records, name):
        return None
    v = column(records, name)
    return float(np.nanmean(v))


def proxy_table(records: Records, proxies: Sequence[str] = tuple(PROXIES), *, keep: float = 0.3,
                top: float = 0.1, n_boot: int = 1000, rng: RngLike = None) -> ProxyTable:
    """Each proxy's Spearman with final PGD accuracy (with CI), its top-``top`` recall when keeping
    ``keep`` of the candidates, and its cost in seconds per candidate (mean of its ``seconds_*`` column).

    Per-cell FSP distances are summarised by :func:`deep_mean` (the deepest third of the cells), the
    score the search's FSP filter ranks by. Only
    candidates with a final PGD accuracy and the proxy's value count; when the run used the FSP
    filter, the filtered-out candidates have no final accuracy and every recall is over the
    finetuned ones only (noted). Proxies whose column is absent are left out with a note.

    Raises:
        ValueError: an unknown proxy name, records without ``pgd_acc``.
    """
    unknown = [p for p in proxies if p not in PROXIES]
    if unknown:
        raise ValueError(f"proxy_table: unknown proxy {unknown[0]!r}; expected some of {', '.join(PROXIES)}")
    gen = _generator(rng)
    target = column(records, "pgd_acc")
    notes: list[str] = []
    if has_column(records, "filtered_out") and any(r.get("filtered_out") for r in records):
        notes.append(f"{sum(bool(r.get('filtered_out')) for r in records)} candidates were filtered out before "
                     "finetuning (no final PGD accuracy): recalls are over the finetuned candidates only")
    rows = []
    for name in proxies:
        col, sec, lower = PROXIES[name]
        if not has_column(records, col):
            notes.append(f"{name}: column {col!r} absent, left out")
            continue
        values = deep_mean(list_column(records, col)) if isinstance(
            next(r[col] for r in records if r.get(col) is not None), list) else column(records, col)
        ok = np.isfinite(values) & np.isfinite(target)
        try:
            q = filter_quality(values[ok], target[ok], keep=keep, top=top, lower_is_better=lower, n_boot=n_boot,
                               rng=gen, names=(col, "pgd_acc"))
        except ValueError as e:
            notes.append(f"{name}: {e}")
            continue
        rows.append(ProxyRow(proxy=name, column=col, lower_is_better=lower, quality=q,
                             seconds_per_candidate=_mean_seconds(records, sec)))
    return ProxyTable(rows=tuple(rows), keep=keep, top=top, notes=tuple(notes),
                      finetune_seconds=_mean_seconds(records, "seconds_finetune"))

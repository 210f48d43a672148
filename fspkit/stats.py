"""Statistics of a robust architecture search: correlations with bootstrap intervals, regressions, the
paper's Findings #1-#3, and how well a cheap score filters candidates (numpy, scipy, scikit-learn).

Every function validates its inputs (equal lengths, no NaN, at least 3 points, no constant column)
and raises one ``ValueError`` naming the offending column; every random draw goes through an explicit
``numpy.random.Generator`` or int seed (``rng``; ``None`` means seed 0, so the same inputs always give
the same intervals). Results are frozen dataclasses; ``fspkit.study`` turns them into reports.

Paper: Guo et al., "When NAS Meets Robustness: In Search of Robust Architectures against
Adversarial Attacks", CVPR 2020, section 3 (Findings #1-#3).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = [
    "BITS_PER_CELL", "Correlation", "Finding1", "Finding2", "bit_names", "column", "correlate", "finding1",
    "finding2", "has_column", "list_column", "partial_correlation",
]

log = logging.getLogger(__name__)

Records = Sequence[Mapping[str, Any]]
RngLike = np.random.Generator | int | None
METHODS = ("spearman", "pearson", "kendall")

# ---------------------------------------------------------------------------------- validation


def _generator(rng: RngLike) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, int) and not isinstance(rng, bool):
        return np.random.default_rng(rng)
    raise TypeError(f"rng: expected a numpy.random.Generator, an int seed or None, got {type(rng).__name__}. "
                    "Hint: numpy.random.default_rng(0)")


def _seed(rng: np.random.Generator) -> int:
    """An int seed for a scikit-learn estimator, drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))


def _vector(values: Any, name: str, *, n: int | None = None, other: str = "", min_n: int = 3,
            constant_ok: bool = False) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name}: expected a sequence of numbers, got {type(values).__name__} ({e})") from e
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence, got an array of shape {arr.shape}")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values but {other} has {n}: they must be paired point by point")
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise ValueError(f"{name} holds {len(bad)} missing/NaN/inf value(s) (first at index {bad[0]}); expected "
                         "finite numbers. Hint: drop those rows first (e.g. candidates the FSP filter left out)")
    if len(arr) < min_n:
        raise ValueError(f"{name}: need at least {min_n} points, got {len(arr)}")
    if not constant_ok and np.ptp(arr) == 0:
        raise ValueError(f"{name} is constant ({arr[0]:g} for all {len(arr)} points): a correlation or slope "
                         "with it is undefined. Hint: leave that column out")
    return arr


def _method(method: str, allowed: Sequence[str] = METHODS) -> str:
    if method not in allowed:
        raise ValueError(f"method: expected one of {', '.join(allowed)}, got {method!r}")
    return method


def _n_boot(n_boot: int) -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 0:
        raise ValueError(f"n_boot: expected an int >= 0 (0: no interval), got {n_boot!r}")
    return n_boot


def _fraction(value: float, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1:
        raise ValueError(f"{name}: expected a fraction in (0, 1], got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------- records


def has_column(records: Records, name: str) -> bool:
    """True when at least one record holds a non-null ``name``."""
    return any(r.get(name) is not None for r in records)


def column(records: Records, name: str) -> np.ndarray:
    """Column ``name`` as floats, NaN where a record lacks it or holds null.  Shape (n,)."""
    if not has_column(records, name):
        raise ValueError(f"column {name!r} is absent from all {len(records)} records")
    try:
        return np.array([np.nan if r.get(name) is None else float(r[name]) for r in records])
    except (TypeError, ValueError) as e:
        raise TypeError(f"column {name!r}: expected numbers ({e})") from e


def list_column(records: Records, name: str) -> np.ndarray:
    """A list-valued column (``fsp``, ``bits``) as an (n, L) float array; rows of nulls are NaN."""
    if not has_column(records, name):
        raise ValueError(f"column {name!r} is absent from all {len(records)} records")
    lengths = {len(r[name]) for r in records if r.get(name) is not None}
    if len(lengths) != 1:
        raise ValueError(f"column {name!r}: lists of different lengths {sorted(lengths)}; expected one value per "
                         "cell (or per bit) in every record. Hint: records from different networks were mixed")
    width = lengths.pop()
    rows = [[np.nan] * width if r.get(name) is None else r[name] for r in records]
    return np.array(rows, dtype=float)


# ---------------------------------------------------------------------------------- correlation


@dataclass(frozen=True, kw_only=True)
class Correlation:
    """A rank or linear correlation with its bootstrap interval.

    Attributes:
        method: ``spearman``, ``pearson`` or ``kendall`` (tau-b).
        coef: the coefficient on all points.
        pvalue: two-sided p-value of no association (scipy's; t-test for partial correlations).
        ci: bootstrap percentile interval at ``level`` (NaN when ``n_boot`` was 0).
        n: number of points.
        n_boot: resamples drawn; ``n_boot_valid`` of them had a defined coefficient.
        names: the two variables; ``control``: the variable partialled out, if any.
    """

    method: str
    coef: float
    pvalue: float
    ci: tuple[float, float]
    n: int
    n_boot: int
    n_boot_valid: int
    level: float
    names: tuple[str, str]
    control: str | None = None


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the same row of ``b``; (B, n) -> (B,), NaN if constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def _resample_ranks(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks (from 1, ties share their mean rank, as ``scipy.stats.rankdata``) of every resample
    ``v[idx[b]]`` without sorting: a draw's rank is the number of draws below its value plus half
    of its own tie group.  idx (B, n) -> (B, n)."""
    _, group = np.unique(v, return_inverse=True)  # (n,) dense tie group of each point, in value order
    n_groups = int(group.max()) + 1
    g = group[idx]  # (B, n)
    rows = np.arange(len(idx))[:, None] * n_groups
    counts = np.bincount((g + rows).ravel(), minlength=len(idx) * n_groups).reshape(len(idx), n_groups)
    below = np.cumsum(counts, axis=1) - counts  # (B, G) draws in lower groups
    return np.take_along_axis(below + (counts + 1) / 2, g, axis=1)


def _boot_coefs(x: np.ndarray, y: np.ndarray, method: str, idx: np.ndarray) -> np.ndarray:
    """The coefficient on each resample ``x[idx[b]], y[idx[b]]``; idx (B, n) -> (B,)."""
    if method == "spearman":  # rank within each resample (average ranks for ties), then Pearson
        return _rowwise_pearson(_resample_ranks(x, idx), _resample_ranks(y, idx))
    xs, ys = x[idx], y[idx]  # (B, n)
    if method == "pearson":
        return _rowwise_pearson(xs, ys)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array([sps.kendalltau(a, b).statistic for a, b in zip(xs, ys, strict=True)])


def _interval(boot: np.ndarray, level: float) -> tuple[tuple[float, float], int]:
    ok = boot[np.isfinite(boot)]
    if len(ok) == 0:
        return (math.nan, math.nan), 0
    lo, hi = np.percentile(ok, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi)), len(ok)


def _coef(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    res: Any
    if method == "spearman":
        res = sps.spearmanr(x, y)
    elif method == "pearson":
        res = sps.pearsonr(x, y)
    else:
        res = sps.kendalltau(x, y)
    return float(res.statistic), float(res.pvalue)


def correlate(x: Any, y: Any, *, method: str = "spearman", n_boot: int = 1000, rng: RngLike = None,
              names: tuple[str, str] = ("x", "y"), level: float = 0.95) -> Correlation:
    """Correlation of ``x`` and ``y`` with a bootstrap percentile interval.

    The ``n_boot`` resamples draw n point pairs with replacement; each is ranked once (Spearman:
    average ranks, as scipy) and correlated in one vectorised pass. Resamples where a variable is
    constant have no coefficient and are left out (``n_boot_valid``).

    Args:
        x, y: paired observations (n >= 3, finite, neither constant).
        method: ``spearman`` (default), ``pearson`` or ``kendall`` (tau-b).
        n_boot: bootstrap resamples (0: no interval).
        rng: generator or seed of the resampling (None: seed 0).
        names: the variables' names, used in errors and reports.
        level: coverage of the interval.

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a constant variable, unknown method.
    """
    _method(method)
    _n_boot(n_boot)
    _fraction(level, "level")
    xa = _vector(x, names[0])
    ya = _vector(y, names[1], n=len(xa), other=names[0])
    coef, pvalue = _coef(xa, ya, method)
    ci, valid = (math.nan, math.nan), 0
    if n_boot:
        idx = _generator(rng).integers(0, len(xa), size=(n_boot, len(xa)))
        ci, valid = _interval(_boot_coefs(xa, ya, method, idx), level)
    return Correlation(method=method, coef=coef, pvalue=pvalue, ci=ci, n=len(xa), n_boot=n_boot,
                       n_boot_valid=valid, level=level, names=(names[0], names[1]))


def _residualize(v: np.ndarray, z: np.ndarray) -> np.ndarray:
    design = np.column_stack([np.ones(len(z)), z])
    beta = np.linalg.lstsq(design, v, rcond=None)[0]
    return v - design @ beta


def partial_correlation(x: Any, y: Any, control: Any, *, method: str = "spearman", n_boot: int = 1000,
                        rng: RngLike = None, names: tuple[str, str, str] = ("x", "y", "control"),
                        level: float = 0.95) -> Correlation:
    """Correlation of ``x`` and ``y`` with ``control`` partialled out.

    Pearson: correlate the residuals of x and y after a least-squares fit on ``control`` (with an
    intercept). Spearman: the same on ranks (x, y and control each ranked first). The p-value is
    the t-test with n - 3 degrees of freedom, ``t = r * sqrt((n - 3) / (1 - r^2))``. The bootstrap
    uses the equivalent closed form ``(r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2))`` per resample.

    Raises:
        ValueError: unequal lengths, NaN, fewer than 4 points, a constant variable, method not
            ``spearman``/``pearson``.
    """
    _method(method, ("spearman", "pearson"))
    _n_boot(n_boot)
    xa = _vector(x, names[0], min_n=4)
    ya = _vector(y, names[1], n=len(xa), other=names[0])
    za = _vector(control, names[2], n=len(xa), other=names[0])
    tx, ty, tz = (sps.rankdata(v) for v in (xa, ya, za)) if method == "spearman" else (xa, ya, za)
    rx, ry = _residualize(tx, tz), _residualize(ty, tz)
    denom = math.sqrt(float(rx @ rx) * float(ry @ ry))
    if denom == 0:
        raise ValueError(f"{names[0]} or {names[1]} is fully explained by {names[2]}: the partial correlation is "
                         "undefined. Hint: check that the control is not a copy of a variable")
    r = float(rx @ ry) / denom
    df = len(xa) - 3
    t = r * math.sqrt(df / max(1e-300, 1 - r * r))
    pvalue = float(2 * sps.t.sf(abs(t), df))
    ci, valid = (math.nan, math.nan), 0
    if n_boot:
        idx = _generator(rng).integers(0, len(xa), size=(n_boot, len(xa)))
        if method == "spearman":
            bx, by, bz = (_resample_ranks(v, idx) for v in (xa, ya, za))
        else:
            bx, by, bz = xa[idx], ya[idx], za[idx]
        rxy, rxz, ryz = _rowwise_pearson(bx, by), _rowwise_pearson(bx, bz), _rowwise_pearson(by, bz)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
        ci, valid = _interval(boot, level)
    return Correlation(method=method, coef=r, pvalue=pvalue, ci=ci, n=len(xa), n_boot=n_boot, n_boot_valid=valid,
                       level=level, names=(names[0], names[1]), control=names[2])


# ---------------------------------------------------------------------------------- Finding #1

_SOURCES = ("s0", "s1", "f1", "f2", "f3")
# Edge order of robnet.genotype (SPEC §1): f1 <- s0,s1 | f2 <- s0,s1,f1 | f3 <- ... | f4 <- ...
_EDGES = tuple((src, node) for node in range(4) for src in range(node + 2))
BITS_PER_CELL = 28


def bit_names(n_bits: int) -> tuple[str, ...]:
    """Name of every genotype bit, ``e4:f1->f2:id`` / ``e4:f1->f2:conv`` (identity bit first, as in
    ``robnet.genotype``); with more than one cell (cell-free) prefixed by the cell, ``c3:e4:f1->f2:conv``.

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
            ``n_constant`` bits do not vary there (weight 0, left out of the share).
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
        raise ValueError("bits: every entry must be 0 or 1 (genotype bit vectors, robnet.genotype.Genotype.bits())")
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
        ValueError: bad bits, NaN, unequal lengths, constant accuracy, k out of range.
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
    order = np.argsort(-pgd, kind="stable")
    top, bottom = order[:k], order[n - k:][::-1]
    index = np.concatenate([top, bottom])
    labels = np.concatenate([np.ones(k, dtype=int), np.zeros(k, dtype=int)])
    xs = x[index]
    clf = LogisticRegression(C=C, max_iter=5000).fit(xs, labels)
    weights = clf.coef_[0].copy()
    varies = np.ptp(xs, axis=0) > 0
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


# ---------------------------------------------------------------------------------- Finding #2


@dataclass(frozen=True, kw_only=True, eq=False)
class Finding2:
    """Density against PGD accuracy (paper Finding #2 / Eq. 2, Fig. 5): a least-squares line with its
    confidence band, and the Spearman correlation.

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
    """Finding #2: is a denser architecture more robust? Linear fit, band and Spearman (see :class:`Finding2`).

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

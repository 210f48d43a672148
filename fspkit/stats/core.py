"""The statistics underneath ``fspkit.stats.findings`` (import them from there): input validation, record
columns, correlations with vectorised bootstrap intervals, partial correlations, least squares and
filter quality. numpy, scipy and scikit-learn only.

Every function validates its inputs (equal lengths, no NaN, at least 3 points, no constant column)
and raises one ``ValueError`` naming the offending column; every random draw goes through an explicit
``numpy.random.Generator`` or int seed (``rng``; ``None`` means seed 0, so the same inputs always give
the same intervals).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

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
    # residual sum of squares at rounding level of the total: the control explains the variable
    if float(rx @ rx) <= 1e-12 * float(((tx - tx.mean()) ** 2).sum()) or \
            float(ry @ ry) <= 1e-12 * float(((ty - ty.mean()) ** 2).sum()):
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


# ---------------------------------------------------------------------------------- regression


@dataclass(frozen=True, kw_only=True)
class Regression:
    """Ordinary least squares ``y = intercept + sum_j coef[j] * X[:, j]``.

    Attributes:
        names: the predictors; ``coef``, ``stderr``, ``ci``, ``pvalue`` are dicts keyed by them.
        stderr: ``sqrt(diag(s^2 (D^T D)^-1))`` with D the design with an intercept column and
            ``s^2 = RSS / (n - p - 1)``; ``ci`` is ``coef -/+ t * stderr`` at ``level``, t with n - p - 1 df.
        r2: in-sample R^2. cv_r2: out-of-fold R^2 of a shuffled ``cv_folds``-fold cross-validation (the
            pooled predictions of the held-out folds against y; negative when worse than the mean;
            ``KFold(shuffle=True, random_state=<an int drawn from rng>)``).
        n: points; y_name: the response.
    """

    names: tuple[str, ...]
    y_name: str
    coef: dict[str, float]
    stderr: dict[str, float]
    ci: dict[str, tuple[float, float]]
    pvalue: dict[str, float]
    intercept: float
    intercept_stderr: float
    r2: float
    cv_r2: float
    cv_folds: int
    n: int
    level: float


def regress(X: Any, y: Any, names: Sequence[str], *, y_name: str = "y", level: float = 0.95, cv: int = 5,
            rng: RngLike = None) -> Regression:
    """OLS with an intercept, standard errors, t intervals and a cross-validated R^2 (see :class:`Regression`).

    Args:
        X: (n, p) predictors (a 1-D array is one predictor).
        y: (n,) response.
        names: one name per column of X.
        y_name: the response's name (errors, reports).
        level: coverage of the intervals.
        cv: folds of the cross-validated R^2 (k = 5 by default, at most n).
        rng: seed or generator of the fold shuffle.

    Raises:
        ValueError: a NaN or constant column (named), unequal lengths, too few points for p predictors
            (n - p - 1 < 1), collinear predictors (naming the first redundant one), duplicate names.
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict

    xa = np.asarray(X, dtype=float)
    xa = xa[:, None] if xa.ndim == 1 else xa
    names = tuple(names)
    if xa.ndim != 2 or xa.shape[1] != len(names) or len(set(names)) != len(names):
        raise ValueError(f"regress: X has shape {xa.shape} but names are {names}: expected one distinct name "
                         "per column")
    ya = _vector(y, y_name, n=len(xa), other="X")
    for j, name in enumerate(names):
        _vector(xa[:, j], name, n=len(ya), other=y_name)
    n, p = xa.shape
    if n - p - 1 < 1:
        raise ValueError(f"regress: {p} predictor(s) and an intercept need at least {p + 2} points, got {n}")
    design = np.column_stack([np.ones(n), xa])
    for j in range(1, p + 1):
        if np.linalg.matrix_rank(design[:, : j + 1]) < j + 1:
            raise ValueError(f"regress: predictor {names[j - 1]!r} is a linear combination of the intercept and "
                             f"{list(names[: j - 1])}: the coefficients are not identifiable. Hint: drop it")
    beta, *_ = np.linalg.lstsq(design, ya, rcond=None)
    resid = ya - design @ beta
    df = n - p - 1
    cov = float(resid @ resid) / df * np.linalg.inv(design.T @ design)
    se = np.sqrt(np.diag(cov))
    t = float(sps.t.ppf(0.5 + level / 2, df))
    pv = 2 * sps.t.sf(np.abs(beta / se), df)
    folds = min(cv, n)
    kf = KFold(n_splits=folds, shuffle=True, random_state=_seed(_generator(rng)))
    pred = cross_val_predict(LinearRegression(), xa, ya, cv=kf)
    return Regression(names=names, y_name=y_name, coef={m: float(b) for m, b in zip(names, beta[1:], strict=True)},
                      stderr={m: float(s) for m, s in zip(names, se[1:], strict=True)},
                      ci={m: (float(b - t * s), float(b + t * s)) for m, b, s in zip(names, beta[1:], se[1:],
                                                                                     strict=True)},
                      pvalue={m: float(v) for m, v in zip(names, pv[1:], strict=True)},
                      intercept=float(beta[0]), intercept_stderr=float(se[0]),
                      r2=float(1 - resid @ resid / ((ya - ya.mean()) @ (ya - ya.mean()))),
                      cv_r2=float(r2_score(ya, pred)), cv_folds=folds, n=n, level=level)


# ---------------------------------------------------------------------------------- filters and proxies


@dataclass(frozen=True, kw_only=True)
class FilterQuality:
    """How well a cheap score picks the most robust candidates before finetuning.

    Attributes:
        n: candidates; n_keep = ceil(keep * n) kept by the score (stable order on ties).
        n_top: the true top by final PGD accuracy: every candidate at or above the ceil(top * n)-th
            highest accuracy (ties at the edge all count, so n_top may exceed ceil(top * n)).
        recall: n_top_kept / n_top; random_recall: n_keep / n, the expected recall of a random filter.
        compute_saved: 1 - n_keep / n, the share of finetuning runs skipped.
        spearman: the score against final PGD accuracy (negative is good when lower_is_better).
    """

    n: int
    keep: float
    top: float
    n_keep: int
    n_top: int
    n_top_kept: int
    recall: float
    random_recall: float
    compute_saved: float
    lower_is_better: bool
    spearman: Correlation


def filter_quality(score: Any, final_pgd: Any, *, keep: float = 0.3, top: float = 0.1, lower_is_better: bool = True,
                   n_boot: int = 1000, rng: RngLike = None,
                   names: tuple[str, str] = ("score", "pgd_acc")) -> FilterQuality:
    """Recall of the true top-``top`` candidates among the ``keep`` fraction with the best score
    (the smallest when ``lower_is_better``, as for FSP distance; see :class:`FilterQuality`).

    Raises:
        ValueError: unequal lengths, NaN, fewer than 3 points, a constant column, keep/top outside (0, 1].
    """
    _fraction(keep, "keep")
    _fraction(top, "top")
    s = _vector(score, names[0])
    y = _vector(final_pgd, names[1], n=len(s), other=names[0])
    n = len(s)
    n_keep = math.ceil(keep * n - 1e-9)
    kept = np.argsort(s if lower_is_better else -s, kind="stable")[:n_keep]
    edge = np.sort(y)[::-1][math.ceil(top * n - 1e-9) - 1]
    is_top = y >= edge
    hit = int(np.sum(is_top[kept]))
    return FilterQuality(n=n, keep=keep, top=top, n_keep=n_keep, n_top=int(is_top.sum()), n_top_kept=hit,
                         recall=hit / int(is_top.sum()), random_recall=n_keep / n, compute_saved=1 - n_keep / n,
                         lower_is_better=lower_is_better,
                         spearman=correlate(s, y, n_boot=n_boot, rng=rng, names=names))


# proxy -> (score column, seconds column, lower is better). FSP distance: lower is more robust (Finding #3);
# gradient norm, SynFlow, NASWOT and PGD accuracy: higher is better, as their papers rank architectures.

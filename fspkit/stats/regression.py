"""Ordinary least squares with standard errors, t intervals and a cross-validated R^2: the
descriptive regression of PGD accuracy on the architecture statistics (docs/study.md: a description
beside the claims' tests, never the test that decides a verdict)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from fspkit.stats.core import RngLike, _generator, _seed, _vector

__all__ = ["Regression", "regress"]


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


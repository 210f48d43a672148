"""Input checks, record columns and the analysis-wide constants of ``fspkit.stats``.

Every function of the package validates its inputs (equal lengths, no NaN, at least 3 points, no
constant column) and raises one ``ValueError`` naming the offending column; every random draw goes
through an explicit ``numpy.random.Generator`` or int seed (``rng``; ``None`` means seed 0, so the
same inputs always give the same intervals and p-values).

The constants are the decisions of docs/study.md, stated before any data are seen: the test level,
the interval coverage, the resample counts, and the size above which resampling gives way to the
large-sample (normal-theory) formulas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ALPHA", "LEVEL", "METHODS", "MIN_DISTINCT_RESAMPLES", "N_BOOT", "N_PERM", "RESAMPLE_MAX_N", "Records",
    "RngLike", "column", "has_column", "list_column",
]

Records = Sequence[Mapping[str, Any]]
RngLike = np.random.Generator | int | None
METHODS = ("spearman", "pearson", "kendall")

ALPHA = 0.05  # two-sided level of every test
LEVEL = 0.95  # coverage of every interval
N_BOOT = 1000  # bootstrap resamples per interval
N_PERM = 999  # Monte Carlo permutations per test (smallest p-value 1/1000)
# Above this many points, intervals and p-values come from the large-sample formulas (Fisher z with
# the Bonett-Wright standard error, normal approximations); below, from resampling. docs/study.md.
RESAMPLE_MAX_N = 1000
# A bootstrap interval is reported only when the sample has at least this many distinct resamples
# (C(2n - 1, n): 35 for n = 4, 1716 for n = 7): fewer make a lattice, not an interval.
MIN_DISTINCT_RESAMPLES = 1000
# Index entries per resampling chunk: (rows, n) int64 indices take 8 bytes each (32 MB).
CHUNK_ELEMENTS = 4_000_000


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


def _count_arg(value: int, name: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected an int >= 0 (0: {what}), got {value!r}")
    return value


def _n_boot(n_boot: int) -> int:
    return _count_arg(n_boot, "n_boot", "no interval")


def _n_perm(n_perm: int) -> int:
    return _count_arg(n_perm, "n_perm", "the large-sample p-value")


def _max_n(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 3):
        raise ValueError(f"resample_max_n: expected an int >= 3 or None (always resample), got {value!r}")
    return value


def _fraction(value: float, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1:
        raise ValueError(f"{name}: expected a fraction in (0, 1], got {value!r}")
    return float(value)


def _sign(sign: int) -> int:
    if sign not in (1, -1) or isinstance(sign, bool):
        raise ValueError(f"sign: expected +1 (higher predicts more robust) or -1 (lower does), got {sign!r}")
    return sign


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

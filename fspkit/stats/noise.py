"""The measurement's own noise: how reliable a candidate's PGD accuracy is, what that caps, what the run
could detect, and how stable its top set is (docs/study.md).

* Test-retest: the search measures a subset of candidates twice on disjoint halves of the validation
  images with independent attacks (``pgd_acc_half`` and ``pgd_acc_retest``); their rank correlation r is
  the reliability of a half-size measurement. Spearman-Brown gives that of the full one (twice the
  images): ``R = 2 r / (1 + r)``.
* Noise ceiling: no score can correlate with the measured PGD accuracy better than ``sqrt(R)``.
* Smallest detectable correlation at this run's n (80% power, two-sided 0.05, Fisher z):
  :func:`fspkit.stats.inference.detectable_correlation`; divided by the ceiling, the smallest
  detectable correlation with the noise-free accuracy.
* Top-set stability: each candidate's accuracy redrawn as ``Binomial(n_eval, acc) / n_eval`` (a
  parametric bootstrap of the evaluation); the share of the top ``top`` fraction that stays in it.

A claim is "powered" when its test's smallest detectable correlation is at most ``REFERENCE_EFFECT``
(a medium true correlation, Cohen 1988) times the noise ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fspkit.stats.core import ALPHA, CHUNK_ELEMENTS, LEVEL, Records, RngLike, _generator, column, has_column
from fspkit.stats.correlation import Correlation, correlate
from fspkit.stats.filtering import top_mask
from fspkit.stats.inference import POWER, detectable_correlation
from robnet.search import records as R

__all__ = ["REFERENCE_EFFECT", "Noise", "measurement_noise"]

REFERENCE_EFFECT = 0.3
STABILITY_DRAWS = 200


@dataclass(frozen=True, kw_only=True)
class Noise:
    """The measurement noise of the run's PGD accuracies (module docstring).

    Attributes:
        n: candidates with a final PGD accuracy; n_eval: the median validation images behind each.
        n_retest, retest: candidates measured twice, and the rank correlation of the two halves.
        reliability, reliability_ci: Spearman-Brown reliability of the full measurement (None
            without a retest; 0 where r <= 0: the interval's ends are mapped the same way).
        ceiling, ceiling_ci: ``sqrt(reliability)``, the largest correlation any score can reach.
        alpha, power: of the detectable effect; detectable: the smallest correlation a test on all n
            candidates detects; detectable_true: the same divided by the ceiling.
        reference_effect: the true correlation a powered claim must be able to detect.
        top, n_top, overlap, overlap_ci, draws: the top-set stability (None without ``n_eval``).
        notes: what could not be measured, and why.
    """

    n: int
    n_eval: int | None
    n_retest: int
    retest: Correlation | None
    reliability: float | None
    reliability_ci: tuple[float, float]
    ceiling: float | None
    ceiling_ci: tuple[float, float]
    alpha: float
    power: float
    detectable: float
    detectable_true: float | None
    reference_effect: float
    top: float
    n_top: int
    overlap: float | None
    overlap_ci: tuple[float, float]
    draws: int
    notes: tuple[str, ...]

    def powered(self, detectable: float) -> bool:
        """Whether a test whose smallest detectable correlation is ``detectable`` can see a true
        correlation of ``reference_effect`` through the noise ceiling."""
        return detectable <= self.reference_effect * (self.ceiling if self.ceiling is not None else 1.0)


def _spearman_brown(r: float) -> float:
    """Reliability of the doubled measurement; 0 when the halves do not agree at all (r <= 0)."""
    return 2 * r / (1 + r) if r > 0 else 0.0 if math.isfinite(r) else math.nan


def _retest(records: Records, n_boot: int, gen: np.random.Generator, notes: list[str]
            ) -> tuple[int, Correlation | None]:
    if not (has_column(records, R.PGD_ACC_HALF) and has_column(records, R.PGD_ACC_RETEST)):
        notes.append("test-retest: no candidate was measured twice (pgd_acc_half / pgd_acc_retest absent); the "
                     "noise ceiling is unknown and taken as 1")
        return 0, None
    a, b = column(records, R.PGD_ACC_HALF), column(records, R.PGD_ACC_RETEST)
    ok = np.isfinite(a) & np.isfinite(b)
    try:
        return int(ok.sum()), correlate(a[ok], b[ok], n_boot=n_boot, rng=gen,
                                        names=(R.PGD_ACC_HALF, R.PGD_ACC_RETEST))
    except ValueError as e:
        notes.append(f"test-retest: no correlation ({e})")
        return int(ok.sum()), None


def _stability(acc: np.ndarray, n_eval: np.ndarray, top: float, gen: np.random.Generator,
               level: float) -> tuple[int, float, tuple[float, float]]:
    is_top = top_mask(acc, top)
    m = math.ceil(top * len(acc) - 1e-9)
    counts = np.round(acc * n_eval).astype(np.int64)
    rows = max(1, CHUNK_ELEMENTS // len(acc))
    overlaps = []
    for start in range(0, STABILITY_DRAWS, rows):
        draw = gen.binomial(n_eval, counts / n_eval, size=(min(rows, STABILITY_DRAWS - start), len(acc))) / n_eval
        edge = -np.partition(-draw, m - 1, axis=1)[:, m - 1]
        again = draw >= edge[:, None]  # (c, n) the top set of each redraw
        overlaps.append((again & is_top).sum(axis=1) / is_top.sum())
    o = np.concatenate(overlaps)
    lo, hi = np.percentile(o, [50 * (1 - level), 50 * (1 + level)])
    return int(is_top.sum()), float(o.mean()), (float(lo), float(hi))


def measurement_noise(records: Records, *, top: float = 0.1, n_boot: int = 1000, rng: RngLike = None,
                      alpha: float = ALPHA, power: float = POWER, level: float = LEVEL) -> Noise:
    """Test-retest reliability, noise ceiling, detectable effect and top-set stability of the records'
    final PGD accuracies (module docstring).

    Raises:
        ValueError: no record with a final PGD accuracy.
    """
    gen, notes = _generator(rng), list[str]()
    rows = [r for r in records if r.get(R.PGD_ACC) is not None]
    if not rows:
        raise ValueError("measurement_noise: no record has a final PGD accuracy")
    n_retest, retest = _retest(records, n_boot, gen, notes)
    nan2 = (math.nan, math.nan)
    rel: float | None = None
    ceiling: float | None = None
    rel_ci, ceiling_ci = nan2, nan2
    if retest is not None:
        rel = _spearman_brown(retest.coef)
        rel_ci = (_spearman_brown(retest.ci[0]), _spearman_brown(retest.ci[1]))
        if rel == 0:
            notes.append(f"test-retest: r = {retest.coef:+.2f} <= 0, the measurement shows no reliable ranking")
        ceiling = math.sqrt(rel)
        ceiling_ci = (math.sqrt(rel_ci[0]), math.sqrt(rel_ci[1]))
    detectable = detectable_correlation(len(rows), alpha=alpha, power=power)
    n_eval = column(rows, R.N_EVAL) if has_column(rows, R.N_EVAL) else None
    n_top, overlap, overlap_ci = 0, None, (math.nan, math.nan)
    if n_eval is None or not np.isfinite(n_eval).all() or len(rows) < 2:
        notes.append("top-set stability: n_eval (validation images per accuracy) not recorded")
    else:
        n_top, overlap, overlap_ci = _stability(column(rows, R.PGD_ACC), n_eval.astype(np.int64), top, gen, level)
    return Noise(n=len(rows), n_eval=None if n_eval is None else int(np.median(n_eval)), n_retest=n_retest,
                 retest=retest, reliability=rel, reliability_ci=rel_ci, ceiling=ceiling,
                 ceiling_ci=ceiling_ci, alpha=alpha, power=power, detectable=detectable,
                 detectable_true=None if ceiling is None else min(1.0, detectable / ceiling) if ceiling else 1.0,
                 reference_effect=REFERENCE_EFFECT, top=top, n_top=n_top, overlap=overlap, overlap_ci=overlap_ci,
                 draws=STABILITY_DRAWS if overlap is not None else 0, notes=tuple(notes))

"""The paper's claims and this run's verdict on each, from the test docs/study.md states for it.

Every claim has a stable id (``f1_density``, ``f1_classifier``, ``f2_direct_edges``, ``f3_fsp_deep``), the
test that decides its verdict (its p-value, effect, interval and the columns it holds fixed), and the
other tests beside it: the marginal one, secondary controls, sensitivity checks. Verdicts:

* ``agrees`` / ``disagrees``: the deciding test rejects "no association" at ALPHA (two-sided), the
  effect in the paper's direction / against it (every effect is signed so that positive is the
  paper's direction);
* ``inconclusive`` otherwise, with a ``reason``: ``too few candidates: n = 4, need >= 5`` when the test
  cannot reach ALPHA at all on this sample (its smallest attainable p-value is larger), ``underpowered``
  when the effect lies below the smallest one the test detects with 80% power, else none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fspkit.stats.core import ALPHA
from fspkit.stats.correlation import Correlation
from fspkit.stats.inference import detectable_correlation
from fspkit.stats.noise import Noise
from fspkit.stats.text import corr_text, fmt, p_text

__all__ = ["CLAIM_IDS", "PAPER", "Claim", "Evidence", "decide", "evidence_of", "min_n_for_level"]

CLAIM_IDS = ("f1_density", "f1_classifier", "f2_direct_edges", "f3_fsp_deep")
FINDINGS = {"f1_density": "Finding #1 (density)", "f1_classifier": "Finding #1 (classifier)",
            "f2_direct_edges": "Finding #2 (direct edges)", "f3_fsp_deep": "Finding #3 (FSP, deep cells)"}
PAPER = {
    "f1_classifier": "a linear classifier separating the top-300 from the bottom-300 of 1000 architectures has "
                     "almost all of its weights positive: more connections, more robust",
    "f1_density": "architecture density is positively correlated with PGD accuracy",
    "f2_direct_edges": "under a small conv budget, convs on direct edges help robustness more than on skip edges",
    "f3_fsp_deep": "robust networks have a lower FSP distance in the deeper cells (negative correlation of the "
                   "deeper cells' distance with PGD accuracy)",
}
VERDICTS = ("agrees", "disagrees", "inconclusive")


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """One test shown beside a claim.

    Attributes:
        role: ``decides`` (the verdict's test), ``marginal``, ``secondary`` (another control) or
            ``sensitivity``.
        label: what was tested, in words; statistic: its value (signed: positive is the paper's
            direction), with ``ci`` (``ci_method``) and ``pvalue`` (``p_method``).
        n: candidates; controls: columns held fixed (empty: none); note: a caveat.
        kind: ``correlation``, ``difference`` (of two correlations), ``share`` (of positive weights) or
            ``accuracy``: how the statistic reads (the last two are fractions, not signed effects).
    """

    role: str
    label: str
    statistic: float
    ci: tuple[float, float]
    ci_method: str
    pvalue: float
    p_method: str
    n: int
    controls: tuple[str, ...]
    note: str = ""
    kind: str = "correlation"


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One claim of the paper beside this run's verdict.

    Attributes:
        id: stable id (:data:`CLAIM_IDS`); finding: the paper's finding; paper: what the paper reported.
        verdict: ``agrees``, ``disagrees`` or ``inconclusive``; reason: why inconclusive ("" otherwise).
        test: the test that decided the verdict; pvalue, effect, ci, n: its result (None: not run).
        controls: the columns that test held fixed (empty: none).
        detectable: the smallest effect it detects with 80% power at its n; powered: whether that is
            small enough for a medium true effect through the noise ceiling (:class:`fspkit.stats.Noise`).
        evidence: every test shown for the claim, the deciding one first.
        this_run: the verdict and its numbers in one line.
    """

    id: str
    finding: str
    paper: str
    verdict: str
    reason: str
    test: str
    pvalue: float | None
    effect: float | None
    ci: tuple[float, float]
    n: int
    controls: tuple[str, ...]
    detectable: float | None
    powered: bool
    evidence: tuple[Evidence, ...]
    this_run: str


def min_n_for_level(alpha: float = ALPHA, tests: int = 1) -> int:
    """The smallest n at which an exact permutation test of a correlation can reach ``alpha`` when its
    p-value is multiplied by ``tests`` (Holm's first step): ``tests * 2 / n! <= alpha``."""
    n = 2
    while tests * 2 / math.factorial(n) > alpha:
        n += 1
    return n


def decide(effect: float | None, pvalue: float | None, min_pvalue: float, detectable: float, *, too_few: str,
           alpha: float = ALPHA, powered: bool = True, effect_free: bool = False) -> tuple[str, str]:
    """(verdict, reason) from the deciding test (module docstring). ``too_few`` is the reason's text when
    the test cannot reach ``alpha``; ``effect_free``: the effect is not a correlation (the classifier's
    share), so "underpowered" means "not significant and not powered" instead of "below detectable"."""
    if pvalue is None or effect is None or not math.isfinite(pvalue):
        return "inconclusive", too_few or "the test could not be run"
    if min_pvalue > alpha:
        return "inconclusive", too_few
    if pvalue < alpha and effect != 0:
        return ("agrees" if effect > 0 else "disagrees"), ""
    small = not powered if effect_free else abs(effect) < detectable
    return "inconclusive", "underpowered" if small else ""


def evidence_of(c: Correlation, role: str, label: str, controls: Sequence[str] = (), note: str = "") -> Evidence:
    """A correlation as an :class:`Evidence` row."""
    return Evidence(role=role, label=label, statistic=c.coef, ci=c.ci, ci_method=c.ci_method, pvalue=c.pvalue,
                    p_method=c.p_method, n=c.n, controls=tuple(controls), note=note)


def claim_from(cid: str, *, verdict: tuple[str, str], test: str, decider: Correlation | None,
               evidence: Sequence[Evidence], noise: Noise, controls: Sequence[str] = (), pvalue: float | None = None,
               n_eff: float | None = None, summary: str = "") -> Claim:
    """A :class:`Claim` whose deciding test is a correlation (``pvalue`` overrides its p-value, e.g. Holm's)."""
    n = 0 if decider is None else decider.n
    detectable = detectable_correlation(n_eff if n_eff is not None else n)
    p = None if decider is None else (decider.pvalue if pvalue is None else pvalue)
    text = summary or (f"not tested: {verdict[1]}" if decider is None else
                       f"{test}: {corr_text(decider)}, {p_text(p)}")
    return Claim(id=cid, finding=FINDINGS[cid], paper=PAPER[cid], verdict=verdict[0], reason=verdict[1], test=test,
                 pvalue=p, effect=None if decider is None else decider.coef,
                 ci=(math.nan, math.nan) if decider is None else decider.ci, n=n, controls=tuple(controls),
                 detectable=detectable, powered=noise.powered(detectable), evidence=tuple(evidence),
                 this_run=text + ("" if decider is None else f"; detectable |effect| >= {fmt(detectable, sign=False)}"))

"""The paper's Findings #1-#3 as claims: for each, the tests docs/study.md states, run on the records,
and the :class:`~fspkit.stats.claims.Claim` with its verdict.

* ``f1_density``: density vs PGD accuracy *within* strata of equal capacity (stratified permutation
  test); beside it the marginal correlation and, as a secondary control, the rank partial
  correlation given parameters (with its caveat, :mod:`fspkit.stats.controls`).
* ``f1_classifier``: the positive share of the identity-bit weights of the classifier fitted within
  strata of equal capacity (label permutation test); beside it the marginal classifier's shares of
  identity, conv and all bits, and the repeated cross-validated accuracy.
* ``f2_direct_edges``: among candidates with a small budget (at most ``SMALL_BUDGET`` sep-convs per
  cell), direct-edge convs vs PGD accuracy within strata of equal conv count: at a fixed conv count,
  one more conv on a direct edge is one less on a skip edge.
* ``f3_fsp_deep``: each deep cell's negated FSP distance vs PGD accuracy, Holm-corrected over the deep
  cells; beside it the deep-cell mean (the filter's score), each cell type, the relative distance, the
  partial correlation given the activation scale, the capacity-stratified test, inherited weights,
  and the pooling check.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np

from fspkit.stats.architecture import DirectConvs
from fspkit.stats.claims import FINDINGS, PAPER, Claim, Evidence, claim_from, decide, evidence_of, min_n_for_level
from fspkit.stats.classifier import Finding1
from fspkit.stats.controls import Strata, stratified_correlation
from fspkit.stats.core import ALPHA, column, has_column, list_column
from fspkit.stats.correlation import Correlation, correlate, partial_correlation
from fspkit.stats.depth import PerCell, deep_mean
from fspkit.stats.inference import detectable_correlation
from fspkit.stats.noise import Noise
from fspkit.stats.text import fmt, p_text
from robnet.search import records as R

__all__ = ["SMALL_BUDGET", "Options", "classifier_claim", "density_claim", "direct_claim", "fsp_claim", "untested"]

Rows = Sequence[Mapping[str, Any]]
SMALL_BUDGET = 7  # "a small budget": at most half of the 14 edges carry a sep-conv
PARTIAL_CAVEAT = ("secondary: with clustered capacity (budgets) a rank partial correlation keeps part of the "
                  "capacity effect (about +0.13, p near 0.04, where accuracy depends on parameters alone)")


class Options(NamedTuple):
    """Resampling settings of the claims' tests."""

    n_boot: int
    n_perm: int
    n_perm_fit: int
    level: float
    resample_max_n: int | None


def _kw(o: Options, rng: np.random.Generator) -> dict[str, Any]:
    return {"n_boot": o.n_boot, "n_perm": o.n_perm, "rng": rng, "level": o.level,
            "resample_max_n": o.resample_max_n}


def _strata_reason(c: Correlation | None, strata: Strata, n: int) -> str:
    need = f"need >= {min_n_for_level()} with the same {strata.column}"
    if c is None:
        return f"too few candidates: n = {n}, {need}"
    return f"too few candidates: n = {c.n} in {c.strata} strata, {need}"


def _kind(c: Correlation | None) -> str:
    """The deciding test's kind in words: a stratified permutation test, or its large-sample form."""
    if c is None or "permutation" in c.p_method:
        return "stratified permutation test"
    return "stratified test, normal approximation"


def _stratified(x: np.ndarray, y: np.ndarray, strata: Strata, keys: np.ndarray, names: tuple[str, str],
                o: Options, rng: np.random.Generator, sign: int = 1) -> Correlation | None:
    try:
        return stratified_correlation(x, y, keys, names=(*names, strata.column), sign=sign, **_kw(o, rng))
    except ValueError:
        return None


def _partial_params(x: np.ndarray, y: np.ndarray, params: np.ndarray | None, name: str, o: Options,
                    rng: np.random.Generator, sign: int = 1) -> Evidence | None:
    if params is None:
        return None
    try:
        c = partial_correlation(x, y, params, names=(name, R.PGD_ACC, R.PARAMS), sign=sign, **_kw(o, rng))
    except ValueError:
        return None
    return evidence_of(c, "secondary", f"rank partial correlation given {R.PARAMS}", (R.PARAMS,), PARTIAL_CAVEAT)


def _params(rows: Rows) -> np.ndarray | None:
    return column(rows, R.PARAMS) if has_column(rows, R.PARAMS) else None


def density_claim(rows: Rows, strata: Strata, marginal: Correlation | None, noise: Noise, o: Options,
                  rng: np.random.Generator) -> Claim:
    """``f1_density`` (module docstring); ``marginal`` is Finding #2's Spearman of the same rows."""
    x, y = column(rows, R.DENSITY), column(rows, R.PGD_ACC)
    decider = _stratified(x, y, strata, strata.keys, (R.DENSITY, R.PGD_ACC), o, rng)
    detectable = detectable_correlation(decider.n_eff if decider else 0)
    verdict = decide(None if decider is None else decider.coef, None if decider is None else decider.pvalue,
                     1.0 if decider is None else decider.min_pvalue, detectable,
                     too_few=_strata_reason(decider, strata, len(rows)))
    test = f"Spearman within strata of equal {strata.column} ({_kind(decider)})"
    evidence = [] if decider is None else [evidence_of(decider, "decides", test, (strata.column,))]
    if marginal is not None:
        evidence.append(evidence_of(marginal, "marginal", "Spearman over all candidates (capacity not held fixed)"))
    partial = _partial_params(x, y, _params(rows), R.DENSITY, o, rng)
    evidence += [partial] if partial else []
    return claim_from("f1_density", verdict=verdict, test=test, decider=decider, evidence=evidence, noise=noise,
                      controls=(strata.column,), n_eff=None if decider is None else decider.n_eff)


def _share_rows(f: Finding1, role: str, where: str, kinds: Sequence[str]) -> list[Evidence]:
    out = []
    for kind in kinds:
        s = f.share(kind)
        null = fmt(s.null_median, sign=False)
        out.append(Evidence(role=role, label=f"positive share of the {kind}-bit weights, {where} "
                                             f"({s.n_positive} of {s.n_positive + s.n_negative})",
                            statistic=s.share, ci=(math.nan, math.nan), ci_method="none: a share of signs",
                            pvalue=s.pvalue, p_method=f"label permutation ({f.n_perm} refits)", n=f.points,
                            controls=(R.CONVS,) if f.stratified else (), note=f"null median {null}", kind="share"))
    return out


def _cv_row(f: Finding1, role: str) -> Evidence:
    return Evidence(role=role, label=f"cross-validated accuracy of that classifier (chance 0.50; mean ± sd "
                                     f"{f.cv_std:.2f} over {f.cv_splits} repeated stratified splits)",
                    statistic=f.cv_accuracy, ci=(math.nan, math.nan), ci_method=f"sd over {f.cv_splits} splits: "
                                                                                f"{f.cv_std:.3f}", pvalue=math.nan,
                    p_method="none", n=f.points, controls=(), kind="accuracy")


def classifier_claim(controlled: Finding1 | None, why_not: str, strata: Strata, marginal: Finding1 | None,
                     noise: Noise) -> Claim:
    """``f1_classifier`` (module docstring): ``controlled`` is the classifier fitted within strata (None,
    with ``why_not``, when the strata are too small), ``marginal`` the paper's top-vs-bottom one."""
    test = (f"positive share of the identity-bit weights, top vs bottom 30% within strata of equal "
            f"{strata.column} (label permutation test)")
    evidence: list[Evidence] = []
    detectable, powered, share = 1.0, False, None
    verdict, text = ("inconclusive", f"too few candidates: {why_not}"), f"not tested: too few candidates: {why_not}"
    if controlled is not None:
        share = controlled.share("identity")
        detectable = detectable_correlation(controlled.points)
        powered = noise.powered(detectable)
        verdict = decide(share.share - share.null_median, share.pvalue, controlled.min_pvalue, detectable,
                         powered=powered, effect_free=True,
                         too_few=f"too few candidates: n = {controlled.points} in the groups, need >= 8")
        evidence += _share_rows(controlled, "decides", "within strata", ["identity"])
        evidence += [*_share_rows(controlled, "secondary", "within strata", ["conv"]), _cv_row(controlled, "secondary")]
        text = (f"identity-bit share {share.share:.2f} ({share.n_positive} of {share.n_positive + share.n_negative}; "
                f"null median {share.null_median:.2f}), {p_text(share.pvalue)}, n = {controlled.points}")
    if marginal is not None:
        evidence += _share_rows(marginal, "marginal", "over all candidates (the paper's)", ["identity", "conv", "all"])
        evidence.append(_cv_row(marginal, "marginal"))
    return Claim(id="f1_classifier", finding=FINDINGS["f1_classifier"], paper=PAPER["f1_classifier"],
                 verdict=verdict[0], reason=verdict[1], test=test, pvalue=None if share is None else share.pvalue,
                 effect=None if share is None else share.share - share.null_median, ci=(math.nan, math.nan),
                 n=0 if controlled is None else controlled.points, controls=(strata.column,), detectable=detectable,
                 powered=powered, evidence=tuple(evidence), this_run=f"{test}: {text}")


def direct_claim(rows: Rows, strata: Strata, groups: DirectConvs | None, noise: Noise, o: Options,
                 rng: np.random.Generator) -> Claim:
    """``f2_direct_edges`` (module docstring); ``groups`` is Fig. 6's per-budget description."""
    convs = column(rows, R.CONVS) if has_column(rows, R.CONVS) else column(rows, R.BUDGET)
    small = convs <= SMALL_BUDGET
    x, y = column(rows, R.DIRECT_CONVS)[small], column(rows, R.PGD_ACC)[small]
    decider = _stratified(x, y, strata, strata.keys[small], (R.DIRECT_CONVS, R.PGD_ACC), o, rng)
    test = (f"Spearman of direct-edge convs within strata of equal {strata.column}, budgets <= {SMALL_BUDGET} "
            f"({_kind(decider)})")
    detectable = detectable_correlation(decider.n_eff if decider else 0)
    verdict = decide(None if decider is None else decider.coef, None if decider is None else decider.pvalue,
                     1.0 if decider is None else decider.min_pvalue, detectable,
                     too_few=_strata_reason(decider, strata, int(small.sum())))
    evidence = [] if decider is None else [evidence_of(decider, "decides", test, (strata.column,))]
    if int(small.sum()) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        evidence.append(evidence_of(correlate(x, y, names=(R.DIRECT_CONVS, R.PGD_ACC), **_kw(o, rng)), "marginal",
                                    f"Spearman over the {int(small.sum())} candidates with budgets <= "
                                    f"{SMALL_BUDGET} (conv count not held fixed)"))
    for g in groups.groups if groups else ():
        if g.correlation is not None:
            evidence.append(evidence_of(g.correlation, "secondary", f"Spearman within {g.label}", (R.BUDGET,)))
    params = _params(rows)
    partial = None if params is None else _partial_params(x, y, params[small], R.DIRECT_CONVS, o, rng)
    evidence += [partial] if partial else []
    return claim_from("f2_direct_edges", verdict=verdict, test=test, decider=decider, evidence=evidence,
                      noise=noise, controls=(strata.column,), n_eff=None if decider is None else decider.n_eff)


def _fsp_verdict(pc: PerCell, detectable: float) -> tuple[str, str]:
    deep = [pc.cells[c] for c in pc.deep_cells]
    holm = [c.holm_pvalue if c.holm_pvalue is not None else math.nan for c in deep]
    if max(c.fsp_pgd.min_pvalue for c in deep) * len(deep) > ALPHA:
        need = min_n_for_level(tests=len(deep))
        return "inconclusive", f"too few candidates: n = {pc.n}, need >= {need} (Holm over {len(deep)} deep cells)"
    agree = [c for c, p in zip(deep, holm, strict=True) if p < ALPHA and c.fsp_pgd.coef > 0]
    against = [c for c, p in zip(deep, holm, strict=True) if p < ALPHA and c.fsp_pgd.coef < 0]
    if agree and against:
        return "inconclusive", "the deep cells point in opposite directions"
    if agree or against:
        return ("agrees" if agree else "disagrees"), ""
    biggest = max(abs(c.fsp_pgd.coef) for c in deep)
    return "inconclusive", "underpowered" if biggest < detectable else ""


def _deep_rows(pc: PerCell) -> list[Evidence]:
    m = len(pc.deep_cells)
    out = []
    for c in (pc.cells[i] for i in pc.deep_cells):
        e = evidence_of(c.fsp_pgd, "decides", f"cell {c.cell} ({c.kind}): Spearman of the negated raw FSP distance")
        out.append(replace(e, pvalue=c.holm_pvalue if c.holm_pvalue is not None else math.nan,
                           p_method=f"{e.p_method}, Holm over {m} deep cells"))
    return out


def _fsp_secondary(pc: PerCell) -> list[Evidence]:
    out = [evidence_of(pc.deep, "secondary", "mean raw distance over the deep cells (the FSP filter's score)")]
    out += [evidence_of(t.correlation, "secondary", f"{t.kind} cells among the {t.scope} cells {list(t.cells)}: "
                                                    "mean log raw distance") for t in pc.types]
    if pc.deep_rel is not None:
        out.append(evidence_of(pc.deep_rel, "secondary", "relative distance ||ΔG||² / ||G(x)||², deep-cell mean"))
    for c in (pc.cells[i] for i in pc.deep_cells):
        if c.partial is not None:
            out.append(evidence_of(c.partial, "secondary", f"cell {c.cell}: raw distance given the activation "
                                                           "scale ||G(x)||²", (f"{R.FSP_SCALE}[cell {c.cell}]",)))
    return out


def _pooling_rows(pc: PerCell) -> list[Evidence]:
    p = pc.pooling
    if p is None:
        return []
    d = p.difference
    return [evidence_of(p.strided, "sensitivity", "deep-cell mean with strided subsampling instead of average "
                                                  "pooling"),
            Evidence(role="sensitivity", label="change of the deep-cell result: strided minus average-pooled",
                     statistic=d.delta, ci=d.ci, ci_method=d.ci_method, pvalue=math.nan, p_method="none", n=d.n,
                     controls=(), kind="difference")]


def fsp_claim(pc: PerCell, before: PerCell | None, rows: Rows, strata: Strata | None, noise: Noise, o: Options,
              rng: np.random.Generator) -> Claim:
    """``f3_fsp_deep`` (module docstring) from the per-cell analysis ``pc`` (finetuned weights, or the
    inherited ones when only those were recorded) and, beside it, ``before`` (inherited weights)."""
    deep = [pc.cells[i] for i in pc.deep_cells]
    detectable = detectable_correlation(pc.n)
    verdict = _fsp_verdict(pc, detectable)
    best = min(deep, key=lambda c: (c.holm_pvalue if c.holm_pvalue is not None else 2.0, -abs(c.fsp_pgd.coef)))
    cells = ", ".join(f"{c.cell} ({c.kind})" for c in deep)
    kind = "permutation tests" if "permutation" in best.fsp_pgd.p_method else best.fsp_pgd.p_method
    test = (f"Spearman of each deep cell's negated FSP distance with PGD accuracy, cells {cells}, Holm-corrected "
            f"({kind})")
    evidence = _deep_rows(pc) + _fsp_secondary(pc)
    data = [r for r in rows if r.get(R.FSP) is not None and r.get(R.PGD_ACC) is not None]
    if strata is not None and pc.stage == "after" and len(data) >= 3:
        keys = column(data, strata.column) if strata.column in (R.CONVS, R.BUDGET) else None
        if keys is not None:
            c = _stratified(deep_mean(list_column(data, R.FSP)), column(data, R.PGD_ACC), strata, keys,
                            ("deep mean " + R.FSP, R.PGD_ACC), o, rng, sign=-1)
            if c is not None:
                evidence.append(evidence_of(c, "secondary", f"deep-cell mean within strata of equal {strata.column}",
                                            (strata.column,)))
    if before is not None and pc.stage != "before":
        evidence.append(evidence_of(before.deep, "secondary", "deep-cell mean with the inherited weights (before "
                                                              "finetuning)"))
    evidence += _pooling_rows(pc)
    parts = "; ".join(f"cell {c.cell} ({c.kind}): {fmt(c.fsp_pgd.coef)} [{fmt(c.fsp_pgd.ci[0])}, "
                      f"{fmt(c.fsp_pgd.ci[1])}], Holm {p_text(c.holm_pvalue)}" for c in deep)
    return claim_from("f3_fsp_deep", verdict=verdict, test=test, decider=best.fsp_pgd, evidence=evidence,
                      noise=noise, pvalue=best.holm_pvalue, summary=f"{test}: {parts}; n = {pc.n}")


def untested(cid: str, reason: str, test: str) -> Claim:
    """A claim whose test could not run on these records (``inconclusive`` with ``reason``)."""
    return Claim(id=cid, finding=FINDINGS[cid], paper=PAPER[cid], verdict="inconclusive", reason=reason, test=test,
                 pvalue=None, effect=None, ci=(math.nan, math.nan), n=0, controls=(), detectable=None, powered=False,
                 evidence=(), this_run=f"not tested: {reason}")

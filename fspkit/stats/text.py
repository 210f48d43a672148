"""The study as readable text tables (``fspkit stats`` prints this), and the number formats shared by the
claims, the report and the figures. Every coefficient is shown sign-adjusted: positive means "predicts
more robust" (for an FSP distance: lower distance, higher PGD accuracy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fspkit.stats.claims import Claim, Evidence
    from fspkit.stats.correlation import Correlation
    from fspkit.stats.depth import PerCell
    from fspkit.stats.noise import Noise
    from fspkit.stats.proxies import ProxyTable
    from fspkit.stats.study import Selection, StudyReport

__all__ = ["ci_text", "corr_text", "fmt", "fmt_p", "p_text", "render"]


def fmt(v: float | None, digits: int = 2, sign: bool = True) -> str:
    """A number with a sign (``+0.31``), or ``n/a`` for None / NaN."""
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def fmt_p(p: float | None) -> str:
    """A p-value: two significant digits, ``< 0.0001`` below that, ``n/a`` for None / NaN."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def p_text(p: float | None) -> str:
    """``p = 0.004``, ``p < 0.0001`` or ``p n/a``."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") or text == "n/a" else f"p = {text}"


def ci_text(ci: tuple[float, float], digits: int = 2, sign: bool = True) -> str:
    """``[+0.12, +0.48]`` (``[0.12, 0.48]`` without ``sign``), or ``(no interval)`` when not reported."""
    if not all(math.isfinite(v) for v in ci):
        return "(no interval)"
    return f"[{fmt(ci[0], digits, sign)}, {fmt(ci[1], digits, sign)}]"


def corr_text(c: Correlation) -> str:
    """``Spearman(-fsp[cell 4], pgd_acc) = +0.31 [95% CI +0.12, +0.48], n = 60``."""
    method = {"spearman": "Spearman", "pearson": "Pearson", "kendall": "Kendall"}[c.method]
    given = f" | {c.control}" if c.control and not c.stratified else ""
    within = f" within {c.strata} strata of {c.control}" if c.stratified else ""
    x = ("-" if c.sign < 0 else "") + c.names[0]
    interval = ci_text(c.ci)
    level = f"{round(100 * c.level)}% CI " if interval.startswith("[") else ""
    return (f"{method}({x}, {c.names[1]}{given}){within} = {fmt(c.coef)} "
            f"{('[' + level + interval[1:]) if level else interval}, n = {c.n}")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    return [line.rstrip()] + [indent + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                              for r in rows]


def _cell(c: Correlation | None) -> str:
    return "-" if c is None else f"{fmt(c.coef)} {ci_text(c.ci)} {p_text(c.pvalue)}"


def _evidence_rows(evidence: Sequence[Evidence]) -> list[list[str]]:
    signed = ("correlation", "difference")
    return [[e.role, e.label, fmt(e.statistic, sign=e.kind in signed), ci_text(e.ci, sign=e.kind in signed),
             fmt_p(e.pvalue), str(e.n), ", ".join(e.controls) or "none"] for e in evidence]


def verdict_label(c: Claim) -> str:
    """``agrees`` or ``inconclusive (underpowered)``: the verdict with its reason."""
    return f"{c.verdict} ({c.reason})" if c.reason else c.verdict


def _claims(r: StudyReport) -> list[str]:
    out = ["", "What the paper reported, and what this run found (docs/study.md: each claim's test, controls and "
               "corrections; every effect signed so that positive is the paper's direction)"]
    for c in r.claims:
        enough = "powered" if c.powered else "not powered"
        power = ("n/a" if c.detectable is None else
                 f"smallest detectable effect {fmt(c.detectable, sign=False)} ({enough} for a medium true effect)")
        out += [f"  [{verdict_label(c)}] {c.finding} ({c.id})",
                f"    test:     {c.test}; controls: {', '.join(c.controls) or 'none'}",
                f"    this run: {c.this_run}", f"    power:    {power}",
                f"    paper:    {c.paper}"]
        out += _table(["role", "test", "effect", "95% CI", "p", "n", "held fixed"], _evidence_rows(c.evidence),
                      indent="      ")
    return out


def _noise(nz: Noise | None) -> list[str]:
    if nz is None:
        return []
    out = ["", f"Measurement noise of the PGD accuracy (n = {nz.n} candidates, {nz.n_eval or 'unknown'} validation "
               "images each)"]
    if nz.retest is not None:
        out.append(f"  test-retest on {nz.n_retest} candidates: {corr_text(nz.retest)}")
    out.append(f"  reliability of the full measurement (Spearman-Brown): {fmt(nz.reliability, sign=False)} "
               f"{ci_text(nz.reliability_ci)}; noise ceiling of any correlation: {fmt(nz.ceiling, sign=False)} "
               f"{ci_text(nz.ceiling_ci)}")
    out.append(f"  smallest detectable correlation at n = {nz.n} (power {nz.power:.0%}, two-sided {nz.alpha:g}): "
               f"{fmt(nz.detectable, sign=False)}" + ("" if nz.detectable_true is None else
                                                       f" ({fmt(nz.detectable_true, sign=False)} noise-free)"))
    if nz.overlap is not None:
        out.append(f"  top-{nz.top:.0%} stability: {nz.overlap:.2f} {ci_text(nz.overlap_ci, sign=False)} of the "
                   f"{nz.n_top} top candidates stay in it when each accuracy is redrawn ({nz.draws} binomial draws)")
    return out + [f"  note: {n}" for n in nz.notes]


def _selection(s: Selection | None) -> list[str]:
    if s is None:
        return []
    return ["", f"Selected architecture (id {s.id}, chosen on validation among {s.candidates} candidates)",
            f"  validation PGD accuracy {fmt(s.validation_pgd_acc, 3, False)} {ci_text(s.validation_ci, 3, False)} "
            f"(n = {s.validation_n}; biased upward: the best of many noisy estimates)",
            f"  held-out test PGD accuracy {fmt(s.test_pgd_acc, 3, False)} {ci_text(s.test_ci, 3, False)} "
            f"(n = {s.test_n})",
            f"  validation minus test: {fmt(s.optimism, 3)}"]


def _per_cell(pc: PerCell | None, title: str) -> list[str]:
    if pc is None:
        return []
    dropped = f", {pc.dropped} records without these columns left out" if pc.dropped else ""
    out = ["", f"{title} (Spearman of the negated distance [95% CI] p; n = {pc.n}{dropped}; deep cells "
               f"{list(pc.deep_cells)}, reduction cells {list(pc.reduction_cells)})"]
    rows = [[str(c.cell), c.kind + (" deep" if c.deep else ""), _cell(c.fsp_pgd), fmt_p(c.holm_pvalue),
             _cell(c.rel_pgd), _cell(c.partial), _cell(c.strided)] for c in pc.cells]
    out += _table(["cell", "type", "raw", "Holm p", "relative", "raw | scale", "raw, strided"], rows)
    out.append(f"  deep-cell mean (the filter's score): {_cell(pc.deep)}")
    out += [f"  {t.kind} cells among the {t.scope} cells {list(t.cells)} (mean log distance): {_cell(t.correlation)}"
            for t in pc.types]
    if pc.pooling is not None:
        d = pc.pooling.difference
        out.append(f"  pooling check: deep-cell mean strided {_cell(pc.pooling.strided)}; strided minus pooled "
                   f"{fmt(d.delta)} {ci_text(d.ci)}")
    return out


def _proxies(px: ProxyTable | None) -> list[str]:
    if px is None:
        return []
    out = ["", f"Cheap robustness scores and free baselines vs final PGD accuracy (sign-adjusted Spearman; keep "
               f"{px.keep:g}, true top {px.top:g}; recall p: exact, against a random filter of the same size)"]
    rows = []
    for row in px.rows:
        vs = "-" if row.vs_params is None else (f"{fmt(row.vs_params.delta)} {ci_text(row.vs_params.ci)} "
                                                f"{'beats' if row.beats_params else 'does not beat'}")
        rows.append([row.proxy + (" (baseline)" if row.baseline else ""), "lower" if row.lower_is_better else "higher",
                     str(row.n), _cell(row.spearman), _cell(row.partial_params),
                     f"{row.recall:.2f} {ci_text(row.recall_ci, sign=False)} ({row.n_top_kept}/{row.n_top})",
                     fmt_p(row.recall_pvalue), f"{row.random_recall:.2f}", vs,
                     "n/a" if row.seconds_per_candidate is None else f"{row.seconds_per_candidate:.3g}"])
    out += _table(["score", "better", "n", "Spearman [95% CI] p", "given params (secondary)", "top recall [CI]",
                   "recall p", "random", "vs params", "s/candidate"], rows)
    return out + [f"  note: {n}" for n in px.notes]


def _finding1(r: StudyReport) -> list[str]:
    f = r.finding1
    if f is None:
        return []
    out = ["", f"Finding #1 classifier (the paper's): top-{f.k} vs bottom-{f.k} of {f.n} by PGD accuracy (top >= "
               f"{f.top_min_pgd:.3f}, bottom <= {f.bottom_max_pgd:.3f}); repeated CV accuracy {f.cv_accuracy:.2f} ± "
               f"{f.cv_std:.2f} over {f.cv_splits} splits; {f.tsne_note}"]
    order = np.argsort(-f.weights, kind="stable")
    return out + _table(["bit", "weight"], [[f.feature_names[i], fmt(float(f.weights[i]), 3)] for i in order])


def _descriptions(r: StudyReport) -> list[str]:
    out: list[str] = []
    if r.finding2:
        f2 = r.finding2
        out += ["", "Density (paper Eq. 2) vs PGD accuracy, all candidates (description; the verdict is f1_density's)",
                f"  pgd_acc = {f2.intercept:.3f} {'+' if f2.slope >= 0 else '-'} {abs(f2.slope):.3f} * density "
                f"(slope CI {fmt(f2.slope_ci[0], 3)}, {fmt(f2.slope_ci[1], 3)}; R^2 {f2.r2:.2f}; n = {f2.n})",
                f"  {corr_text(f2.spearman)}, {p_text(f2.spearman.pvalue)}"]
    if r.direct_convs:
        out += ["", "Direct-edge convs vs PGD accuracy per conv budget (Fig. 6; description)"]
        rows = [[g.label, str(g.n), _cell(g.correlation) if g.correlation
                 else f"- ({g.note})", ", ".join(f"{c:g}: {m:.3f} (n={k})" for c, m, k in
                                                  zip(g.counts, g.mean_pgd, g.n_per_count, strict=True))]
                for g in r.direct_convs.groups]
        out += _table(["group", "n", "Spearman [95% CI] p", "mean PGD acc by direct convs (count: acc)"], rows)
    if r.regression:
        g = r.regression
        out += ["", f"Regression: pgd_acc on {', '.join(g.names)} (OLS, n = {g.n}, R^2 {g.r2:.2f}, "
                    f"{g.cv_folds}-fold CV R^2 {g.cv_r2:.2f}; description)"]
        out += _table(["predictor", "coef", "95% CI", "p"], [[m, fmt(g.coef[m], 4), f"{fmt(g.ci[m][0], 4)}, "
                                                             f"{fmt(g.ci[m][1], 4)}", fmt_p(g.pvalue[m])]
                                                            for m in g.names])
    return out


def render(r: StudyReport) -> str:
    """The whole report as text (what :meth:`StudyReport.tables` returns)."""
    out = [f"Search records: {r.n_records} candidates, {r.n_evaluated} with a final PGD accuracy, "
           f"{r.n_filtered_out} filtered out before finetuning"]
    if r.capacity:
        out.append(f"Capacity control: {r.capacity.get('note')}")
    out += _claims(r) + _noise(r.noise) + _selection(r.selection) + _finding1(r) + _descriptions(r)
    out += _per_cell(r.per_cell, "Finding #3: per-cell FSP distance after finetuning")
    out += _per_cell(r.per_cell_before, "Per-cell FSP distance with inherited weights (before finetuning)")
    out += _proxies(r.proxies)
    if r.notes:
        out += ["", "Notes"] + [f"  - {n}" for n in r.notes]
    return "\n".join(out) + "\n"

"""Reading a search's records and analysing them: the paper's Findings #1-#3 and the proxy table, next
to what the paper reported.

``load_records(path)`` reads a run folder (every ``records*.jsonl`` shard in it, one per rank:
``records.rank{R}.jsonl``), one JSON Lines file, or a CSV file with the same columns (list columns
such as ``fsp`` as JSON text in their cells). ``analyze(records)`` runs every analysis of
:mod:`fspkit.stats.findings` whose columns are present and returns a :class:`StudyReport`: ``.to_dict()``
(strict JSON) and ``.tables()`` (readable text). Each claim of the paper is shown beside what *this*
run measured (signs, coefficients, intervals, n) and a verdict computed from this run's numbers only.

Record columns (one object per candidate; issue 9): ``id``, ``genotype``, ``bits``, ``budget``,
``density``, ``convs``, ``direct_convs``, ``params``, ``flops``, ``clean_acc``, ``pgd_acc`` (after
finetuning, null when filtered out), ``clean_acc_before_finetune``, ``pgd_acc_before_finetune``,
per-cell lists ``fsp``, ``fsp_rel``, ``fsp_scale`` and their ``*_before_finetune`` twins,
``filtered_out``, ``proxy_grad_norm``, ``proxy_synflow``, ``proxy_naswot``, ``seconds_*``, ``seed``,
``config_hash``, ``versions``, ``rank``. Any may be missing (a ``robnet search`` run has no FSP or
proxy columns); the parts that need them are skipped with a note saying why.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from fspkit.stats import findings as stats
from fspkit.stats.findings import Correlation
from robnet.io.results import to_jsonable

__all__ = ["Claim", "StudyReport", "analyze"]

log = logging.getLogger(__name__)

# CSV cells of these columns stay text even when they look like numbers (a 28-bit genotype string).
TEXT_COLUMNS = frozenset({"genotype", "config_hash"})

# ---------------------------------------------------------------------------------- the report


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One claim of the paper beside this run's measurement.

    Attributes:
        finding: ``Finding #1`` ... or ``beyond the paper``.
        paper: what the paper reported ("" when the paper did not examine it).
        this_run: what this run measured, with signs, intervals and n.
        verdict: ``agrees``, ``disagrees``, ``inconclusive`` (the interval includes 0, or a mixed
            picture) or ``new`` (no published claim to compare with); always from this run's numbers.
    """

    finding: str
    paper: str
    this_run: str
    verdict: str


@dataclass(frozen=True, kw_only=True, eq=False)
class StudyReport:
    """Everything :func:`analyze` measured; a part is None when its columns were absent (see ``notes``)."""

    n_records: int
    n_evaluated: int
    n_filtered_out: int
    finding1: stats.Finding1 | None
    finding2: stats.Finding2 | None
    direct_convs: stats.DirectConvs | None
    regression: stats.Regression | None
    per_cell: stats.PerCell | None
    per_cell_before: stats.PerCell | None
    proxies: stats.ProxyTable | None
    claims: tuple[Claim, ...]
    notes: tuple[str, ...]
    selection: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON-able data (NaN and infinities become null)."""
        return cast(dict[str, Any], to_jsonable(self))  # a dataclass maps to a dict

    def tables(self) -> str:
        """The report as readable text tables."""
        return _render(self)


# ---------------------------------------------------------------------------------- analysis

PAPER = {
    "f1_weights": "a linear classifier separating the top-300 from the bottom-300 of 1000 architectures has "
                  "almost all of its weights positive: more connections, more robust",
    "f1_density": "architecture density is positively correlated with PGD accuracy",
    "f2_direct": "under a small conv budget, convs on direct edges help robustness more than on skip edges",
    "f3_fsp": "robust networks have a lower FSP distance in the deeper cells (negative correlation of the deeper "
              "cells' distance with PGD accuracy)",
}
# Verdict thresholds for Finding #1 (a decision, shown in the report): "almost all" weights positive.
AGREE_SHARE = 0.75


def _fmt(v: float | None, digits: int = 2, sign: bool = True) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def _corr_text(c: Correlation) -> str:
    method = {"spearman": "Spearman", "pearson": "Pearson", "kendall": "Kendall"}[c.method]
    given = f" | {c.control}" if c.control else ""
    return (f"{method}({c.names[0]}, {c.names[1]}{given}) = {_fmt(c.coef)} "
            f"[{round(100 * c.level)}% CI {_fmt(c.ci[0])}, {_fmt(c.ci[1])}], n = {c.n}")


def _sign_verdict(c: Correlation, expected: int) -> str:
    """``agrees`` when the interval excludes 0 on the expected side, ``disagrees`` on the other."""
    lo, hi = c.ci
    if not (math.isfinite(lo) and math.isfinite(hi)):  # no bootstrap: fall back to the p-value
        lo = hi = c.coef if c.pvalue < 1 - c.level else 0.0
    if lo > 0 or hi < 0:
        return "agrees" if (lo > 0) == (expected > 0) else "disagrees"
    return "inconclusive"


def _final_rows(records: Sequence[Mapping[str, Any]], needs: Sequence[str]) -> list[Mapping[str, Any]]:
    """Records holding a final PGD accuracy and every column of ``needs``."""
    return [r for r in records if r.get("pgd_acc") is not None and all(r.get(c) is not None for c in needs)]


def _part(name: str, needs: Sequence[str], records: Sequence[Mapping[str, Any]], notes: list[str],
          run: Callable[[list[Mapping[str, Any]]], Any]) -> Any:
    """Run one analysis on the records that hold its columns; None with a note when it cannot run."""
    missing = [c for c in needs if not stats.has_column(records, c)]
    if missing:
        notes.append(f"{name}: skipped, column(s) {', '.join(missing)} absent from the records")
        return None
    rows = _final_rows(records, needs)
    try:
        return run(rows)
    except ValueError as e:
        notes.append(f"{name}: skipped, {e}")
        return None


def _regression(rows: list[Mapping[str, Any]], notes: list[str], seed: int) -> stats.Regression:
    cols = [c for c in ("density", "convs", "direct_convs") if stats.has_column(rows, c)]
    varying = [c for c in cols if np.ptp(stats.column(rows, c)) > 0]
    if len(varying) < len(cols):
        notes.append(f"regression: left out constant predictor(s) {sorted(set(cols) - set(varying))} "
                     "(e.g. convs under a fixed budget)")
    if not varying:
        raise ValueError("no varying predictor among density, convs, direct_convs")
    X = np.column_stack([stats.column(rows, c) for c in varying])
    return stats.regress(X, stats.column(rows, "pgd_acc"), varying, y_name="pgd_acc", rng=seed)


def analyze(records: Sequence[Mapping[str, Any]], *, rng: int | np.random.Generator = 0, k: int | None = None,
            n_boot: int = 1000, keep: float = 0.3, top: float = 0.1, tsne: bool = True, notes: Sequence[str] = (),
            selection: Mapping[str, Any] | None = None) -> StudyReport:
    """Every analysis whose columns the records hold (see the module docstring).

    Each part gets its own seed drawn from ``rng`` up front, so skipping a part never changes the
    others. Analyses of final PGD accuracy use the candidates that have one (filtered-out ones do not).

    Args:
        records: candidate records (:func:`load_records`).
        rng: seed or generator of every bootstrap, fold split and t-SNE.
        k: Finding #1 group size (default 30% of the evaluated candidates).
        n_boot: bootstrap resamples per interval.
        keep, top: the proxy table's kept fraction and the true top fraction.
        tsne: compute Finding #1's t-SNE embedding.

    Raises:
        ValueError: no records, or no record with a final PGD accuracy.
        TypeError: ``rng`` is neither an int nor a generator.
    """
    if not records:
        raise ValueError("analyze: no records")
    if not stats.has_column(records, "pgd_acc"):
        raise ValueError(f"analyze: none of the {len(records)} records has a final PGD accuracy (pgd_acc); "
                         "hint: run the finetune stage first (`robnet search finetune RUN_DIR`)")
    if isinstance(rng, bool) or not isinstance(rng, int | np.random.Generator):
        raise TypeError(f"analyze: rng must be an int seed or a numpy.random.Generator, got {type(rng).__name__}")
    gen = np.random.default_rng(rng) if isinstance(rng, int) else rng
    seeds = [int(s) for s in gen.integers(0, 2**63 - 1, size=7)]
    found: list[str] = list(notes)
    n_filtered = sum(bool(r.get("filtered_out")) for r in records)
    if n_filtered:
        found.append(f"{n_filtered} candidates were filtered out before finetuning and have no final PGD accuracy; "
                     "the final-accuracy analyses use the finetuned ones only")
    f1 = _part("Finding #1", ["bits"], records, found, lambda rows: stats.finding1(
        stats.list_column(rows, "bits"), stats.column(rows, "pgd_acc"), k=k, rng=seeds[0], tsne=tsne))
    f2 = _part("Finding #1 (density)", ["density"], records, found, lambda rows: stats.finding2(
        stats.column(rows, "density"), stats.column(rows, "pgd_acc"), n_boot=n_boot, rng=seeds[1]))
    dc = _part("Finding #2 (direct-edge convs)", ["direct_convs"], records, found,
               lambda rows: stats.direct_convs_by_budget(
                   stats.column(rows, "direct_convs"), [r.get("budget") for r in rows],
                   stats.column(rows, "pgd_acc"), n_boot=n_boot, rng=seeds[2]))
    reg = _part("regression", ["density"], records, found, lambda rows: _regression(rows, found, seeds[3]))
    pc = _part("Finding #3 (after finetuning)", ["fsp"], records, found,
               lambda rows: stats.per_cell(rows, stage="after", n_boot=n_boot, rng=seeds[4]))
    pcb = _part("Finding #3 (inherited weights)", ["fsp_before_finetune", "pgd_acc_before_finetune"], records,
                found, lambda _: stats.per_cell(
                    [r for r in records if r.get("fsp_before_finetune") is not None], stage="before",
                    n_boot=n_boot, rng=seeds[5]))
    proxy_cols = [stats.PROXIES[p][0] for p in stats.PROXIES]
    px = None
    if any(stats.has_column(records, c) for c in proxy_cols):
        px = _part("proxy table", [], records, found, lambda _: stats.proxy_table(
            records, [p for p in stats.PROXIES if stats.has_column(records, stats.PROXIES[p][0])],
            keep=keep, top=top, n_boot=n_boot, rng=seeds[6]))
    else:
        found.append(f"proxy table: skipped, none of {', '.join(proxy_cols)} in the records")
    n_eval = sum(r.get("pgd_acc") is not None for r in records)
    return StudyReport(n_records=len(records), n_evaluated=n_eval, n_filtered_out=n_filtered, finding1=f1,
                       finding2=f2, direct_convs=dc, regression=reg, per_cell=pc, per_cell_before=pcb, proxies=px,
                       claims=_claims(f1, f2, dc, reg, pc), notes=tuple(found),
                       selection=dict(selection) if selection is not None else None,
                       settings={"rng": rng if isinstance(rng, int) else "generator", "k": k, "n_boot": n_boot,
                                 "keep": keep, "top": top, "tsne": tsne, "agree_share": AGREE_SHARE})


def _f1_claim(f1: stats.Finding1) -> Claim:
    varying = f1.n_positive + f1.n_negative
    text = (f"{f1.n_positive} of {varying} varying bits have a positive weight (share {f1.positive_share:.2f}); "
            f"top-{f1.k} vs bottom-{f1.k} of n = {f1.n}, {f1.cv_folds}-fold accuracy {f1.cv_accuracy:.2f} "
            f"± {f1.cv_std:.2f} (chance 0.50)")
    if f1.cv_accuracy <= 0.55:
        verdict = "inconclusive"
        text += "; the classifier barely beats chance, so its weights' signs mean little"
    else:
        verdict = ("agrees" if f1.positive_share >= AGREE_SHARE else
                   "disagrees" if f1.positive_share <= 0.5 else "inconclusive")
    return Claim(finding="Finding #1", paper=PAPER["f1_weights"], this_run=text, verdict=verdict)


def _direct_claim(dc: stats.DirectConvs, reg: stats.Regression | None) -> Claim | None:
    groups = [(g, g.correlation) for g in dc.groups if g.correlation is not None]
    if not groups:
        return None
    parts = "; ".join(f"budget {'none' if g.budget is None else g.budget}: {_corr_text(c)}" for g, c in groups)
    smallest, corr = groups[0]  # budgets ascend, unconstrained last
    if smallest.budget is not None:
        return Claim(finding="Finding #2", paper=PAPER["f2_direct"], verdict=_sign_verdict(corr, +1),
                     this_run=f"verdict from the smallest budget, {smallest.budget}. {parts}")
    # Without a budget, direct-edge convs also count total convs: judge by the regression's coefficient,
    # which holds density and the conv count fixed.
    if reg is None or "direct_convs" not in reg.names or "convs" not in reg.names:
        return Claim(finding="Finding #2", paper=PAPER["f2_direct"], verdict="inconclusive",
                     this_run=f"no conv budget was set and no regression controls the conv count. {parts}")
    lo, hi = reg.ci["direct_convs"]
    verdict = "agrees" if lo > 0 else "disagrees" if hi < 0 else "inconclusive"
    return Claim(finding="Finding #2", paper=PAPER["f2_direct"], verdict=verdict,
                 this_run=f"no conv budget was set; holding density and the conv count fixed (OLS, n = {reg.n}), "
                          f"each direct-edge conv changes PGD accuracy by {_fmt(reg.coef['direct_convs'], 4)} "
                          f"[{round(100 * reg.level)}% CI {_fmt(lo, 4)}, {_fmt(hi, 4)}]. Unadjusted: {parts}")


def _deep_claim(pc: stats.PerCell, pick: Callable[[stats.CellCorrelations], Correlation | None], what: str,
                finding: str, paper: str) -> Claim | None:
    cells = pc.cells[len(pc.cells) // 2:]  # the deeper half (all of a single cell)
    corrs = [(c.cell, pick(c)) for c in cells]
    found = [(i, c) for i, c in corrs if c is not None]
    if not found:
        return None
    below = sum(_sign_verdict(c, -1) == "agrees" for _, c in found)
    above = sum(_sign_verdict(c, -1) == "disagrees" for _, c in found)
    coefs = ", ".join(f"cell {i}: {_fmt(c.coef)} [{_fmt(c.ci[0])}, {_fmt(c.ci[1])}]" for i, c in found)
    text = (f"{what} in the deeper cells {found[0][0]}..{found[-1][0]} ({pc.method}, n = {pc.n}): {coefs}; "
            f"{below} of {len(found)} significantly negative, {above} significantly positive")
    if paper:
        verdict = ("agrees" if below > len(found) / 2 else "disagrees" if above > len(found) / 2 else "inconclusive")
    else:
        verdict = "new"
    return Claim(finding=finding, paper=paper, this_run=text, verdict=verdict)


def _claims(f1: stats.Finding1 | None, f2: stats.Finding2 | None, dc: stats.DirectConvs | None,
            reg: stats.Regression | None, pc: stats.PerCell | None) -> tuple[Claim, ...]:
    out: list[Claim | None] = []
    out.append(_f1_claim(f1) if f1 else None)
    if f2:
        out.append(Claim(finding="Finding #1 (density, Eq. 2)", paper=PAPER["f1_density"],
                         this_run=f"{_corr_text(f2.spearman)}; fitted slope {_fmt(f2.slope, 3)} PGD accuracy per unit "
                                  f"density [{round(100 * f2.level)}% CI {_fmt(f2.slope_ci[0], 3)}, "
                                  f"{_fmt(f2.slope_ci[1], 3)}], R^2 {f2.r2:.2f}",
                         verdict=_sign_verdict(f2.spearman, +1)))
    out.append(_direct_claim(dc, reg) if dc else None)
    if pc:
        out.append(_deep_claim(pc, lambda c: c.fsp_pgd, "raw FSP distance vs PGD accuracy", "Finding #3",
                               PAPER["f3_fsp"]))
        out.append(_deep_claim(pc, lambda c: c.rel_pgd, "relative FSP distance vs PGD accuracy",
                               "beyond the paper", ""))
        out.append(_deep_claim(pc, lambda c: c.partial, "raw FSP distance vs PGD accuracy controlling for the "
                               "activation scale", "beyond the paper", ""))
    return tuple(c for c in out if c is not None)


# ---------------------------------------------------------------------------------- text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    return [line.rstrip()] + [indent + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                              for r in rows]


def _ci(c: Correlation | None) -> str:
    return "-" if c is None else f"{_fmt(c.coef)} [{_fmt(c.ci[0])}, {_fmt(c.ci[1])}]"


def _render_findings(r: StudyReport) -> list[str]:
    out: list[str] = []
    if r.finding1:
        f = r.finding1
        out += ["", f"Finding #1: top-{f.k} vs bottom-{f.k} of {f.n} by PGD accuracy "
                    f"(top >= {f.top_min_pgd:.3f}, bottom <= {f.bottom_max_pgd:.3f})",
                f"  logistic regression (L2, C={f.C:g}) on raw 0/1 bits: {f.cv_folds}-fold accuracy "
                f"{f.cv_accuracy:.2f} ± {f.cv_std:.2f}; {f.n_positive} positive, {f.n_negative} negative, "
                f"{f.n_constant} constant bits"]
        order = np.argsort(-f.weights, kind="stable")
        out += _table(["bit", "weight"], [[f.feature_names[i], _fmt(float(f.weights[i]), 3)] for i in order])
    if r.finding2:
        f2 = r.finding2
        out += ["", "Finding #1: density (paper Eq. 2) vs PGD accuracy",
                f"  pgd_acc = {f2.intercept:.3f} {'+' if f2.slope >= 0 else '-'} {abs(f2.slope):.3f} * density "
                f"(slope CI {_fmt(f2.slope_ci[0], 3)}, {_fmt(f2.slope_ci[1], 3)}; p = {f2.slope_pvalue:.2g}; "
                f"R^2 {f2.r2:.2f}; n = {f2.n})", f"  {_corr_text(f2.spearman)}"]
    if r.direct_convs:
        out += ["", "Finding #2: direct-edge convs vs PGD accuracy, per conv budget"]
        rows = [["none" if g.budget is None else str(g.budget), str(g.n),
                 _ci(g.correlation) if g.correlation else f"- ({g.note})",
                 ", ".join(f"{c:g}: {m:.3f} (n={k})" for c, m, k in zip(g.counts, g.mean_pgd, g.n_per_count,
                                                                        strict=True))]
                for g in r.direct_convs.groups]
        out += _table(["budget", "n", f"{r.direct_convs.method} [95% CI]",
                       "mean PGD acc by direct convs (count: acc)"], rows)
    if r.regression:
        g = r.regression
        out += ["", f"Regression: pgd_acc on {', '.join(g.names)} (OLS, n = {g.n}, R^2 {g.r2:.2f}, "
                    f"{g.cv_folds}-fold CV R^2 {g.cv_r2:.2f})"]
        out += _table(["predictor", "coef", f"{round(100 * g.level)}% CI", "stderr", "p"],
                      [[m, _fmt(g.coef[m], 4), f"{_fmt(g.ci[m][0], 4)}, {_fmt(g.ci[m][1], 4)}",
                        f"{g.stderr[m]:.4f}", f"{g.pvalue[m]:.2g}"] for m in g.names])
    return out


def _render_cells(pc: stats.PerCell | None, title: str) -> list[str]:
    if pc is None:
        return []
    dropped = f", {pc.dropped} records without these columns left out" if pc.dropped else ""
    out = ["", f"{title} ({pc.method} [95% CI], n = {pc.n}{dropped})"]
    rows = [[str(c.cell), _ci(c.fsp_pgd), _ci(c.fsp_gap), _ci(c.rel_pgd), _ci(c.rel_gap), _ci(c.partial)]
            for c in pc.cells]
    return out + _table(["cell", "fsp~pgd", "fsp~gap", "rel~pgd", "rel~gap", "fsp~pgd | scale"], rows)


def _render_proxies(px: stats.ProxyTable | None) -> list[str]:
    if px is None:
        return []
    out = ["", f"Cheap robustness proxies vs final PGD accuracy (keep {px.keep:g}, true top {px.top:g})"]
    rows = []
    for row in px.rows:
        q = row.quality
        rows.append([row.proxy, "lower" if row.lower_is_better else "higher", str(q.n), _ci(q.spearman),
                     f"{q.recall:.2f} ({q.n_top_kept}/{q.n_top})", f"{q.random_recall:.2f}",
                     "n/a" if row.seconds_per_candidate is None else f"{row.seconds_per_candidate:.3g}"])
    out += _table(["proxy", "better", "n", "Spearman [95% CI]", "top recall", "random", "s/candidate"], rows)
    if px.finetune_seconds is not None:
        out.append(f"  finetuning costs {px.finetune_seconds:.3g} s per candidate; keeping {px.keep:g} of the "
                   f"candidates saves {1 - px.keep:.0%} of it")
    return out + [f"  note: {n}" for n in px.notes]


def _render(r: StudyReport) -> str:
    out = [f"Search records: {r.n_records} candidates, {r.n_evaluated} with a final PGD accuracy, "
           f"{r.n_filtered_out} filtered out before finetuning", "",
           "What the paper reported, and what this run found"]
    for c in r.claims:
        out += [f"  [{c.verdict}] {c.finding}", f"    paper:    {c.paper or '(not examined by the paper)'}",
                f"    this run: {c.this_run}"]
    out += _render_findings(r)
    out += _render_cells(r.per_cell, "Finding #3: per-cell FSP distance after finetuning")
    out += _render_cells(r.per_cell_before, "Per-cell FSP distance with inherited weights (before finetuning)")
    out += _render_proxies(r.proxies)
    if r.notes:
        out += ["", "Notes"] + [f"  - {n}" for n in r.notes]
    return "\n".join(out) + "\n"

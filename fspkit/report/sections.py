"""The sections of the study report, as blocks of :mod:`fspkit.report.document`. Every number comes from
the :class:`fspkit.stats.StudyReport` (the analysis ``stats.json`` holds); nothing is computed here."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fspkit import stats
from fspkit.report.document import Block, Claim, H, List, P, Pre, S, Table, p, table

__all__ = ["at_a_glance", "claims", "header", "noise", "proxies", "selection"]

VERDICT_WORDS = {"agrees": "agrees with the paper", "disagrees": "contradicts the paper",
                 "inconclusive": "inconclusive"}
# extra keys shown in the header under their own label (any other key is listed as it is)
_HEADER_KEYS = {"data": "data", "preset": "preset", "attack": "attack", "seed": "seed", "seeds": "seeds",
                "device": "device", "wall_seconds": "wall time", "search_seconds": "search time",
                "processes": "processes", "finetuning": "finetuning", "resumed": "resumed",
                "fsp_keep": "FSP filter keep (--fsp-keep)"}
PROXY_NAMES = {"fsp": "FSP distance, deep cells (raw)", "fsp_rel": "FSP distance, deep cells (relative)",
               "grad_norm": "gradient norm", "synflow": "SynFlow", "naswot": "NASWOT (Jacobian covariance)",
               "pgd_before_finetune": "PGD accuracy before finetuning", "params": "parameter count (baseline)",
               "flops": "FLOPs (baseline)", "convs": "sep-convs per cell (baseline)", "density": "density (baseline)"}
TITLES = {"f1_density": "Finding #1: denser architectures are more robust (density)",
          "f1_classifier": "Finding #1: the bits of robust architectures (classifier)",
          "f2_direct_edges": "Finding #2: convs on direct edges under a small budget",
          "f3_fsp_deep": "Finding #3: lower FSP distance in the deep cells"}


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def study_doc(out_dir: Path) -> S:
    """A link to docs/study.md (relative to the report) when the source tree is here, else its name."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "study.md"
    if doc.is_file():
        return S("docs/study.md", "a", Path(os.path.relpath(doc, out_dir.resolve())).as_posix())
    return S("docs/study.md", "code")


def _label(c: stats.Claim) -> str:
    return f"{c.verdict} ({c.reason})" if c.reason else c.verdict


def _effect(c: stats.Claim) -> str:
    if c.effect is None:
        return "-"
    share = c.id == "f1_classifier"
    return (f"{stats.fmt(c.effect)} vs null" if share else f"{stats.fmt(c.effect)} {stats.ci_text(c.ci)}")


def at_a_glance(r: stats.StudyReport, out_dir: Path) -> list[Block]:
    """The first screen: every claim's verdict with its test, control, uncertainty and power, and which
    claims the run could test with enough power."""
    rows = [(c.id, _label(c), c.test, ", ".join(c.controls) or "none", _effect(c), stats.fmt_p(c.pvalue), str(c.n),
             "-" if c.detectable is None else stats.fmt(c.detectable, sign=False), "yes" if c.powered else "no")
            for c in r.claims]
    ceiling = r.noise.ceiling if r.noise is not None and r.noise.ceiling is not None else None
    ref = stats.REFERENCE_EFFECT * (ceiling if ceiling is not None else 1.0)
    powered = [c.id for c in r.claims if c.powered]
    weak = [f"{c.id} (smallest detectable {stats.fmt(c.detectable, sign=False)})" if c.detectable is not None
            else f"{c.id} (not tested)" for c in r.claims if not c.powered]
    return [H(2, "At a glance"),
            p(f"The paper's claims, tested on this run's {r.n_evaluated} evaluated candidates. Each verdict comes "
              "from the test stated for the claim in ", study_doc(out_dir), " (two-sided, level "
              f"{stats.ALPHA:g}), holding the listed columns fixed; every effect is signed so that positive is the "
              "paper's direction."),
            table(["claim", "verdict", "deciding test", "held fixed", "effect [95% CI]", "p", "n",
                   "smallest detectable", "powered"], rows),
            p(S("Enough power", "b"), f" (a medium true effect, |ρ| = {stats.REFERENCE_EFFECT:g}, is "
              f"{ref:.2f} through the noise ceiling; the test must detect that with 80% power): "
              f"{', '.join(powered) or 'none of the claims'}. ", S("Not enough", "b"),
              f": {', '.join(weak) or 'none'}. An inconclusive verdict there is no evidence of absence.")]


def header(r: stats.StudyReport, context: Mapping[str, Any], extra: Mapping[str, Any]) -> list[Block]:
    facts = {**{k: v for k, v in context.items() if k in ("data", "attack")}, **extra}
    rows: list[tuple[str, str]] = [("candidates", f"{r.n_records} sampled, {r.n_evaluated} finetuned and evaluated, "
                                                  f"{r.n_filtered_out} dropped by the FSP filter before finetuning")]
    for key, value in facts.items():
        if key == "command" or value is None:
            continue
        if key in ("wall_seconds", "search_seconds") and isinstance(value, int | float):
            text = _seconds(float(value))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
        rows.append((_HEADER_KEYS.get(key, key), text))
    rows += [(key, "not recorded") for key in ("data", "attack", "device") if key not in facts]
    s = r.settings
    rows.append(("analysis", f"seed {s.get('rng')}; {s.get('n_perm')} permutations per test, {s.get('n_boot')} "
                             f"bootstrap resamples per interval up to n = {s.get('resample_max_n')} (above: "
                             f"large-sample formulas); level {s.get('alpha')}; proxy keep {s.get('keep')}, true top "
                             f"{s.get('top')}"))
    if r.capacity:
        rows.append(("capacity control", f"{r.capacity.get('note')} ({r.capacity.get('strata')} strata)"))
    command = extra.get("command")
    return [H(2, "What was run"), table(["run", "value"], rows), p(S("Reproduce with:", "b")),
            *([Pre(str(command))] if command else [p("(the command was not recorded)")])]


def noise(r: stats.StudyReport) -> list[Block]:
    nz = r.noise
    out: list[Block] = [H(2, "Measurement noise")]
    if nz is None:
        return [*out, p("Not measured.")]
    rows = []
    if nz.retest is not None:
        c = nz.retest
        rows.append((f"test-retest rank correlation, two half-size measurements of {nz.n_retest} candidates",
                     stats.fmt(c.coef), stats.ci_text(c.ci), str(c.n)))
    rows.append(("reliability of the full measurement (Spearman-Brown)", stats.fmt(nz.reliability, sign=False),
                 stats.ci_text(nz.reliability_ci, sign=False), str(nz.n_retest)))
    rows.append(("noise ceiling: the largest correlation any score can reach", stats.fmt(nz.ceiling, sign=False),
                 stats.ci_text(nz.ceiling_ci, sign=False), str(nz.n_retest)))
    rows.append((f"smallest correlation detectable at n = {nz.n} (80% power, two-sided {nz.alpha:g})",
                 stats.fmt(nz.detectable, sign=False), "-", str(nz.n)))
    if nz.overlap is not None:
        rows.append((f"top-{nz.top:.0%} stability: share of the {nz.n_top} top candidates still on top when every "
                     f"accuracy is redrawn (Binomial(n_eval = {nz.n_eval}), {nz.draws} draws)",
                     stats.fmt(nz.overlap, sign=False), stats.ci_text(nz.overlap_ci, sign=False), str(nz.n)))
    out.append(table(["measure", "value", "95% interval", "n"], rows))
    return out + ([List(tuple(f"Note: {n}" for n in nz.notes))] if nz.notes else [])


def selection(r: stats.StudyReport) -> list[Block]:
    s = r.selection
    out: list[Block] = [H(2, "The selected architecture: validation against held-out test")]
    if s is None:
        return [*out, p("No selection was recorded for this run (no selection.json).")]
    rows = [("validation (chosen on it: biased upward)", stats.fmt(s.validation_pgd_acc, 3, False),
             stats.ci_text(s.validation_ci, 3, False), stats.fmt(s.validation_clean_acc, 3, False),
             str(s.validation_n)),
            ("test (held out, seen by no choice)", stats.fmt(s.test_pgd_acc, 3, False),
             stats.ci_text(s.test_ci, 3, False), stats.fmt(s.test_clean_acc, 3, False), str(s.test_n))]
    return [*out, p(f"Candidate {s.id}, the best of {s.candidates} by validation PGD accuracy, genotype ",
                    S(str(s.genotype), "code"), f". {s.note[0].upper() + s.note[1:]}."),
            table(["split", "PGD accuracy", "95% interval", "clean accuracy", "images"], rows),
            p(f"Validation minus test PGD accuracy: {stats.fmt(s.optimism, 3)}.")]


def _evidence(c: stats.Claim) -> Table:
    signed = ("correlation", "difference")
    rows = [(e.role, e.label, stats.fmt(e.statistic, sign=e.kind in signed), stats.ci_text(e.ci, sign=e.kind in signed),
             stats.fmt_p(e.pvalue), str(e.n), ", ".join(e.controls) or "none",
             f"p: {e.p_method}; interval: {e.ci_method}" + (f"; {e.note}" if e.note else ""))
            for e in c.evidence]
    return table(["role", "test", "effect", "95% CI", "p", "n", "held fixed", "how"], rows)


def claims(r: stats.StudyReport, notes_for: Mapping[str, Sequence[str]]) -> list[Block]:
    out: list[Block] = [H(2, "The claims, test by test")]
    for c in r.claims:
        out += [H(3, TITLES.get(c.id, c.finding) + f" ({c.id})"),
                Claim(c.finding, c.verdict, VERDICT_WORDS[c.verdict] + (f" ({c.reason})" if c.reason else ""),
                      c.this_run, c.paper)]
        if c.evidence:
            out.append(_evidence(c))
        notes = notes_for.get(c.id, ())
        out += [List(tuple(f"Note: {n}" for n in notes))] if notes else []
        if c.id == "f3_fsp_deep":
            out += _per_cell(r.per_cell or r.per_cell_before)
    return out


def _per_cell(pc: stats.PerCell | None) -> list[Block]:
    if pc is None:
        return []
    rows = [(str(c.cell), c.kind + (", deep" if c.deep else ""), f"{stats.fmt(c.fsp_pgd.coef)} "
             f"{stats.ci_text(c.fsp_pgd.ci)}", stats.fmt_p(c.fsp_pgd.pvalue), stats.fmt_p(c.holm_pvalue),
             _cell(c.rel_pgd), _cell(c.partial), _cell(c.strided)) for c in pc.cells]
    stage = {"after": "finetuned weights", "before": "inherited weights"}.get(pc.stage, pc.stage)
    out: list[Block] = [
        p(f"Per cell ({stage}, n = {pc.n}): Spearman correlation of the negated FSP distance with PGD accuracy "
          "[95% CI] (positive: lower distance, more robust). The deep cells are the deepest stage, from the "
          f"second reduction cell on ({list(pc.deep_cells)}); Holm's correction runs over them."),
        table(["cell", "type", "raw", "p", "Holm p", "relative", "raw given scale", "raw, strided"], rows)]
    types = [(f"{t.kind} cells among the {t.scope} cells {list(t.cells)}", stats.fmt(t.correlation.coef),
              stats.ci_text(t.correlation.ci), stats.fmt_p(t.correlation.pvalue)) for t in pc.types]
    if types:
        out += [p("Per cell type (mean log raw distance over the cells of the type):"),
                table(["cells", "Spearman", "95% CI", "p"], types)]
    out.append(_pooling(pc))
    return out


def _cell(c: stats.Correlation | None) -> str:
    return "-" if c is None else f"{stats.fmt(c.coef)} {stats.ci_text(c.ci)}"


def _pooling(pc: stats.PerCell) -> P:
    text = ("Pooling of the cell input: the FSP matrix pairs a cell's input (its direct predecessor's output) "
            "with its output; where a reduction cell's input map is larger, it is average-pooled to the output's "
            "size (adaptive average pooling), never max-pooled. ")
    if pc.pooling is None:
        return p(text + "The records hold no strided FSP distances (fsp_strided), so how much the deep-cell "
                        "result depends on the pooling was not measured.")
    d = pc.pooling.difference
    return p(text + f"With strided subsampling instead, the deep-cell mean's correlation is "
                    f"{stats.fmt(pc.pooling.strided.coef)} {stats.ci_text(pc.pooling.strided.ci)} against "
                    f"{stats.fmt(pc.pooling.pooled.coef)} pooled: a change of {stats.fmt(d.delta)} "
                    f"{stats.ci_text(d.ci)} ({d.ci_method}).")


def _proxy_row(row: stats.ProxyRow) -> tuple[str, ...]:
    c = row.spearman
    vs = "-" if row.vs_params is None else f"{stats.fmt(row.vs_params.delta)} {stats.ci_text(row.vs_params.ci)}"
    beats = "-" if row.beats_params is None else "yes" if row.beats_params else "no"
    return (PROXY_NAMES.get(row.proxy, row.proxy), "lower" if row.lower_is_better else "higher", str(row.n),
            f"{stats.fmt(c.coef)} {stats.ci_text(c.ci)}", stats.fmt_p(c.pvalue), _cell(row.partial_params),
            f"{row.recall:.2f} {stats.ci_text(row.recall_ci, sign=False)} ({row.n_top_kept}/{row.n_top})",
            stats.fmt_p(row.recall_pvalue), f"{row.random_recall:.2f}", vs, beats,
            "n/a" if row.seconds_per_candidate is None else f"{row.seconds_per_candidate:.3g}")


def proxies(r: stats.StudyReport, extra: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [H(2, "FSP against cheap robustness proxies and free baselines")]
    px = r.proxies
    if px is None or not px.rows:
        why = "; ".join(px.notes) if px else "; ".join(n for n in r.notes if n.startswith("proxy"))
        return [*out, p(f"Not measured in this run ({why or 'no proxy columns in the records'}).")]
    top, keep = f"{px.top:.0%}", f"{px.keep:g}"
    out.append(p("Each score is computed once per candidate with the inherited supernet weights, before finetuning, "
                 "and ranked against the final PGD accuracy; the parameter count, FLOPs, conv count and density are "
                 "free baselines. Spearman is sign-adjusted (positive: the score ranks robust candidates first), the "
                 "number the figure and stats.json hold. Recall: the share of the true top "
                 f"{top} by final PGD accuracy among the fraction q = {keep} the score keeps; its p-value is exact "
                 "(hypergeometric) against a random filter of the same size. A score beats the parameter count when "
                 "the interval of its Spearman minus the parameter count's lies above 0. The correlation given "
                 "parameters is a secondary control: with clustered capacity it keeps part of the capacity effect."))
    out.append(table(["score", "better", "n", "Spearman [95% CI]", "p", "given params", f"top-{top} recall at q={keep}",
                      "recall p", "random", "minus params'", "beats params", "s / cand."],
                     [_proxy_row(row) for row in px.rows]))
    if px.notes:
        out.append(List(tuple(f"Note: {n}" for n in px.notes)))
    return out + _filter_value(r, px, extra)


def _filter_value(r: stats.StudyReport, px: stats.ProxyTable, extra: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [H(3, "The FSP filter's value")]
    fsp = next((row for row in px.rows if row.proxy == "fsp"), None)
    if fsp is None:
        return [*out, p("Not measured: the records hold no FSP distance with the inherited weights.")]
    text = (f"Keeping the {fsp.n_keep} of {fsp.n} candidates ({px.keep:.0%}) with the smallest deep-cell FSP "
            f"distance keeps {fsp.n_top_kept} of the {fsp.n_top} true top-{px.top:.0%} candidates (recall "
            f"{fsp.recall:.2f} {stats.ci_text(fsp.recall_ci, sign=False)}; a random filter keeps "
            f"{fsp.random_recall:.2f}, {stats.p_text(fsp.recall_pvalue)}) and skips {fsp.compute_saved:.0%} of the "
            "finetuning runs")
    if px.finetune_seconds is not None:
        text += (f", {px.finetune_seconds * fsp.compute_saved:.3g} s of finetuning per candidate on average "
                 f"({px.finetune_seconds:.3g} s per finetuned candidate)")
    if fsp.seconds_per_candidate is not None:
        text += f", at a scoring cost of {fsp.seconds_per_candidate:.3g} s per candidate"
    parts = [text + "."]
    if not fsp.beats_params:
        parts.append("It does not beat the free parameter count at ranking the candidates.")
    if r.n_filtered_out:
        parts.append(f"This run used the filter: {r.n_filtered_out} of {r.n_records} candidates were never "
                     "finetuned, so their final PGD accuracy is unknown and the recall is over the finetuned ones.")
    run_keep = extra.get("fsp_keep")
    if isinstance(run_keep, int | float) and not math.isclose(float(run_keep), px.keep):
        parts.append(f"The search ran with --fsp-keep {run_keep:g}; this table evaluates q = {px.keep:g}.")
    return [*out, p(" ".join(parts))]

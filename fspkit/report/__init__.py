"""The study report of ``fspkit demo``: ``report.md`` and ``report.html`` (issue 10).

:func:`write_report` turns a :class:`fspkit.stats.study.StudyReport`, the figures of
:func:`fspkit.plots.figures.plot_all` and the facts of the run into two files with the same content:

1. what was run (data, preset, candidates, attack, seeds, device, wall time) and the one-line
   command that reproduces it;
2. what this run found, Finding by Finding: this run's numbers (sign, coefficient, interval, n)
   with the verdict of the report's :class:`~fspkit.stats.study.Claim`, beside what the paper reported
   (the paper's claim is quoted for comparison, never shown as this run's result);
3. FSP against the cheap robustness proxies, and what the FSP filter kept and saved;
4. every figure with a caption, the full statistics tables, links to ``stats.json`` and the records.

The document is built once as a list of blocks and rendered twice. The HTML is one self-contained
file (inline CSS, no script, no external assets apart from the figure images); all text from the
data is escaped (``html.escape``), in Markdown the characters that would become markup are
backslash-escaped.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from fspkit.stats.findings import Correlation
from fspkit.stats.study import Claim, StudyReport
from robnet.io.files import atomic_write
from robnet.io.results import check_output_path

__all__ = ["CAPTIONS", "write_report"]

CAPTIONS: dict[str, str] = {
    "fig1_params": "Fig. 1. Parameters against final PGD accuracy of the evaluated candidates, one series per "
                   "conv budget.",
    "fig3_finetune": "Fig. 3. PGD accuracy with the inherited supernet weights against after finetuning (left), "
                     "and both distributions (right).",
    "fig4_finding1": "Fig. 4 (Finding #1). t-SNE of the genotype bit vectors of the most and least robust "
                     "candidates (left), and the linear classifier's weight per (edge, op) (right).",
    "fig5_density": "Fig. 5 (Finding #1). Architecture density (paper Eq. 2) against PGD accuracy, with the "
                    "least-squares line and its 95% band.",
    "fig6_direct_convs": "Fig. 6 (Finding #2). PGD accuracy against the number of convs on direct edges, one "
                         "series per conv budget.",
    "fig7_fsp_depth": "Fig. 7 (Finding #3). FSP distance per cell depth, robust vs non-robust candidates: raw and "
                      "relative distance.",
    "fig7_filtering": "Fig. 7 (filter). PGD accuracy of all candidates and of those the FSP filter keeps.",
    "proxy_table": "FSP distance against the cheap robustness proxies: Spearman with final PGD accuracy, recall "
                   "of the true top candidates, cost per candidate.",
}
VERDICTS = {"agrees": "agrees with the paper", "disagrees": "contradicts the paper",
            "inconclusive": "inconclusive", "new": "new: the paper did not examine this"}
PROXY_NAMES = {"fsp": "FSP distance, deep cells (raw)", "fsp_rel": "FSP distance, deep cells (relative)",
               "grad_norm": "gradient norm", "synflow": "SynFlow", "naswot": "NASWOT (Jacobian covariance)",
               "pgd_before_finetune": "PGD accuracy before finetuning"}
# extra keys shown in the header under their own label (any other key is listed as it is)
_HEADER_KEYS = {"data": "data", "preset": "preset", "attack": "attack", "seed": "seed", "seeds": "seeds",
                "device": "device", "wall_seconds": "wall time", "fsp_keep": "FSP filter keep (--fsp-keep)"}


# ---------------------------------------------------------------------------------- document blocks
# The document is a list of blocks, rendered by _to_md and _to_html.
class _S(NamedTuple):
    """An inline span: plain text (``t``), ``code``, ``b`` (bold) or ``a`` (a link to ``href``)."""

    text: str
    kind: str = "t"
    href: str = ""


class _H(NamedTuple):
    level: int
    text: str


class _P(NamedTuple):
    spans: tuple[_S, ...]


class _Table(NamedTuple):
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


class _Pre(NamedTuple):
    text: str


class _Fig(NamedTuple):
    src: str
    caption: str
    width: int | None = None  # CSS pixels at the figure's designed size (PNG only)


class _List(NamedTuple):
    items: tuple[str, ...]


_Block = _H | _P | _Table | _Pre | _Fig | _List | Claim


def _p(*parts: str | _S) -> _P:
    return _P(tuple(_S(p) if isinstance(p, str) else p for p in parts))


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> _Table:
    return _Table(tuple(headers), tuple(tuple(str(v) for v in r) for r in rows))


# ---------------------------------------------------------------------------------- numbers
def _num(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:+.{digits}f}"


def _interval(ci: tuple[float, float], digits: int = 2) -> str:
    return f"[{_num(ci[0], digits)}, {_num(ci[1], digits)}]"


def _sign(lo: float, hi: float) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval"
    return "positive" if lo > 0 else "negative" if hi < 0 else "no clear sign (interval spans 0)"


def _corr_row(measure: str, c: Correlation) -> tuple[str, ...]:
    return measure, _num(c.coef), _interval(c.ci), str(c.n), _sign(*c.ci)


def _ci_cell(c: Correlation | None) -> str:
    return "-" if c is None else f"{_num(c.coef)} {_interval(c.ci)}"


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    return f"{m} min {sec:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


# ---------------------------------------------------------------------------------- sections
def _header(r: StudyReport, context: Mapping[str, Any], extra: Mapping[str, Any]) -> list[_Block]:
    facts = {**{k: v for k, v in context.items() if k in ("data", "attack")}, **extra}
    rows: list[tuple[str, str]] = [("candidates", f"{r.n_records} sampled, {r.n_evaluated} finetuned and evaluated, "
                                                  f"{r.n_filtered_out} dropped by the FSP filter before finetuning")]
    for key, value in facts.items():
        if key == "command" or value is None:
            continue
        if key == "wall_seconds" and isinstance(value, int | float):
            text = _seconds(float(value))
        else:
            text = value if isinstance(value, str) else json.dumps(value, default=str)
        rows.append((_HEADER_KEYS.get(key, key), text))
    for key in ("data", "attack", "device"):
        if key not in facts:
            rows.append((key, "not recorded"))
    s = r.settings
    rows.append(("analysis", f"seed {s.get('rng')}, {s.get('n_boot')} bootstrap resamples, Finding #1 groups "
                             f"{'30% of the candidates' if s.get('k') is None else s.get('k')}, proxy keep "
                             f"{s.get('keep')}, true top {s.get('top')}"))
    command = extra.get("command")
    return [_table(["run", "value"], rows), _p(_S("Reproduce with:", "b")),
            _Pre(str(command)) if command else _p("(the command was not recorded)")]


def _notes_for(r: StudyReport, prefix: str) -> list[_Block]:
    notes = [n for n in r.notes if n.startswith(prefix)]
    return [_List(tuple(f"Note: {n}" for n in notes))] if notes else []


def _claims(r: StudyReport, *prefixes: str) -> list[_Block]:
    return [c for c in r.claims if c.finding.startswith(prefixes)]


def _finding1(r: StudyReport) -> list[_Block]:
    rows: list[tuple[str, ...]] = []
    if r.finding1:
        f = r.finding1
        rows.append((f"classifier, top {f.k} vs bottom {f.k} of {f.n}: share of positive weights among the "
                     "varying bits", f"{f.positive_share:.2f}", "-", str(2 * f.k),
                     f"{f.n_positive} positive, {f.n_negative} negative"))
        rows.append((f"classifier: {f.cv_folds}-fold accuracy (chance 0.50)", f"{f.cv_accuracy:.2f} ± {f.cv_std:.2f}",
                     "-", str(2 * f.k), "-"))
    if r.finding2:
        f2 = r.finding2
        rows.append(_corr_row("Spearman(density, PGD accuracy)", f2.spearman))
        rows.append(("least-squares slope: PGD accuracy per unit density", _num(f2.slope, 3),
                     _interval(f2.slope_ci, 3), str(f2.n), _sign(*f2.slope_ci)))
    out: list[_Block] = [_H(3, "Finding #1: dense connections (classifier weights, density)")]
    if rows:
        out.append(_table(["measure", "coef", "95% CI", "n", "sign"], rows))
    else:
        out.append(_p("Not measured in this run."))
    return out + _claims(r, "Finding #1") + _notes_for(r, "Finding #1")


def _finding2(r: StudyReport) -> list[_Block]:
    out: list[_Block] = [_H(3, "Finding #2: convs on direct edges, per conv budget")]
    rows: list[tuple[str, ...]] = []
    for g in r.direct_convs.groups if r.direct_convs else ():
        budget = "no budget" if g.budget is None else f"budget {g.budget}"
        measure = f"Spearman(direct-edge convs, PGD accuracy), {budget}"
        rows.append(_corr_row(measure, g.correlation) if g.correlation else (measure, "-", "-", str(g.n), g.note))
    reg = r.regression
    if reg and "direct_convs" in reg.names:
        held = [m for m in reg.names if m != "direct_convs"]
        holding = f" holding {', '.join(held)} fixed" if held else ""
        rows.append((f"least-squares coef of direct-edge convs{holding}",
                     _num(reg.coef["direct_convs"], 4), _interval(reg.ci["direct_convs"], 4), str(reg.n),
                     _sign(*reg.ci["direct_convs"])))
    out.append(_table(["measure", "coef", "95% CI", "n", "sign"], rows) if rows else _p("Not measured in this run."))
    return out + _claims(r, "Finding #2") + _notes_for(r, "Finding #2")


def _finding3(r: StudyReport) -> list[_Block]:
    out: list[_Block] = [_H(3, "Finding #3: FSP distance in the deeper cells (raw, relative, and controlling for "
                                "the activation scale)")]
    pc = r.per_cell
    if pc is None:
        out.append(_p("Not measured in this run: the records hold no FSP distances after finetuning (a ",
                      _S("robnet search", "code"), " run records none; ", _S("fspkit search", "code"), " does)."))
    else:
        deep = len(pc.cells) // 2
        out.append(_p(f"{pc.method.capitalize()} correlation with final PGD accuracy per cell [95% CI], n = {pc.n}"
                      f"{f' ({pc.dropped} candidates without these columns left out)' if pc.dropped else ''}. "
                      "Negative means a robust network has the smaller distance, as the paper found; the verdicts "
                      f"use the deeper half, cells {pc.cells[deep].cell}..{pc.cells[-1].cell}. The relative distance "
                      "is ||G(x) - G(x_adv)||² / ||G(x)||²; the last column is the raw distance's partial "
                      "correlation given the activation scale ||G(x)||²."))
        out.append(_table(["cell", "raw ~ PGD acc", "relative ~ PGD acc", "raw ~ PGD acc | scale"],
                          [(f"{c.cell}{' (deep)' if i >= deep else ''}", _ci_cell(c.fsp_pgd), _ci_cell(c.rel_pgd),
                            _ci_cell(c.partial)) for i, c in enumerate(pc.cells)]))
    return out + _claims(r, "Finding #3", "beyond the paper") + _notes_for(r, "Finding #3")


def _proxies(r: StudyReport, extra: Mapping[str, Any]) -> list[_Block]:
    out: list[_Block] = [_H(2, "FSP against cheap robustness proxies")]
    px = r.proxies
    if px is None or not px.rows:
        why = "; ".join(px.notes) if px else "; ".join(n for n in r.notes if n.startswith("proxy"))
        return [*out, _p(f"Not measured in this run ({why or 'no proxy columns in the records'}).")]
    top, keep = f"{px.top:.0%}", f"{px.keep:g}"
    out.append(_p("Each score is computed once per candidate with the inherited supernet weights, before "
                  f"finetuning, and ranked against the final PGD accuracy. Recall: the share of the true top {top} "
                  f"by final PGD accuracy among the fraction q = {keep} that the score keeps."))
    out.append(_table(["proxy", "better", "n", "Spearman", "95% CI", f"top-{top} recall at q={keep}", "random",
                       "s / candidate"],
                      [(PROXY_NAMES.get(p.proxy, p.proxy), "lower" if p.lower_is_better else "higher",
                        str(p.quality.n), _num(p.quality.spearman.coef), _interval(p.quality.spearman.ci),
                        f"{p.quality.recall:.2f} ({p.quality.n_top_kept}/{p.quality.n_top})",
                        f"{p.quality.random_recall:.2f}",
                        "n/a" if p.seconds_per_candidate is None else f"{p.seconds_per_candidate:.3g}")
                       for p in px.rows]))
    if px.notes:
        out.append(_List(tuple(f"Note: {n}" for n in px.notes)))
    out.append(_H(3, "The FSP filter's value"))
    fsp = next((p for p in px.rows if p.proxy == "fsp"), None)
    if fsp is None:
        return [*out, _p("Not measured: the records hold no FSP distance with the inherited weights.")]
    q = fsp.quality
    text = (f"Keeping the {q.n_keep} of {q.n} candidates ({q.keep:.0%}) with the smallest deep-cell FSP distance "
            f"keeps {q.n_top_kept} of the {q.n_top} true top-{top} candidates (recall {q.recall:.2f}; a random "
            f"filter keeps {q.random_recall:.2f}) and skips {q.compute_saved:.0%} of the finetuning runs")
    if px.finetune_seconds is not None:
        text += (f", {px.finetune_seconds * q.compute_saved:.3g} s of finetuning per candidate on average "
                 f"({px.finetune_seconds:.3g} s per finetuned candidate)")
    if fsp.seconds_per_candidate is not None:
        text += f", at a scoring cost of {fsp.seconds_per_candidate:.3g} s per candidate"
    parts = [text + "."]
    if r.n_filtered_out:
        parts.append(f"This run used the filter: {r.n_filtered_out} of {r.n_records} candidates were never "
                     "finetuned, so their final PGD accuracy is unknown and the recall is over the finetuned ones.")
    run_keep = extra.get("fsp_keep")
    if isinstance(run_keep, int | float) and not math.isclose(float(run_keep), px.keep):
        parts.append(f"The search ran with --fsp-keep {run_keep:g}; this table evaluates q = {keep}.")
    return [*out, _p(" ".join(parts))]


def _link(path: str, out_dir: Path) -> str:
    p = Path(path)
    if p.is_absolute() and p.resolve().is_relative_to(out_dir.resolve()):
        return p.resolve().relative_to(out_dir.resolve()).as_posix()
    return p.as_posix()


def _png_width(path: Path) -> int | None:
    """A PNG's width in CSS pixels (96 per inch) at its designed size (saved at ``plots.DPI``), so that
    every figure's fonts show at the same size; None for another format or an unreadable file."""
    from fspkit.plots.figures import DPI

    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return round(int.from_bytes(head[16:20], "big") * 96 / DPI)


def _claim_title(c: Claim) -> str:
    subject = c.this_run.split(" in the deeper cells", 1)[0] if " in the deeper cells" in c.this_run else ""
    return f"{c.finding}: {subject}" if subject else c.finding


def _figures(figures: Sequence[Path], out_dir: Path) -> list[_Block]:
    from fspkit.plots.figures import FIGURES

    out: list[_Block] = [_H(2, "Figures")]
    if not figures:
        out.append(_p("No figures were written for this run."))
    for f in figures:
        src = Path(os.path.relpath(Path(f).resolve(), out_dir.resolve())).as_posix()
        out.append(_Fig(src, CAPTIONS.get(Path(f).stem, Path(f).stem), _png_width(Path(f))))
    missing = [name for name in FIGURES if name not in {Path(f).stem for f in figures}]
    if missing:
        out.append(_p(f"Not drawn (the records lack their columns, or their statistics are undefined on these "
                      f"records): {', '.join(missing)}."))
    return out


def _build(r: StudyReport, figures: Sequence[Path], context: Mapping[str, Any], records_path: str, stats_path: str,
           extra: Mapping[str, Any], out_dir: Path) -> list[_Block]:
    counts = {v: sum(c.verdict == v for c in r.claims) for v in VERDICTS}
    words = {"agrees": "agree with the paper", "disagrees": "contradict it", "inconclusive": "inconclusive",
             "new": "new (the paper did not examine them)"}
    summary = ", ".join(f"{n} {words[v]}" for v, n in counts.items() if n) or "no claim could be tested"
    records = _link(records_path, out_dir)
    blocks: list[_Block] = [_H(1, "FSP study report: when NAS meets robustness, on this run"),
                            *_header(r, context, extra), _H(2, "What this run found"),
                            _p(f"Every number below was measured on this run's {r.n_evaluated} evaluated candidates. "
                               "Each verdict compares this run's 95% interval with the paper's statement, which "
                               "is quoted beside it for comparison, never as this run's result. Of the "
                               f"{len(r.claims)} claims tested: {summary}."),
                            *_finding1(r), *_finding2(r), *_finding3(r), *_proxies(r, extra),
                            *_figures(figures, out_dir), _H(2, "Statistics tables"),
                            _p("Everything the analysis measured, as ", _S("fspkit stats", "code"),
                               " prints it. Machine-readable: ", _S("stats.json", "a", _link(stats_path, out_dir)),
                               "; the candidate records: ", _S(records, "a", records), "."),
                            _Pre(r.tables().rstrip("\n"))]
    return blocks


# ---------------------------------------------------------------------------------- renderers
_NUMERIC = re.compile(r"[\d\s.,+\-±\[\]()/e%]+|n/a")


def _md_escape(text: str, cell: bool = False) -> str:
    # intraword "_" and a "[...]" not followed by "(" or "[" are no markup in CommonMark: left readable
    out = "".join("\\" + ch if ch in "\\`*<" else ch for ch in text).replace("](", "]\\(").replace("][", "]\\[")
    return out.replace("|", "\\|").replace("\n", " ") if cell else out


def _md_spans(spans: Sequence[_S]) -> str:
    wrap = {"t": "{}", "b": "**{}**", "a": "[{}](<{}>)"}
    return "".join(f"`{s.text}`" if s.kind == "code" else wrap[s.kind].format(_md_escape(s.text), s.href)
                   for s in spans)


def _numeric_columns(t: _Table) -> list[bool]:
    """Columns of numbers (and "-"), right-aligned in both renderings."""
    return [bool(t.rows) and all(r[i] == "-" or _NUMERIC.fullmatch(r[i]) is not None for r in t.rows)
            for i in range(len(t.headers))]


def _md_table(t: _Table) -> str:
    align = "".join("---:|" if n else "---|" for n in _numeric_columns(t))
    lines = ["| " + " | ".join(_md_escape(h, True) for h in t.headers) + " |", "|" + align]
    return "\n".join(lines + ["| " + " | ".join(_md_escape(v, True) for v in row) + " |" for row in t.rows])


def _to_md(blocks: Sequence[_Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, _H):
            out.append("#" * b.level + " " + _md_escape(b.text))
        elif isinstance(b, _P):
            out.append(_md_spans(b.spans))
        elif isinstance(b, _Table):
            out.append(_md_table(b))
        elif isinstance(b, _Pre):
            fence = "~~~" if "```" in b.text else "```"
            out.append(f"{fence}text\n{b.text}\n{fence}")
        elif isinstance(b, _Fig):
            out.append(f"![{_md_escape(b.caption)}](<{b.src}>)\n\n*{_md_escape(b.caption)}*")
        elif isinstance(b, _List):
            out.append("\n".join("- " + _md_escape(i) for i in b.items))
        else:
            out.append(f"**{_md_escape(_claim_title(b))}** — verdict: *{VERDICTS.get(b.verdict, b.verdict)}*\n\n"
                       + _md_table(_table(["This run", "The paper reported"],
                                          [[b.this_run, b.paper or "(not examined by the paper)"]])))
    return "\n\n".join(out) + "\n"


_CSS = """
body{font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1f2328;margin:0;padding:2rem 1rem}
main{max-width:980px;margin:0 auto}h1{font-size:1.8rem;margin:0 0 1rem}h3{font-size:1.15rem;margin:1.6rem 0 .6rem}
h2{font-size:1.4rem;margin:2.2rem 0 .8rem;border-bottom:1px solid #d0d7de;padding-bottom:.3rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem;width:100%}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
pre,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f6f8fa}
pre{border:1px solid #d0d7de;border-radius:6px;padding:.8rem;overflow-x:auto;font-size:13px;line-height:1.45}
code{font-size:.9em;padding:.1em .3em;border-radius:4px}
figure{margin:1.4rem 0;text-align:center}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.9rem;color:#57606a;margin-top:.3rem}
.claim{border:1px solid #d0d7de;border-radius:8px;margin:.9rem 0;overflow:hidden}
.claim-head{background:#f6f8fa;padding:.45rem .8rem;font-weight:600}.side{display:grid;grid-template-columns:1fr 1fr}
.side>div{padding:.5rem .8rem}.side>div+div{border-left:1px solid #d0d7de;color:#57606a}.side p{margin:0}
.side h4{margin:0 0 .2rem;font-size:.8rem;text-transform:uppercase;letter-spacing:.04em;color:#57606a}
.v{display:inline-block;border-radius:999px;padding:.05rem .6rem;margin-right:.5rem;font-size:.85rem}
.v-agrees{background:#dafbe1;color:#116329}.v-disagrees{background:#ffebe9;color:#a40e26}
.v-inconclusive{background:#fff8c5;color:#6c4b00}.v-new{background:#ddf4ff;color:#0a3069}
ul.notes{color:#57606a;font-size:.92rem}.wide{overflow-x:auto}
@media(max-width:700px){.side{grid-template-columns:1fr}.side>div+div{border-left:0;border-top:1px solid #d0d7de}}
"""


def _html_spans(spans: Sequence[_S]) -> str:
    tags = {"code": "code", "b": "strong"}
    return "".join(f'<a href="{html.escape(quote(s.href))}">{html.escape(s.text)}</a>' if s.kind == "a" else
                   f"<{tags[s.kind]}>{html.escape(s.text)}</{tags[s.kind]}>" if s.kind in tags else html.escape(s.text)
                   for s in spans)


def _html_table(t: _Table) -> str:
    cls = [' class="num"' if n else "" for n in _numeric_columns(t)]
    head = "".join(f"<th{c}>{html.escape(h)}</th>" for h, c in zip(t.headers, cls, strict=True))
    body = "".join("<tr>" + "".join(f"<td{c}>{html.escape(v)}</td>" for v, c in zip(row, cls, strict=True)) + "</tr>"
                   for row in t.rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_block(b: _Block) -> str:
    e = html.escape
    if isinstance(b, _H):
        return f"<h{b.level}>{e(b.text)}</h{b.level}>"
    if isinstance(b, _P):
        return f"<p>{_html_spans(b.spans)}</p>"
    if isinstance(b, _Table):
        return _html_table(b)
    if isinstance(b, _Pre):
        return f"<pre>{e(b.text)}</pre>"
    if isinstance(b, _Fig):
        width = "" if b.width is None else f' width="{b.width}"'
        return (f'<figure><img src="{e(quote(b.src))}"{width} alt="{e(b.caption)}">'
                f"<figcaption>{e(b.caption)}</figcaption></figure>")
    if isinstance(b, _List):
        return '<ul class="notes">' + "".join(f"<li>{e(i)}</li>" for i in b.items) + "</ul>"
    verdict = b.verdict if b.verdict in VERDICTS else "inconclusive"
    return (f'<section class="claim"><div class="claim-head"><span class="v v-{verdict}">'
            f"{e(VERDICTS.get(b.verdict, b.verdict))}</span>{e(_claim_title(b))}</div><div class=\"side\">"
            f"<div><h4>This run</h4><p>{e(b.this_run)}</p></div>"
            f"<div><h4>The paper reported</h4><p>{e(b.paper or '(not examined by the paper)')}</p></div>"
            "</div></section>")


def _to_html(blocks: Sequence[_Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, _H)), "report")
    body = "\n".join(_html_block(b) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>'
            f"\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n")


# ---------------------------------------------------------------------------------- entry point
def write_report(out_dir: str | os.PathLike[str], *, report: StudyReport, figures: Sequence[str | os.PathLike[str]],
                 context: Mapping[str, Any], records_path: str, stats_path: str,
                 extra: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (same content; see the module docstring) into ``out_dir``.

    Both files are written atomically; figures are linked by their path relative to ``out_dir``
    (``figures/NAME.png`` for the figures of ``plot_all(records, out_dir / "figures")``).

    Args:
        out_dir: the run's output folder (created when missing).
        report: :func:`fspkit.stats.study.analyze` of the run's records.
        figures: the figure files (:func:`fspkit.plots.figures.plot_all`), captioned by their stem.
        context: caption facts of the run (:func:`fspkit.plots.figures.run_context`: ``data``, ``attack``).
        records_path, stats_path: the records and ``stats.json``, linked (relative to ``out_dir``
            when inside it).
        extra: facts for the header: ``command`` (the one line that reproduces the run), ``preset``,
            ``seed``/``seeds``, ``device``, ``wall_seconds``, ``fsp_keep``, ``data``/``attack``
            (override ``context``); any other key is listed as it is.

    Returns:
        The paths of ``report.md`` and ``report.html``.

    Raises:
        TypeError: ``report`` is not a StudyReport, or ``context``/``extra`` not a mapping.
        ValueError: an empty ``records_path``/``stats_path``, or an output path that cannot be written.
    """
    if not isinstance(report, StudyReport):
        raise TypeError(f"write_report: report must be a fspkit.stats.study.StudyReport, got {type(report).__name__}; "
                        "hint: report = fspkit.stats.study.analyze(records)")
    for name, facts in (("context", context), ("extra", {} if extra is None else extra)):
        if not isinstance(facts, Mapping):
            raise TypeError(f"write_report: {name} must be a mapping (dict), got {type(facts).__name__}")
    for name, path in (("records_path", records_path), ("stats_path", stats_path)):
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"write_report: {name} must name the file to link, got {path!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"write_report: out_dir {out} is a file; expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = (check_output_path(out / n, what="report") for n in ("report.md", "report.html"))
    blocks = _build(report, [Path(f) for f in figures], context, records_path, stats_path, dict(extra or {}), out)
    atomic_write(md_path, _to_md(blocks))
    atomic_write(html_path, _to_html(blocks))
    return md_path, html_path

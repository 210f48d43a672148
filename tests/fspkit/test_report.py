"""fspkit.report: report.md and report.html of the study (issue 10)."""

from __future__ import annotations

import dataclasses
import html
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from fspkit import stats
from fspkit.plots.figures import FIGURES
from fspkit.report import CAPTIONS, VERDICTS, _seconds, write_report
from fspkit.stats.study import PAPER, Claim, analyze
from tests._synthetic import make_records

CONTEXT = {"attack": "pgd7:eps=8/255", "data": "digits (validation split)", "n": 40}
EXTRA = {"command": "fspkit demo --out run", "preset": "cpu-demo", "seed": 0, "device": "cpu", "wall_seconds": 412.3}
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "h4", "p", "table",
                "thead", "tbody", "tr", "th", "td", "pre", "code", "strong", "a", "figure", "img", "figcaption", "ul",
                "li", "section", "div", "span"}


def _png(path: Path, width: int, height: int = 300) -> Path:
    """A file with a PNG signature and IHDR chunk (all write_report reads of a figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 6, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + (13).to_bytes(4, "big") + b"IHDR" + ihdr + b"\0" * 4)
    return path


class _Parse(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(text: str) -> _Parse:
    p = _Parse()
    p.feed(text)
    p.close()
    return p


@pytest.fixture(scope="module")
def records():
    return make_records(40, seed=3, budgets=(4, 7))


@pytest.fixture(scope="module")
def report(records):
    return analyze(records, rng=0, n_boot=200, tsne=False)


def _write(tmp_path, report, figures=None, **kw):
    figures = [_png(tmp_path / "figures" / f"{n}.png", 1650) for n in FIGURES] if figures is None else figures
    args = {"context": CONTEXT, "records_path": "records.rank0.jsonl", "stats_path": "stats.json", "extra": EXTRA}
    md, page = write_report(tmp_path, report=report, figures=figures, **{**args, **kw})
    return md.read_text(encoding="utf-8"), page.read_text(encoding="utf-8")


def test_both_files_hold_every_figure_claim_verdict_and_n(tmp_path, report):
    md, page = _write(tmp_path, report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "report.html", "report.md"]
    text = "".join(_parse(page).text)
    for name in FIGURES:
        assert f"](<figures/{name}.png>)" in md and f'src="figures/{name}.png"' in page
        assert CAPTIONS[name] in md and CAPTIONS[name] in text
    assert len(report.claims) == 6
    for c in report.claims:
        assert VERDICTS[c.verdict] in md and VERDICTS[c.verdict] in text
        assert c.this_run.replace("|", "\\|") in md and c.this_run in text
        assert (c.paper or "(not examined by the paper)") in md and (c.paper or "(not examined") in text
    for paper in PAPER.values():  # every paper claim is quoted, in its own column
        assert paper in text
    assert f"this run's {report.n_evaluated} evaluated candidates" in md
    assert "| candidates | 40 sampled, 40 finetuned and evaluated, 0 dropped by the FSP filter" in md
    assert "| wall time | 6 min 52 s |" in md and "```text\nfspkit demo --out run\n```" in md
    assert "<pre>fspkit demo --out run</pre>" in page
    assert "[stats.json](<stats.json>)" in md and 'href="records.rank0.jsonl"' in page
    assert report.tables().rstrip("\n") in md and html.escape(report.tables().rstrip("\n")) in page
    order = [md.index(h) for h in ("## What this run found", "### Finding #1", "### Finding #2", "### Finding #3",
                                   "## FSP against cheap robustness proxies", "## Figures", "## Statistics tables")]
    assert order == sorted(order)


def test_finding_numbers_match_an_independent_computation(tmp_path, records, report):
    md, _ = _write(tmp_path, report)
    rows = [r for r in records if r["pgd_acc"] is not None]
    density, pgd = stats.column(rows, "density"), stats.column(rows, "pgd_acc")
    rho = sps.spearmanr(density, pgd).statistic
    lo, hi = report.finding2.spearman.ci
    assert f"| Spearman(density, PGD accuracy) | {rho:+.2f} | [{lo:+.2f}, {hi:+.2f}] | 40 | positive |" in md
    slope = sps.linregress(density, pgd).slope
    assert f"| least-squares slope: PGD accuracy per unit density | {slope:+.3f} |" in md
    f1 = report.finding1
    assert f1.k == 12 and f"share of positive weights among the varying bits | {f1.positive_share:.2f} | - | 24 |" in md
    for g in report.direct_convs.groups:
        c = g.correlation
        assert (f"| Spearman(direct-edge convs, PGD accuracy), budget {g.budget} | {c.coef:+.2f} | "
                f"[{c.ci[0]:+.2f}, {c.ci[1]:+.2f}] | {g.n} |") in md
    last = report.per_cell.cells[-1]
    assert (f"| 4 (deep) | {last.fsp_pgd.coef:+.2f} [{last.fsp_pgd.ci[0]:+.2f}, {last.fsp_pgd.ci[1]:+.2f}] | "
            f"{last.rel_pgd.coef:+.2f} [") in md
    assert "| cell | raw ~ PGD acc | relative ~ PGD acc | raw ~ PGD acc \\| scale |\n|---|---:|---:|---:|" in md


def test_proxy_table_and_fsp_filter_value_against_filter_quality(tmp_path, records, report):
    md, page = _write(tmp_path, report)
    fsp = np.array([r["fsp_before_finetune"] for r in records])  # (40, 5)
    q = stats.filter_quality(stats.deep_mean(fsp), [r["pgd_acc"] for r in records], keep=0.3, top=0.1, n_boot=0)
    assert (q.n_keep, q.n_top) == (12, 4)
    finetune = float(np.mean([r["seconds_finetune"] for r in records]))
    seconds_fsp = float(np.mean([r["seconds_fsp"] for r in records]))
    expected = (f"Keeping the 12 of 40 candidates (30%) with the smallest deep-cell FSP distance keeps {q.n_top_kept} "
                f"of the 4 true top-10% candidates (recall {q.recall:.2f}; a random filter keeps 0.30) and skips 70% "
                f"of the finetuning runs, {finetune * 0.7:.3g} s of finetuning per candidate on average "
                f"({finetune:.3g} s per finetuned candidate), at a scoring cost of {seconds_fsp:.3g} s per candidate.")
    assert expected in md and html.escape(expected) in page
    assert "| proxy | better | n | Spearman | 95% CI | top-10% recall at q=0.3 | random | s / candidate |" in md
    naswot = next(p for p in report.proxies.rows if p.proxy == "naswot")
    assert (f"| NASWOT (Jacobian covariance) | higher | 40 | {naswot.quality.spearman.coef:+.2f} | "
            f"[{naswot.quality.spearman.ci[0]:+.2f}, {naswot.quality.spearman.ci[1]:+.2f}] | "
            f"{naswot.quality.recall:.2f} ({naswot.quality.n_top_kept}/4) | 0.30 |") in md


def test_html_is_one_self_contained_file_with_all_data_escaped(tmp_path, report):
    evil = "<script>alert(1)</script>"
    claims = (Claim(finding="Finding #1", paper="a & b <i>", this_run=f"n = 3 {evil} | x", verdict="agrees"),)
    notes = ("Finding #1: skipped, <img src=x onerror=alert(1)>",)
    bad = dataclasses.replace(report, claims=claims, notes=notes)
    md, page = _write(tmp_path, bad, context={"attack": evil, "data": "<b>digits</b>"},
                      extra={"command": "fspkit demo --out '<x>'", "preset": "<u>p</u>"},
                      records_path="rec<ords>.jsonl")
    parsed = _parse(page)
    assert {t for t, _ in parsed.tags} <= ALLOWED_TAGS
    assert not any(t in ("script", "link", "iframe", "object") for t, _ in parsed.tags)
    for raw in ("<script", "<b>digits", "<u>p", "<img src=x", "<i>", "<x>", "rec<ords"):
        assert raw not in page
    text = "".join(parsed.text)
    for data in (evil, "<b>digits</b>", "<u>p</u>", "<img src=x onerror=alert(1)>", "a & b <i>", "'<x>'"):
        assert data in text  # shown as text, not markup
    srcs = [a["src"] for t, a in parsed.tags if t == "img"]
    assert len(srcs) == len(FIGURES) and all(s.startswith("figures/") for s in srcs)
    assert [a["href"] for t, a in parsed.tags if t == "a"] == ["stats.json", "rec%3Cords%3E.jsonl"]
    assert "<style>" in page and "http" not in "".join(str(a) for _, a in parsed.tags)
    assert "n = 3 \\<script>alert(1)\\</script> \\| x" in md  # markdown: no raw markup either
    assert "- Note: Finding #1: skipped, \\<img src=x onerror=alert(1)>" in md


def test_missing_fsp_and_proxy_columns_give_notes_not_a_crash(tmp_path):
    recs = make_records(30, seed=4, fsp=False, proxies=False)
    rep = analyze(recs, rng=0, n_boot=100, tsne=False)
    md, page = _write(tmp_path, rep, figures=[], extra=None)
    assert ("Not measured in this run: the records hold no FSP distances after finetuning (a `robnet search` run "
            "records none; `fspkit search` does).") in md
    assert "(a <code>robnet search</code> run records none; <code>fspkit search</code> does).</p>" in page
    for text in (md, page):
        assert "Note: Finding #3 (after finetuning): skipped, column(s) fsp absent from the records" in text
        assert "No figures were written for this run." in text
        assert f"Not drawn (the records lack their columns, or their statistics are undefined on these records): " \
               f"{', '.join(FIGURES)}." in text
        assert "(the command was not recorded)" in text
    # only the PGD accuracy with inherited weights is left as a proxy; no FSP filter to value
    assert "\n| PGD accuracy before finetuning | higher | 30 |" in md and "\n| FSP distance" not in md
    assert ("### The FSP filter's value\n\nNot measured: the records hold no FSP distance with the inherited "
            "weights.") in md
    assert "| device | not recorded |" in md
    _parse(page)
    for r in recs:
        del r["pgd_acc_before_finetune"], r["clean_acc_before_finetune"]
    md, _ = _write(tmp_path, analyze(recs, rng=0, n_boot=100, tsne=False), figures=[])
    assert ("## FSP against cheap robustness proxies\n\nNot measured in this run (proxy table: skipped, none of "
            "fsp_before_finetune, fsp_rel_before_finetune, proxy_grad_norm") in md


def test_filtered_run_says_so_and_compares_the_keep_fractions(tmp_path):
    recs = make_records(40, seed=7, fsp_keep=0.5)
    rep = analyze(recs, rng=0, n_boot=100, tsne=False)
    md, _ = _write(tmp_path, rep, extra={**EXTRA, "fsp_keep": 0.5})
    assert "| candidates | 40 sampled, 20 finetuned and evaluated, 20 dropped by the FSP filter" in md
    assert ("This run used the filter: 20 of 40 candidates were never finetuned, so their final PGD accuracy is "
            "unknown and the recall is over the finetuned ones.") in md
    assert "The search ran with --fsp-keep 0.5; this table evaluates q = 0.3." in md
    assert "| FSP filter keep (--fsp-keep) | 0.5 |" in md


def test_figure_paths_widths_and_formats(tmp_path, report):
    wide = _png(tmp_path / "figures" / "fig4_finding1.png", 1650)
    narrow = _png(tmp_path / "figures" / "fig5_density.png", 975)
    svg = tmp_path / "figures" / "fig6_direct_convs.svg"
    svg.write_text("<svg/>")
    outside = _png(tmp_path.parent / f"{tmp_path.name}_elsewhere" / "extra_plot.png", 300)
    md, page = _write(tmp_path, report, figures=[wide, narrow, svg, outside])
    # designed size: pixels / 150 dpi * 96 CSS px per inch
    assert '<img src="figures/fig4_finding1.png" width="1056"' in page
    assert '<img src="figures/fig5_density.png" width="624"' in page
    assert '<img src="figures/fig6_direct_convs.svg" alt=' in page
    assert f'<img src="../{tmp_path.name}_elsewhere/extra_plot.png" width="192" alt="extra_plot">' in page
    assert "![extra_plot](<../" in md and "*extra_plot*" in md
    assert "fig1_params, fig3_finetune, fig7_fsp_depth, fig7_filtering, proxy_table." in md


def test_rewrite_is_deterministic_and_atomic(tmp_path, report):
    first = _write(tmp_path, report)
    second = _write(tmp_path, report)
    assert first == second
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("seconds", "text"), [(12.34, "12.3 s"), (412.3, "6 min 52 s"), (7384.0, "2 h 03 min")])
def test_wall_time_format(seconds, text):
    assert _seconds(seconds) == text


def test_errors(tmp_path, report):
    with pytest.raises(TypeError, match=r"report must be a fspkit.stats.study.StudyReport, got dict; hint: report = "):
        write_report(tmp_path, report={}, figures=[], context={}, records_path="r.jsonl", stats_path="s.json")
    with pytest.raises(TypeError, match=r"context must be a mapping \(dict\), got list"):
        write_report(tmp_path, report=report, figures=[], context=[], records_path="r.jsonl", stats_path="s.json")
    with pytest.raises(TypeError, match=r"extra must be a mapping \(dict\), got str"):
        write_report(tmp_path, report=report, figures=[], context={}, records_path="r.jsonl", stats_path="s.json",
                     extra="seed=0")
    with pytest.raises(ValueError, match=r"records_path must name the file to link, got ''"):
        write_report(tmp_path, report=report, figures=[], context={}, records_path="", stats_path="s.json")
    with pytest.raises(ValueError, match=r"stats_path must name the file to link, got None"):
        write_report(tmp_path, report=report, figures=[], context={}, records_path="r.jsonl", stats_path=None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"out_dir .*file is a file; expected a folder"):
        write_report(tmp_path / "file", report=report, figures=[], context={}, records_path="r", stats_path="s")
    (tmp_path / "out" / "report.html").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"report .*report.html is a folder: give a file name"):
        write_report(tmp_path / "out", report=report, figures=[], context={}, records_path="r", stats_path="s")
    assert not (tmp_path / "out" / "report.md").exists()  # checked before anything is written


@pytest.mark.slow
def test_end_to_end_with_the_real_figures(tmp_path):
    from fspkit.plots.figures import plot_all

    recs = make_records(60, seed=1, budgets=(4, 7, 10))
    rep = analyze(recs, rng=0, n_boot=200)
    figures = plot_all(recs, tmp_path / "figures", context=CONTEXT, analysis=rep)
    assert [f.stem for f in figures] == list(FIGURES)
    md, page = _write(tmp_path, rep, figures=figures)
    parsed = _parse(page)
    imgs = {a["src"]: a.get("width") for t, a in parsed.tags if t == "img"}
    assert set(imgs) == {f"figures/{n}.png" for n in FIGURES}
    assert all(w is not None and 400 <= int(w) <= 1100 for w in imgs.values())
    assert "Not drawn" not in md and not math.isnan(rep.finding2.slope)

"""fspkit.report: report.md and report.html of the study: the first screen, every claim's test, control and
uncertainty, numbers equal to the analysis's, nothing from the data turned into markup."""

from __future__ import annotations

import dataclasses
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fspkit import stats
from fspkit.plots import FIGURES
from fspkit.report import CAPTIONS, VERDICTS, write_report
from fspkit.report.document import md_code, md_escape
from fspkit.report.sections import _seconds
from tests._synthetic import make_records

CONTEXT = {"attack": "pgd7:eps=8/255", "data": "digits (validation split)", "n": 40}
EXTRA = {"command": "fspkit demo --out run", "preset": "cpu-demo", "seed": 0, "device": "cpu", "wall_seconds": 412.3}
ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "main", "h1", "h2", "h3", "h4", "p", "table",
                "thead", "tbody", "tr", "th", "td", "pre", "code", "strong", "a", "figure", "img", "figcaption", "ul",
                "li", "section", "div", "span"}
SELECTION = {"id": 3, "genotype": "<b>01</b> " * 14,
             "validation": {"pgd_acc": 0.52, "clean_acc": 0.8, "n": 600, "pgd_acc_ci95": [0.48, 0.56]},
             "test": {"pgd_acc": 0.47, "clean_acc": 0.78, "n": 1000, "pgd_acc_ci95": [0.44, 0.50]}}


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


def _outside_code(md: str) -> str:
    """The Markdown without its fenced blocks and code spans (where text is literal)."""
    md = re.sub(r"^(`{3,})text\n.*?\n\1$", "", md, flags=re.S | re.M)
    return re.sub(r"(`+).*?\1", "", md)


@pytest.fixture(scope="module")
def records():
    return make_records(40, seed=3, budgets=(4, 7))


@pytest.fixture(scope="module")
def report(records):
    return stats.analyze(records, rng=0, n_boot=200, n_perm=199, n_perm_fit=19, tsne=False, selection=SELECTION)


def _write(tmp_path, report, figures=None, **kw):
    figures = [_png(tmp_path / "figures" / f"{n}.png", 1650) for n in FIGURES] if figures is None else figures
    args = {"context": CONTEXT, "records_path": "records.rank0.jsonl", "stats_path": "stats.json", "extra": EXTRA}
    md, page = write_report(tmp_path, report=report, figures=figures, **{**args, **kw})
    return md.read_text(encoding="utf-8"), page.read_text(encoding="utf-8")


def test_the_first_screen_gives_every_verdict_with_its_test_control_and_power(tmp_path, report):
    md, page = _write(tmp_path, report)
    first = md.split("## What was run")[0]
    assert first.startswith("# FSP study report") and "## At a glance" in first
    for c in report.claims:
        label = f"{c.verdict} ({c.reason})" if c.reason else c.verdict
        row = (f"| {md_escape(c.id)} | {md_escape(label)} | {md_escape(c.test)} | "
               f"{md_escape(', '.join(c.controls) or 'none')} |")
        assert row in first, c.id
    assert "**Enough power**" in first and "**Not enough**" in first
    assert "[docs/study.md](" in first  # the claims' tests, linked
    text = "".join(_parse(page).text)
    assert "At a glance" in text.split("What was run")[0] and 'href="' in page


def test_each_claim_shows_its_tests_with_the_analysis_numbers(tmp_path, report):
    md, page = _write(tmp_path, report)
    text = "".join(_parse(page).text)
    for c in report.claims:
        assert VERDICTS[c.verdict] in text and c.this_run in text and c.paper in text
        for e in c.evidence:
            signed = e.kind in ("correlation", "difference")
            cells = (md_escape(e.role), md_escape(e.label), stats.fmt(e.statistic, sign=signed),
                     md_escape(stats.ci_text(e.ci, sign=signed)), md_escape(stats.fmt_p(e.pvalue)), str(e.n))
            assert "| " + " | ".join(cells) + " |" in md, (c.id, e.label)
    d = report.claim("f1_density")
    assert f"| {md_escape(d.evidence[0].role)} | {md_escape(d.evidence[0].label)} | {d.effect:+.2f} |" in md
    order = [md.index(h) for h in ("## At a glance", "## What was run", "## Measurement noise",
                                   "## The selected architecture", "## The claims, test by test",
                                   "## FSP against cheap robustness proxies", "## Figures", "## Statistics tables")]
    assert order == sorted(order)


def test_noise_selection_and_pooling_are_reported(tmp_path, report):
    md, _ = _write(tmp_path, report)
    nz = report.noise
    assert f"| reliability of the full measurement (Spearman-Brown) | {nz.reliability:.2f} |" in md
    assert "| validation (chosen on it: biased upward) | 0.520 | \\[0.480, 0.560\\] | 0.800 | 600 |" in md
    assert "| test (held out, seen by no choice) | 0.470 | \\[0.440, 0.500\\] | 0.780 | 1000 |" in md
    assert "Validation minus test PGD accuracy: +0.050." in md
    assert "average-pooled to the output's size" in md and "fsp\\_strided" in md
    assert "| cell | type | raw | p | Holm p | relative | raw given scale | raw, strided |" in md


def test_proxy_table_and_fsp_filter_value(tmp_path, report):
    md, page = _write(tmp_path, report)
    fsp = next(r for r in report.proxies.rows if r.proxy == "fsp")
    expected = (f"Keeping the {fsp.n_keep} of {fsp.n} candidates (30%) with the smallest deep-cell FSP distance keeps "
                f"{fsp.n_top_kept} of the {fsp.n_top} true top-10% candidates (recall {fsp.recall:.2f} "
                f"{stats.ci_text(fsp.recall_ci, sign=False)}; a random filter keeps 0.30, "
                f"{stats.p_text(fsp.recall_pvalue)})")
    assert md_escape(expected) in md and html.escape(expected) in page
    params = next(r for r in report.proxies.rows if r.proxy == "params")
    assert (f"| parameter count (baseline) | higher | {params.n} | {params.spearman.coef:+.2f} "
            f"{md_escape(stats.ci_text(params.spearman.ci))} |") in md
    assert "| score | better | n | Spearman \\[95% CI\\] | p | given params |" in md


def test_nothing_from_the_data_becomes_markup(tmp_path, report):
    evil = "<script>alert(1)</script>"
    out = "/tmp/x```y<img src=x onerror=alert(1)>"
    bad_claim = dataclasses.replace(report.claims[0], this_run=f"n = 3 {evil} | x", paper="a & b <i>")
    notes = ("Finding #1 (density): skipped, <img src=x onerror=alert(1)> `x` ```` fence",)
    bad = dataclasses.replace(report, claims=(bad_claim, *report.claims[1:]), notes=notes)
    md, page = _write(tmp_path, bad, context={"attack": evil, "data": "<b>digits</b>"},
                      extra={"command": f"fspkit demo --out '{out}'", "preset": "<u>p</u>"},
                      records_path=f"{out}/rec<ords>.jsonl", stats_path=f"{out}/stats.json")
    parsed = _parse(page)
    assert {t for t, _ in parsed.tags} <= ALLOWED_TAGS
    for raw in ("<script", "<b>digits", "<u>p", "<img src=x", "<i>", "rec<ords"):
        assert raw not in page
    text = "".join(parsed.text)
    for data in (evil, "<b>digits</b>", "<u>p</u>", "<img src=x onerror=alert(1)>", "a & b <i>", out):
        assert data in text  # shown as text, not markup
    # Markdown: no '<' outside code at all; the command's fence is longer than any backtick run in it
    assert "<" not in _outside_code(md)
    assert f"````text\nfspkit demo --out '{out}'\n````" in md
    assert "&lt;img src=x onerror=alert(1)&gt;" in md and "&lt;script&gt;" in md
    markdown = pytest.importorskip("markdown", reason="Python-Markdown renders report.md in this check")
    rendered = _parse(markdown.markdown(md, extensions=["tables", "fenced_code"]))
    assert not any(t in ("script", "img") and "onerror" in a for t, a in rendered.tags)
    assert [a["src"] for t, a in rendered.tags if t == "img"] == [f"figures/{n}.png" for n in FIGURES]


def test_code_spans_cannot_be_closed_by_their_text():
    assert md_code("a`b") == "``a`b``" and md_code("``x") == "``` ``x ```" and md_code("a\nb") == "`a b`"
    assert md_escape("1 < 2 & [x](y) *z* | #") == "1 &lt; 2 &amp; \\[x\\](y) \\*z\\* \\| \\#"


def test_missing_fsp_and_proxy_columns_give_notes_not_a_crash(tmp_path):
    recs = make_records(30, seed=4, fsp=False, proxies=False)
    rep = stats.analyze(recs, rng=0, n_boot=100, n_perm=99, n_perm_fit=9, tsne=False)
    md, page = _write(tmp_path, rep, figures=[], extra=None)
    for text in (md, page):
        assert "No figures were written for this run." in text
        assert "(the command was not recorded)" in text
        assert "No selection was recorded for this run" in text
    assert md_escape("not tested: no FSP distances recorded") in md
    assert "| device | not recorded |" in md
    _parse(page)


def test_filtered_run_says_so_and_compares_the_keep_fractions(tmp_path):
    recs = make_records(40, seed=7, fsp_keep=0.5)
    rep = stats.analyze(recs, rng=0, n_boot=100, n_perm=99, n_perm_fit=9, tsne=False)
    md, _ = _write(tmp_path, rep, extra={**EXTRA, "fsp_keep": 0.5})
    assert "| candidates | 40 sampled, 20 finetuned and evaluated, 20 dropped by the FSP filter" in md
    assert md_escape("This run used the filter: 20 of 40 candidates were never finetuned") in md
    assert md_escape("The search ran with --fsp-keep 0.5; this table evaluates q = 0.3.") in md
    assert "| FSP filter keep (--fsp-keep) | 0.5 |" in md


def test_figure_paths_widths_and_formats(tmp_path, report):
    wide = _png(tmp_path / "figures" / "fig4_finding1.png", 1650)
    narrow = _png(tmp_path / "figures" / "fig5_density.png", 975)
    svg = tmp_path / "figures" / "fig6_direct_convs.svg"
    svg.write_text("<svg/>")
    outside = _png(tmp_path.parent / f"{tmp_path.name}_elsewhere" / "extra_plot.png", 300)
    md, page = _write(tmp_path, report, figures=[wide, narrow, svg, outside])
    assert '<img src="figures/fig4_finding1.png" width="1056"' in page  # 1650 px / 150 dpi * 96
    assert '<img src="figures/fig5_density.png" width="624"' in page
    assert '<img src="figures/fig6_direct_convs.svg" alt=' in page
    assert f'<img src="../{tmp_path.name}_elsewhere/extra_plot.png" width="192" alt="extra_plot">' in page
    assert "![extra\\_plot](../" in md and "*extra\\_plot*" in md
    assert CAPTIONS["fig4_finding1"][:40] in page
    assert "fig1_params, fig3_finetune, fig7_fsp_depth, fig7_filtering, proxy_table." in md.replace("\\_", "_")


def test_rewrite_is_deterministic_and_atomic(tmp_path, report):
    first = _write(tmp_path, report)
    second = _write(tmp_path, report)
    assert first == second
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize(("seconds", "text"), [(12.34, "12.3 s"), (412.3, "6 min 52 s"), (7384.0, "2 h 03 min")])
def test_wall_time_format(seconds, text):
    assert _seconds(seconds) == text


def test_errors(tmp_path, report):
    with pytest.raises(TypeError, match=r"report must be a fspkit.stats.StudyReport, got dict; hint: report = "):
        write_report(tmp_path, report={}, figures=[], context={}, records_path="r.jsonl", stats_path="s.json")
    with pytest.raises(TypeError, match=r"context must be a mapping \(dict\), got list"):
        write_report(tmp_path, report=report, figures=[], context=[], records_path="r.jsonl", stats_path="s.json")
    with pytest.raises(TypeError, match=r"extra must be a mapping \(dict\), got str"):
        write_report(tmp_path, report=report, figures=[], context={}, records_path="r.jsonl", stats_path="s.json",
                     extra="seed=0")
    with pytest.raises(ValueError, match=r"records_path must name the file to link, got ''"):
        write_report(tmp_path, report=report, figures=[], context={}, records_path="", stats_path="s.json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"out_dir .*file is a file; expected a folder"):
        write_report(tmp_path / "file", report=report, figures=[], context={}, records_path="r", stats_path="s")
    (tmp_path / "out" / "report.html").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"report .*report.html is a folder: give a file name"):
        write_report(tmp_path / "out", report=report, figures=[], context={}, records_path="r", stats_path="s")
    assert not (tmp_path / "out" / "report.md").exists()  # checked before anything is written


@pytest.mark.slow
def test_end_to_end_with_the_real_figures(tmp_path):
    from fspkit.plots import plot_all

    recs = make_records(60, seed=1, budgets=(4, 7, 10))
    rep = stats.analyze(recs, rng=0, n_boot=200, n_perm=199, n_perm_fit=19)
    figures = plot_all(recs, tmp_path / "figures", context=CONTEXT, analysis=rep)
    assert [f.stem for f in figures] == list(FIGURES)
    md, page = _write(tmp_path, rep, figures=figures)
    imgs = {a["src"]: a.get("width") for t, a in _parse(page).tags if t == "img"}
    assert set(imgs) == {f"figures/{n}.png" for n in FIGURES}
    assert all(w is not None and 400 <= int(w) <= 1500 for w in imgs.values())
    assert "Not drawn" not in md

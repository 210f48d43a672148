"""fspkit.plots: every plot draws the expected artists (points, lines, labels, legends, titles), every number
drawn is the analysis's own (no figure computes a statistic), every figure saves, and plot_all / plot_run
write each file whose columns are present."""

from __future__ import annotations

import ast
import importlib.util
import json
import logging
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="fspkit.plots.figures needs the plots extra: pip install -e '.[plots]'")
pytest.importorskip("seaborn", reason="fspkit.plots.figures needs the plots extra: pip install -e '.[plots]'")

import matplotlib as mpl
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.text import Text

from fspkit import plots, stats
from fspkit.stats import classifier
from robnet.models.genotype import sample
from robnet.search.records import read_records
from tests._paths import ROOT
from tests._synthetic import make_records

CTX = {"attack": "PGD-7 eps 8/255", "data": "CIFAR-10 val"}
PGD = [0.30, 0.35, 0.40, 0.42, 0.45, 0.50, 0.55, 0.60]
BEFORE = [0.20, 0.22, 0.33, 0.30, 0.36, 0.41, 0.43, 0.52]
PARAMS = [40_000, 45_000, 52_000, 50_000, 61_000, 70_000, 72_000, 80_000]
BUDGET = [7, 7, 7, 7, 10, 10, 10, 10]
DIRECT = [1.0, 2.0, 2.0, 3.0, 1.0, 2.0, 3.0, 3.0]


def _table() -> list[dict]:
    """Eight hand-set candidates, two budgets, three cells; FSP falls with PGD accuracy in the deep cells."""
    rows = []
    for i, (pgd, before, params, budget, direct) in enumerate(zip(PGD, BEFORE, PARAMS, BUDGET, DIRECT, strict=True)):
        g = sample(i, budget=budget)
        rel = [0.05, 0.05 * (1.5 - pgd), 0.05 * (2.0 - 2 * pgd)]
        scale = [1.0, 2.0, 4.0]
        rows.append({
            "id": i, "genotype": str(g), "bits": g.bits(), "budget": budget, "density": g.density(),
            "convs": float(budget), "direct_convs": direct, "params": params, "pgd_acc": pgd,
            "pgd_acc_before_finetune": before, "clean_acc": pgd + 0.3, "clean_acc_before_finetune": before + 0.3,
            "fsp": [r * s for r, s in zip(rel, scale, strict=True)], "fsp_rel": rel, "fsp_scale": scale,
            "fsp_before_finetune": [0.1 + 0.01 * i, 0.2 - 0.01 * i, 0.3 - 0.02 * i], "filtered_out": False,
            "proxy_grad_norm": 10 * pgd + (i % 3), "proxy_naswot": float((i * 5) % 7),
            "seconds_fsp": 0.2, "seconds_grad_norm": 0.05, "seconds_naswot": 0.04, "seconds_finetune": 10.0,
        })
    return rows


@pytest.fixture
def ax():
    fig = plots.new_figure()
    with plots.plot_style():
        return fig.subplots()


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


def _scatters(ax) -> list[PathCollection]:
    return [c for c in ax.collections if isinstance(c, PathCollection)]


FAST = {"n_boot": 200, "n_perm": 199, "n_perm_fit": 19}


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records(60, seed=4, budgets=(4, 7, 10), cells=6)


@pytest.fixture(scope="module")
def report(records):
    return stats.analyze(records, rng=0, **FAST)


# ---------------------------------------------------------------------------------- caption, style, files
def test_caption_text():
    assert plots.caption_text(CTX, n=8) == "n = 8 candidates · attack: PGD-7 eps 8/255 · data: CIFAR-10 val"
    assert plots.caption_text({**CTX, "n": 10}, n=8).startswith("n = 8 of 10 candidates · ")
    assert plots.caption_text({**CTX, "n": 8}, n=8).startswith("n = 8 candidates · ")
    assert plots.caption_text(None, n=3) == "n = 3 candidates · attack: not recorded · data: not recorded"


def test_add_caption_makes_room_under_the_axes():
    fig = plots.new_figure(5.0, 4.0)
    with plots.plot_style():
        fig.subplots()
    text = plots.add_caption(fig, CTX, n=8)
    assert text.get_text() == plots.caption_text(CTX, n=8)
    assert text.get_fontsize() >= 9
    fig.canvas.draw()
    axes_bottom = fig.axes[0].get_tightbbox().y0
    assert text.get_window_extent().y1 <= axes_bottom + 1


def test_plot_style_leaves_rcparams_alone():
    before = dict(mpl.rcParams)
    with plots.plot_style():
        assert mpl.rcParams["xtick.labelsize"] == 9.0
    fig = plots.make_figure("fig1_params", _table(), CTX)
    assert fig.axes
    assert dict(mpl.rcParams) == before


def test_save_figure_formats(tmp_path):
    fig = plots.make_figure("fig1_params", _table(), CTX)
    png = plots.save_figure(fig, tmp_path / "a.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = plots.save_figure(fig, tmp_path / "a.out", fmt="pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-"
    svg1 = plots.save_figure(fig, tmp_path / "a.svg").read_bytes()
    svg2 = plots.save_figure(fig, tmp_path / "b.svg").read_bytes()
    assert svg1.startswith(b"<?xml") and svg1 == svg2  # no creation date: reruns give identical files
    with pytest.raises(ValueError, match=r"format 'jpg' is not supported: expected one of png, pdf, svg"):
        plots.save_figure(fig, tmp_path / "a.jpg")
    assert not list(tmp_path.glob(".*.tmp"))


def test_record_errors(ax):
    with pytest.raises(ValueError, match="no records to plot"):
        plots.plot_params([], ax)
    with pytest.raises(TypeError, match="expected a sequence of records"):
        plots.plot_params({"pgd_acc": 0.5}, ax)
    with pytest.raises(TypeError, match="record 1 is a int"):
        plots.plot_params([{"pgd_acc": 0.5}, 3], ax)
    with pytest.raises(ValueError, match=r"column 'params' is absent from all 2 records"):
        plots.plot_params([{"pgd_acc": 0.5}, {"pgd_acc": 0.4}], ax)


# ---------------------------------------------------------------------------------- series
def test_series_budget_and_conv_bins():
    keys, labels = plots.series(_table())
    assert keys == BUDGET and labels == {7: "budget 7", 10: "budget 10"}
    rows = [{"budget": None, "convs": c} for c in (3, 4, 5, 6, 9, 10, 11)]
    keys, labels = plots.series(rows)
    assert keys == [0, 0, 1, 1, 1, 2, 2]
    assert labels == {0: "0-4 convs", 1: "5-9 convs", 2: "10-14 convs"}
    mixed = [{"budget": 7, "convs": 7}, {"budget": None, "convs": 5}]
    assert plots.series(mixed) == ([7, None], {7: "budget 7", None: "unconstrained"})


# ---------------------------------------------------------------------------------- Fig. 1 and Fig. 3
def test_plot_params(ax):
    assert plots.plot_params(_table(), ax) is ax
    sc = _scatters(ax)
    assert len(sc) == 2  # one series per budget
    np.testing.assert_allclose(sc[0].get_offsets(), np.c_[np.array(PARAMS[:4]) / 1e6, np.array(PGD[:4]) * 100])
    np.testing.assert_allclose(sc[1].get_offsets(), np.c_[np.array(PARAMS[4:]) / 1e6, np.array(PGD[4:]) * 100])
    assert ax.get_xlabel() == "parameters (millions)"
    assert ax.get_ylabel() == "PGD accuracy after finetuning (%)"
    assert ax.get_title() == "Fig. 1: model size vs PGD accuracy"
    assert _legend_texts(ax) == ["budget 7", "budget 10"]


def test_plot_params_in_thousands_for_small_networks(ax):
    rows = [{**r, "params": r["params"] // 1000} for r in _table()]  # toy networks (the cpu-demo: ~10k)
    plots.plot_params(rows, ax)
    assert ax.get_xlabel() == "parameters (thousands)"
    np.testing.assert_allclose(_scatters(ax)[0].get_offsets()[:, 0], [r["params"] / 1e3 for r in rows[:4]])


def test_plot_params_leaves_out_unevaluated_candidates(ax):
    rows = _table()
    rows[0]["pgd_acc"] = None  # filtered out: no final accuracy
    plots.plot_params(rows, ax)
    assert sum(len(c.get_offsets()) for c in _scatters(ax)) == 7


def test_plot_finetune(ax):
    plots.plot_finetune(_table(), ax)
    (sc,) = _scatters(ax)
    np.testing.assert_allclose(sc.get_offsets(), np.c_[np.array(BEFORE) * 100, np.array(PGD) * 100])
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xydata(), [[20.0, 20.0], [60.0, 60.0]])
    assert _legend_texts(ax) == ["candidate", "y = x"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("PGD accuracy, inherited weights (%)",
                                                  "PGD accuracy after finetuning (%)")
    assert ax.get_title() == "Fig. 3: before vs after finetuning"


def test_plot_finetune_hist(ax):
    rows = _table()
    rows[0]["pgd_acc"] = None
    plots.plot_finetune_hist(rows, ax, bins=5)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [len(b) for b in bars] == [5, 5]
    assert [sum(p.get_height() for p in b) for b in bars] == [8, 7]
    edges = np.histogram_bin_edges(np.r_[np.array(BEFORE), np.array(PGD[1:])] * 100, bins=5)
    np.testing.assert_allclose([p.get_x() for p in bars[0]], edges[:-1])
    assert _legend_texts(ax) == ["before finetuning (n=8)", "after finetuning (n=7)"]
    assert ax.get_ylabel() == "candidates (count)"


# ---------------------------------------------------------------------------------- Fig. 4, 5, 6
def test_plot_tsne_draws_the_embedding_or_says_why_not(ax, records, monkeypatch):
    report = stats.analyze(records, rng=0, **FAST)  # 36 points: no embedding
    plots.plot_tsne(report.finding1, ax)
    assert not _scatters(ax) and not ax.axison
    assert report.finding1.tsne_note in " ".join(t.get_text().replace("\n", " ") for t in ax.texts)
    monkeypatch.setattr(classifier, "TSNE_MIN_POINTS", 50)
    f1 = stats.finding1(stats.list_column(records, "bits"), stats.column(records, "pgd_acc"), k=30, rng=0, n_perm=9)
    fig = plots.new_figure()
    with plots.plot_style():
        ax2 = fig.subplots()
    plots.plot_tsne(f1, ax2)
    robust, other = _scatters(ax2)
    rows = f1.embedding_labels == 1
    np.testing.assert_allclose(robust.get_offsets(), f1.embedding[rows])
    np.testing.assert_allclose(other.get_offsets(), f1.embedding[~rows])
    assert ax2.get_title() == "Fig. 4: t-SNE of genotype bits\nt-SNE of all 60 points"


def test_plot_weights_shows_the_analysis_shares(ax, report):
    f1 = report.finding1_controlled
    plots.plot_weights(f1, ax, title="within strata")
    (bars,) = ax.containers
    np.testing.assert_allclose([p.get_width() for p in bars], f1.weights)
    assert ax.get_yticklabels()[0].get_text() == "e0 s0->f1 id"
    ident = f1.share("identity")
    line = f"identity bits: {ident.n_positive}/{ident.n_positive + ident.n_negative} positive, " \
           f"{stats.p_text(ident.pvalue)}"
    assert line in ax.get_title() and f"({f1.cv_splits} splits; chance 0.50)" in ax.get_title()
    colors = [tuple(p.get_facecolor()) for p in bars]
    assert len(set(colors[0::2])) == 1 and len(set(colors[1::2])) == 1 and colors[0] != colors[1]
    assert _legend_texts(ax) == ["identity bit (no parameters)", "conv bit (a sep-conv)"]


def test_plot_weights_cell_free(ax):
    rng = np.random.default_rng(0)
    f1 = stats.finding1(rng.integers(0, 2, size=(12, 56)), np.linspace(0.2, 0.6, 12), k=4, rng=0, tsne=False,
                        n_perm=9)
    plots.plot_weights(f1, ax)
    assert len(ax.containers[0]) == 56
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cell 0", "cell 1"]


def test_plot_density_shows_the_marginal_and_the_controlled_test(ax, records, report):
    x, y = stats.column(records, "density"), stats.column(records, "pgd_acc")
    f2 = report.finding2
    claim = report.claim("f1_density")
    plots.plot_density(f2, x, y, ax, controlled=claim, strata=stats.column(records, "convs").tolist())
    assert len(_scatters(ax)) == 3  # one colour per conv count
    np.testing.assert_allclose(np.concatenate([s.get_offsets() for s in _scatters(ax)])[:, 1].sum(), 100 * y.sum())
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xydata(), np.c_[f2.x_grid, 100 * (f2.intercept + f2.slope * f2.x_grid)])
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert band.get_paths()[0].vertices[:, 1].max() == pytest.approx(100 * f2.band_high.max())
    title = " ".join(ax.get_legend().get_title().get_text().split())  # a long line wraps to the figure's width
    assert f"marginal: ρ = {f2.spearman.coef:+.2f} {stats.ci_text(f2.spearman.ci)}" in title
    assert f"within conv count (decides): ρ = {claim.effect:+.2f} {stats.ci_text(claim.ci)}" in title
    assert title.endswith(f"→ {claim.verdict}")
    with pytest.raises(ValueError, match=r"the fit has n = 60 but got 7 densities"):
        plots.plot_density(f2, x[:7], y, ax)


def test_plot_direct_convs_draws_the_analysis_intervals(ax, report):
    result = report.direct_convs
    plots.plot_direct_convs(result, ax)
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(containers) == 3
    g = result.groups[0]
    line, _, (bars,) = containers[0]
    has = [i for i, lo in enumerate(g.ci_low) if not math.isnan(lo)]
    np.testing.assert_allclose(line.get_ydata(), [100 * g.mean_pgd[i] for i in has])
    segs = bars.get_segments()
    np.testing.assert_allclose([[s[0][1], s[1][1]] for s in segs], [[100 * g.ci_low[i], 100 * g.ci_high[i]]
                                                                   for i in has])
    hollow = [ln for ln in ax.get_lines() if ln.get_markerfacecolor() == "white"]
    assert sum(len(h.get_xdata()) for h in hollow) == sum(n < 3 for g in result.groups for n in g.n_per_count)
    texts = _legend_texts(ax)
    c = g.correlation
    assert texts[0] == f"budget 4 (n={g.n}; ρ = {c.coef:+.2f} {stats.ci_text(c.ci)}, {stats.p_text(c.pvalue)})"


def test_direct_convs_of_cell_free_records_are_rounded_to_halves(ax):
    assert plots.direct_convs([{"direct_convs": v} for v in (1.0, 2.0, 3.0)]).tolist() == [1.0, 2.0, 3.0]
    rows = [{"direct_convs": v} for v in (1.0, 1.3, 1.8, 2.2, 2.6)]
    assert plots.direct_convs(rows).tolist() == [1.0, 1.5, 2.0, 2.0, 2.5]
    result = stats.direct_convs_by_budget(plots.direct_convs(rows), [None] * 5, [0.3, 0.4, 0.5, 0.4, 0.6], n_boot=0)
    plots.plot_direct_convs(result, ax)
    assert ax.get_xlabel() == "sep-convs on direct edges (mean per cell, to the nearest 0.5)"


# ---------------------------------------------------------------------------------- Fig. 7 and proxies
def test_plot_fsp_depth_draws_the_per_cell_analysis(report):
    pc = report.per_cell
    fig = plots.new_figure(15, 4)
    assert plots.plot_fsp_depth(pc, fig) is fig
    corr_ax, raw_ax, rel_ax = fig.axes
    raw_bars = next(c for c in corr_ax.containers if isinstance(c, ErrorbarContainer))
    np.testing.assert_allclose(raw_bars[0].get_ydata(), [c.fsp_pgd.coef for c in pc.cells])
    stars = [t for t in corr_ax.texts if t.get_text() == "*"]
    assert len(stars) == sum(c.holm_pvalue is not None and c.holm_pvalue < 0.05 for c in pc.cells)
    raw = pc.profiles[0]
    robust = next(ln for ln in raw_ax.get_lines() if ln.get_label().startswith("robust"))
    np.testing.assert_allclose(robust.get_ydata(), raw.robust_median)
    assert raw_ax.get_yscale() == "log" and "median and 95% order-statistic interval" in raw_ax.get_title()
    assert rel_ax.get_ylabel() == "relative FSP distance (unitless)" and "finetuned weights" in fig.get_suptitle()
    spans = [p for p in corr_ax.patches]
    assert spans and spans[0].get_x() == pytest.approx(min(pc.deep_cells) - 0.4)  # the deep cells shaded


def test_plot_filtering_title_reads_the_proxy_table(ax, records, report):
    fsp = next(r for r in report.proxies.rows if r.proxy == "fsp")
    plots.plot_filtering(records, ax, row=fsp, keep=0.3)
    all_bars, kept_bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert sum(p.get_height() for p in all_bars) == 60 and sum(p.get_height() for p in kept_bars) == 18
    assert f"recall {fsp.recall:.2f} {stats.ci_text(fsp.recall_ci, sign=False)}" in ax.get_title()
    assert f"{stats.p_text(fsp.recall_pvalue)} (exact)" in ax.get_title()
    kept = stats.keep_mask(stats.score_column(records, "fsp_before_finetune"), 0.3)
    edges = np.histogram_bin_edges(100 * stats.column(records, "pgd_acc"), bins=20)
    np.testing.assert_array_equal([p.get_height() for p in kept_bars],
                                  np.histogram(100 * stats.column(records, "pgd_acc")[kept], bins=edges)[0])


def test_plot_filtering_of_a_filtered_run(ax):
    rows = _table()
    for r in rows[:5]:
        r.update(filtered_out=True, pgd_acc=None)
    plots.plot_filtering(rows, ax)
    assert ax.get_xlabel() == "PGD accuracy, inherited weights (%)"
    assert _legend_texts(ax) == ["all candidates (n=8)", "kept by the FSP filter (n=3)"]
    assert "this run's FSP filter kept 3 of 8" in ax.get_title()


def test_plot_proxies_draws_the_sign_adjusted_spearman_of_the_table(report):
    table = report.proxies
    fig = plots.new_figure(12, 5)
    plots.plot_proxies(table, fig)
    rho, recall, cost = fig.axes
    names = [t.get_text() for t in rho.get_yticklabels()]
    assert names[0] == "FSP distance, deep cells (lower better)" and names[-1] == "density [free]"
    dots = [ln for ln in rho.get_lines() if ln.get_marker() == "o"]
    np.testing.assert_allclose([d.get_xdata()[0] for d in dots], [r.spearman.coef for r in table.rows])
    hollow = [d.get_markerfacecolor() == "white" for d in dots]
    assert hollow == [r.beats_params is False for r in table.rows]
    np.testing.assert_allclose([p.get_width() for p in recall.containers[0]], [r.recall for r in table.rows])
    assert [t.get_text() for t in recall.texts] == [stats.p_text(r.recall_pvalue) for r in table.rows]
    assert [t.get_text() for t in cost.texts].count("free") == 4
    empty = stats.ProxyTable(rows=(), keep=0.3, top=0.1, notes=("none",), finetune_seconds=None)
    with pytest.raises(ValueError, match=r"the table has no proxy rows \(none\)"):
        plots.plot_proxies(empty, plots.new_figure())


def test_the_plots_package_computes_no_statistic():
    banned = {"mean", "median", "std", "var", "quantile", "percentile", "nanmean", "nanmedian", "spearmanr",
              "pearsonr", "bootstrap", "analyze_part", "correlate", "partial_correlation", "filter_quality", "finding1",
              "finding2", "per_cell", "proxy_table", "direct_convs_by_budget"}
    for path in (ROOT / "fspkit" / "plots").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                assert name not in banned, f"{path.name}:{node.lineno} calls {name}"
            if isinstance(node, ast.ImportFrom):
                assert node.module not in ("scipy", "scipy.stats"), path.name


# ---------------------------------------------------------------------------------- whole figures
@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_every_figure_is_titled_captioned_and_readable(name, tmp_path, records, report):
    fig = plots.make_figure(name, records, CTX, analysis=report)
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert min(t.get_fontsize() for t in texts) >= 8
    captions = [t for t in texts if t.get_text().startswith("n = ")]
    assert len(captions) == 1 and captions[0].get_text().endswith("attack: PGD-7 eps 8/255 · data: CIFAR-10 val")
    for ax in fig.axes:
        assert ax.get_xlabel() or ax.get_ylabel() or not ax.axison
    assert fig.get_suptitle() or all(ax.get_title() for ax in fig.axes)
    path = plots.save_figure(fig, tmp_path / f"{name}.png")
    assert path.stat().st_size > 5000


def test_make_figure_without_an_analysis_analyses_once_with_the_seed(records):
    a = plots.make_figure("fig5_density", records, CTX, seed=3)
    b = plots.make_figure("fig5_density", records, CTX, analysis=stats.analyze(records, rng=3))
    assert a.axes[0].get_legend().get_title().get_text() == b.axes[0].get_legend().get_title().get_text()


def test_make_figure_errors():
    with pytest.raises(ValueError, match=r"unknown figure 'fig2'; expected one of fig1_params, fig3_finetune"):
        plots.make_figure("fig2", _table())
    rows = [{k: v for k, v in r.items() if k != "fsp_before_finetune"} for r in _table()]
    analysis = stats.analyze(rows, rng=0, n_boot=0, n_perm=0, n_perm_fit=9)
    with pytest.raises(ValueError, match=r"the analysis has no per-cell FSP analysis \(before finetuning\)"):
        plots.make_figure("fig7_fsp_depth", rows, analysis=analysis, stage="before")


@pytest.mark.slow
def test_plot_all_writes_every_figure(tmp_path, records, report):
    written = plots.plot_all(records, tmp_path / "figs", context=CTX, analysis=report)
    assert [p.name for p in written] == [f"{name}.png" for name in plots.FIGURES]
    assert all(p.stat().st_size > 5000 for p in written)


def test_plot_all_skips_figures_without_their_columns(tmp_path, caplog):
    rows = make_records(12, seed=4, fsp=False, proxies=False)
    with caplog.at_level(logging.INFO, logger="fspkit.plots.figures"):
        written = plots.plot_all(rows, tmp_path, fmt="svg")
    names = {p.name for p in written}
    assert "fig7_fsp_depth.svg" not in names and "fig7_filtering.svg" not in names
    assert "proxy_table.svg" in names  # the proxy table of pgd_acc_before_finetune and the free baselines
    assert "fig7_fsp_depth: skipped, the records lack its columns (fsp+pgd_acc or " in caplog.text
    with pytest.raises(ValueError, match="fmt: expected one of png, pdf, svg, got 'gif'"):
        plots.plot_all(rows, tmp_path, fmt="gif")


def test_plot_all_skips_a_figure_whose_analysis_part_is_missing(tmp_path, caplog):
    rows = _table()
    for r in rows:
        r["density"] = 0.5  # constant: no fit
    with caplog.at_level(logging.WARNING, logger="fspkit.plots.figures"):
        written = plots.plot_all(rows, tmp_path)
    assert "fig5_density.png" not in [p.name for p in written] and "fig1_params.png" in [p.name for p in written]
    assert "fig5_density: skipped, the analysis has no density fit" in caplog.text


def test_run_context(tmp_path):
    search = tmp_path / "search"
    search.mkdir()
    (search / "search.json").write_text(json.dumps({"config": {"eval_attack": "pgd7", "data": "digits"},
                                                    "config_hash": "abc"}))
    assert plots.run_context(search, n=5) == {"n": 5, "attack": "pgd7", "data": "digits"}
    assert plots.run_context(tmp_path / "records.jsonl") == {}


def test_plot_run_on_a_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = make_records(24, seed=2)
    (run / "records.rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    written = plots.plot_run(read_records(run), tmp_path / "out", "pdf")
    assert [p.stem for p in written] == list(plots.FIGURES)
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in written)


# ---------------------------------------------------------------------------------- figures/ scripts
def _script(name: str):
    path = ROOT / "figures" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"figures_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_is_one_script_per_figure_and_the_readme_lists_them():
    scripts = sorted(p.stem for p in (ROOT / "figures").glob("*.py"))
    assert scripts == sorted(plots.FIGURES)
    readme = (ROOT / "figures" / "README.md").read_text()
    assert all(f"`{name}.py`" in readme for name in plots.FIGURES)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_script_draws_the_same_figure_as_plot_all(name, tmp_path, capsys):
    results = tmp_path / "records.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in make_records(24, seed=2)))
    out = tmp_path / f"{name}.svg"
    assert _script(name).main([str(results), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    records = read_records(results).records
    fig = plots.make_figure(name, records, plots.run_context(results))
    expected = plots.save_figure(fig, tmp_path / "expected.svg").read_bytes()
    assert out.read_bytes() == expected


def test_script_errors_print_one_line_and_exit_1(tmp_path, capsys):
    assert _script("fig5_density").main([str(tmp_path / "missing.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: records: ") and "does not exist" in err and err.count("\n") == 1

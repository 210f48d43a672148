"""fspkit.plots.figures: every plot draws the expected artists (points, lines, labels, legends, titles) on a tiny
fixed table, computed values match an independent path, every figure saves, and plot_all / plot_run
write each file whose columns are present."""

from __future__ import annotations

import importlib.util
import json
import logging

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="fspkit.plots.figures needs the plots extra: pip install -e '.[plots]'")
pytest.importorskip("seaborn", reason="fspkit.plots.figures needs the plots extra: pip install -e '.[plots]'")

import matplotlib as mpl
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.text import Text
from scipy import stats as sps

from fspkit import stats
from fspkit.plots import figures as plots
from fspkit.stats.study import load_records
from robnet.models.genotype import sample
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


def _t_interval(values: np.ndarray) -> tuple[float, float]:
    return sps.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=sps.sem(values))


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
    rows = [{"budget": None, "convs": c} for c in (3, 4, 5, 6, 7, 8, 9, 10, 11)]
    keys, labels = plots.series(rows)
    assert keys == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert labels == {0: "3-5 convs", 1: "6-8 convs", 2: "9-11 convs"}
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
def _finding1(tsne: bool = True) -> stats.Finding1:
    rows = _table()
    return stats.finding1(stats.list_column(rows, "bits"), stats.column(rows, "pgd_acc"), k=3, rng=0, tsne=tsne)


def test_plot_tsne(ax):
    f1 = _finding1()
    plots.plot_tsne(f1, ax)
    robust, other = _scatters(ax)
    np.testing.assert_allclose(robust.get_offsets(), f1.embedding[:3])  # rows aligned with f1.index: top first
    np.testing.assert_allclose(other.get_offsets(), f1.embedding[3:])
    assert _legend_texts(ax) == ["robust: top 3 (PGD ≥ 50.0%)", "non-robust: bottom 3 (PGD ≤ 40.0%)"]
    assert ax.get_title() == "Fig. 4: t-SNE of genotype bits"
    with pytest.raises(ValueError, match="has no embedding"):
        plots.plot_tsne(_finding1(tsne=False), ax)


def test_plot_weights(ax):
    f1 = _finding1(tsne=False)
    plots.plot_weights(f1, ax)
    (bars,) = ax.containers
    assert len(bars) == 28
    np.testing.assert_allclose([p.get_width() for p in bars], f1.weights)
    assert ax.get_yticklabels()[0].get_text() == "e0 s0->f1 id"
    assert ax.get_yticklabels()[-1].get_text() == "e13 f3->f4 conv"
    share = f"{f1.positive_share:.0%} positive ({f1.n_positive} of {f1.n_positive + f1.n_negative})"
    assert share in ax.get_title()
    assert _legend_texts(ax) == ["positive", "negative"]
    positive = {tuple(p.get_facecolor()) for p, w in zip(bars, f1.weights, strict=True) if w > 0}
    negative = {tuple(p.get_facecolor()) for p, w in zip(bars, f1.weights, strict=True) if w <= 0}
    assert len(positive) == 1 and positive.isdisjoint(negative)


def test_plot_weights_cell_free(ax):
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, size=(12, 56))
    f1 = stats.finding1(bits, np.linspace(0.2, 0.6, 12), k=4, rng=0, tsne=False)
    plots.plot_weights(f1, ax)
    assert len(ax.containers[0]) == 56
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cell 0", "cell 1"]


def test_plot_density(ax):
    rows = _table()
    x, y = stats.column(rows, "density"), stats.column(rows, "pgd_acc")
    f2 = stats.finding2(x, y, rng=0, n_boot=100)
    plots.plot_density(f2, x, y, ax)
    (sc,) = _scatters(ax)
    np.testing.assert_allclose(sc.get_offsets(), np.c_[x, 100 * y])
    (line,) = ax.get_lines()
    np.testing.assert_allclose(line.get_xydata(), np.c_[f2.x_grid, 100 * (f2.intercept + f2.slope * f2.x_grid)])
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    verts = band.get_paths()[0].vertices
    assert verts[:, 1].max() == pytest.approx(100 * f2.band_high.max())
    assert len(_legend_texts(ax)) == 3 and _legend_texts(ax)[2] == "95% confidence band of the mean"
    assert ax.get_xlabel() == "density (connected bits / all bits)"
    with pytest.raises(ValueError, match=r"the fit has n = 8 but got 7 densities"):
        plots.plot_density(f2, x[:7], y, ax)


def test_plot_direct_convs_mean_and_t_interval(ax):
    rows = _table()
    result = stats.direct_convs_by_budget(DIRECT, BUDGET, PGD, n_boot=100, rng=0)
    plots.plot_direct_convs(result, ax)
    containers = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(containers) == 2
    line, _, (bars,) = containers[0]
    x7, y7 = np.array(DIRECT[:4]), np.array(PGD[:4])
    np.testing.assert_allclose(line.get_ydata(), [100 * y7[x7 == c].mean() for c in (1, 2, 3)])
    lo, hi = _t_interval(100 * y7[x7 == 2])  # the two budget-7 candidates with two direct convs
    seg = bars.get_segments()[1]
    np.testing.assert_allclose([seg[0][1], seg[1][1]], [lo, hi])
    assert np.allclose(line.get_xdata(), [0.94, 1.94, 2.94])  # the first of two series is dodged left
    texts = _legend_texts(ax)
    assert texts[0].startswith("budget 7 (n=4; ρ = ") and texts[1].startswith("budget 10 (n=4; ρ = ")
    assert ax.get_xlabel() == "sep-convs on direct edges (per cell)"
    assert rows  # the table is unchanged by the call


def test_direct_convs_of_cell_free_records_are_rounded_to_halves(ax):
    assert plots.direct_convs([{"direct_convs": v} for v in (1.0, 2.0, 3.0)]).tolist() == [1.0, 2.0, 3.0]
    rows = [{"direct_convs": v} for v in (1.0, 1.3, 1.8, 2.2, 2.6)]
    assert plots.direct_convs(rows).tolist() == [1.0, 1.5, 2.0, 2.0, 2.5]
    result = stats.direct_convs_by_budget(plots.direct_convs(rows), [None] * 5, [0.3, 0.4, 0.5, 0.4, 0.6], n_boot=0)
    plots.plot_direct_convs(result, ax)
    assert ax.get_xlabel() == "sep-convs on direct edges (mean per cell, to the nearest 0.5)"
    assert _legend_texts(ax)[0].startswith("unconstrained (n=5; ρ = ")


# ---------------------------------------------------------------------------------- Fig. 7 and proxies
def test_plot_fsp_depth_group_means_and_intervals():
    rows = _table()
    fig = plots.new_figure(10, 4)
    assert plots.plot_fsp_depth(rows, fig, k=3) is fig
    raw_ax, rel_ax = fig.axes
    fsp = np.array([r["fsp"] for r in rows])
    top, bottom = [7, 6, 5], [0, 1, 2]  # by PGD accuracy (ascending in the table)
    robust, non_robust = raw_ax.get_lines()[:2]
    np.testing.assert_allclose(robust.get_ydata(), fsp[top].mean(axis=0))
    np.testing.assert_allclose(non_robust.get_ydata(), fsp[bottom].mean(axis=0))
    band = raw_ax.collections[0].get_paths()[0].vertices
    lo, hi = _t_interval(fsp[top][:, 2])
    assert band[:, 1].max() == pytest.approx(max(hi, fsp[top][:, 1].mean()))
    assert band[:, 1].min() == pytest.approx(_t_interval(fsp[top][:, 0])[0])
    assert lo > 0
    assert _legend_texts(raw_ax) == ["robust (top 3)", "non-robust (bottom 3)", "reduction cell"]
    assert rel_ax.get_ylabel() == "relative FSP distance (unitless)"
    assert "finetuned weights" in fig.get_suptitle()
    assert raw_ax.get_yscale() == rel_ax.get_yscale() == "linear"
    for r in rows:
        r["fsp"] = [v * 100.0 ** c for c, v in enumerate(r["fsp"])]  # group means spanning 10^4: log scale
    fig = plots.new_figure(10, 4)
    plots.plot_fsp_depth(rows, fig, k=3)
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "linear"]
    with pytest.raises(ValueError, match=r"k: expected an int in 2\.\.4"):
        plots.plot_fsp_depth(rows, plots.new_figure(), k=5)
    with pytest.raises(ValueError, match="stage: expected one of after, before"):
        plots.plot_fsp_depth(rows, plots.new_figure(), stage="during")


def test_plot_fsp_depth_before_finetuning_single_panel():
    rows = [{k: v for k, v in r.items() if k not in ("fsp", "fsp_rel")} for r in _table()]
    fig = plots.new_figure(10, 4)
    plots.plot_fsp_depth(rows, fig)  # no 'fsp': the inherited-weights stage, no relative column
    (ax,) = fig.axes
    assert "inherited weights" in fig.get_suptitle()
    assert ax.get_ylabel() == "FSP distance (squared Frobenius)"


def test_plot_filtering_simulated(ax):
    rows = _table()
    plots.plot_filtering(rows, ax, keep=0.3)
    all_bars, kept_bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert sum(p.get_height() for p in all_bars) == 8
    assert sum(p.get_height() for p in kept_bars) == 3  # ceil(0.3 * 8) smallest mean fsp_before_finetune: ids 5-7
    q = stats.filter_quality([np.mean(r["fsp_before_finetune"]) for r in rows], PGD, keep=0.3, n_boot=0)
    assert f"recall {q.recall:.2f}" in ax.get_title()
    assert _legend_texts(ax) == ["all candidates (n=8)", "kept by the FSP filter (n=3)"]
    assert "lowest mean FSP" in ax.get_title()


def test_plot_filtering_simulated_on_the_searchs_deep_cell_score(ax):
    rows = _table()
    for r, deep in zip(rows, (0.5, 0.1, 0.4, 0.2, 0.9, 0.8, 0.7, 0.6), strict=True):
        r["fsp_deep_before_finetune"] = deep  # the score fspkit search --fsp-keep ranks by
    plots.plot_filtering(rows, ax, keep=0.3)
    kept_bars = [c for c in ax.containers if isinstance(c, BarContainer)][1]
    edges = np.histogram_bin_edges(100 * np.array(PGD), bins=20)
    kept = np.histogram(100 * np.array([PGD[1], PGD[3], PGD[2]]), bins=edges)[0]  # ids with deep 0.1, 0.2, 0.4
    np.testing.assert_array_equal([p.get_height() for p in kept_bars], kept)
    assert "lowest deep-cell FSP; top-10% recall 0.00" in ax.get_title()


def test_plot_filtering_of_a_filtered_run(ax):
    rows = _table()
    for r in rows[:5]:
        r.update(filtered_out=True, pgd_acc=None)
    plots.plot_filtering(rows, ax)
    assert ax.get_xlabel() == "PGD accuracy, inherited weights (%)"
    assert _legend_texts(ax) == ["all candidates (n=8)", "kept by the FSP filter (n=3)"]
    assert "this run's FSP filter kept 38%" in ax.get_title()


def test_plot_proxies():
    table = stats.proxy_table(_table(), ["fsp", "grad_norm", "naswot"], n_boot=100, rng=0)
    fig = plots.new_figure(11, 3)
    plots.plot_proxies(table, fig)
    rho, recall, cost = fig.axes
    assert [t.get_text() for t in rho.get_yticklabels()] == ["FSP distance (−)", "grad norm", "NASWOT"]
    fsp_row = table.rows[0]
    ci, dot = rho.get_lines()[:2]
    assert dot.get_xdata()[0] == pytest.approx(-fsp_row.quality.spearman.coef)  # lower is better: flipped
    np.testing.assert_allclose(ci.get_xdata(), sorted(-v for v in fsp_row.quality.spearman.ci))
    assert ci.get_ydata()[0] == dot.get_ydata()[0] == 2  # the first row is on top
    np.testing.assert_allclose([p.get_width() for p in recall.containers[0]], [r.quality.recall for r in table.rows])
    np.testing.assert_allclose([p.get_width() for p in cost.containers[0]], [0.2, 0.05, 0.04])
    assert recall.get_xlabel().startswith("recall of the true top 10% keeping 30%")
    rows = _table()
    for r in rows[:3]:
        r.update(filtered_out=True, pgd_acc=None)
    fig = plots.make_figure("proxy_table", rows, CTX)
    assert fig.get_suptitle().endswith("\nthe FSP filter left out 3 candidates: every proxy is ranked among the "
                                       "finetuned ones only")
    empty = stats.ProxyTable(rows=(), keep=0.3, top=0.1, notes=("none",), finetune_seconds=None)
    with pytest.raises(ValueError, match=r"the table has no proxy rows \(none\)"):
        plots.plot_proxies(empty, plots.new_figure())


# ---------------------------------------------------------------------------------- whole figures
@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_every_figure_is_titled_captioned_and_readable(name, tmp_path):
    fig = plots.make_figure(name, _table(), CTX)
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert min(t.get_fontsize() for t in texts) >= 9
    captions = [t for t in texts if t.get_text().startswith("n = ")]
    assert len(captions) == 1 and captions[0].get_text().endswith("attack: PGD-7 eps 8/255 · data: CIFAR-10 val")
    for ax in fig.axes:
        assert ax.get_xlabel() or ax.get_ylabel()
    assert fig.get_suptitle() or all(ax.get_title() for ax in fig.axes)
    path = plots.save_figure(fig, tmp_path / f"{name}.png")
    assert path.stat().st_size > 5000


def test_make_figure_shows_the_statistics_of_a_given_report():
    from fspkit.stats.study import analyze

    rows = _table()
    report = analyze(rows, rng=5, n_boot=50, k=3)
    fig5 = plots.make_figure("fig5_density", rows, CTX, analysis=report)
    title = fig5.axes[0].get_legend().get_title().get_text()
    assert title == f"Spearman {plots._ci_text(report.finding2.spearman)}, n = 8"
    fig4 = plots.make_figure("fig4_finding1", rows, CTX, analysis=report)
    robust = _scatters(fig4.axes[0])[0]
    np.testing.assert_allclose(robust.get_offsets(), report.finding1.embedding[:3])


def test_make_figure_errors():
    with pytest.raises(ValueError, match=r"unknown figure 'fig2'; expected one of fig1_params, fig3_finetune"):
        plots.make_figure("fig2", _table())
    with pytest.raises(ValueError, match=r"column 'bits' is absent from all 8 records"):
        plots.make_figure("fig4_finding1", [{k: v for k, v in r.items() if k != "bits"} for r in _table()])


@pytest.mark.slow
def test_plot_all_writes_every_figure(tmp_path):
    written = plots.plot_all(make_records(40, seed=3), tmp_path / "figs", context=CTX)
    assert [p.name for p in written] == [f"{name}.png" for name in plots.FIGURES]
    assert all(p.stat().st_size > 5000 for p in written)


def test_plot_all_skips_figures_without_their_columns(tmp_path, caplog, monkeypatch):
    names = ("fig1_params", "fig7_fsp_depth", "fig7_filtering", "proxy_table")
    monkeypatch.setattr(plots, "FIGURES", {k: plots.FIGURES[k] for k in names})
    rows = make_records(12, seed=4, fsp=False, proxies=False)
    with caplog.at_level(logging.INFO, logger="fspkit.plots.figures"):
        written = plots.plot_all(rows, tmp_path, fmt="svg")
    names = {p.name for p in written}
    assert "fig7_fsp_depth.svg" not in names and "fig7_filtering.svg" not in names
    assert names == {"fig1_params.svg", "proxy_table.svg"}  # the proxy table of pgd_acc_before_finetune alone
    assert "fig7_fsp_depth: skipped, the records lack its columns (fsp+pgd_acc or " in caplog.text
    with pytest.raises(ValueError, match="fmt: expected one of png, pdf, svg, got 'gif'"):
        plots.plot_all(rows, tmp_path, fmt="gif")


def test_plot_all_skips_a_figure_whose_statistics_are_undefined(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(plots, "FIGURES", {k: plots.FIGURES[k] for k in ("fig1_params", "fig5_density")})
    rows = _table()
    for r in rows:
        r["density"] = 0.5  # constant: no fit
    with caplog.at_level(logging.WARNING, logger="fspkit.plots.figures"):
        written = plots.plot_all(rows, tmp_path)
    assert [p.name for p in written] == ["fig1_params.png"]
    assert "fig5_density: skipped, density is constant" in caplog.text


def test_run_context(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"attack": "pgd20", "data": "cifar10"}))
    assert plots.run_context(tmp_path, n=5) == {"n": 5, "attack": "pgd20", "data": "cifar10"}
    search = tmp_path / "search"
    search.mkdir()
    (search / "search.json").write_text(json.dumps({"config": {"eval_attack": "pgd7", "data": "digits"}}))
    assert plots.run_context(search) == {"attack": "pgd7", "data": "digits"}
    assert plots.run_context(tmp_path / "records.jsonl") == {}


def test_plot_run_on_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "FIGURES", {k: plots.FIGURES[k] for k in ("fig1_params", "fig7_fsp_depth")})
    run = tmp_path / "run"
    run.mkdir()
    rows = _table()
    (run / "records.rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "config.json").write_text(json.dumps({"attack": "pgd7", "data": "digits"}))
    written = plots.plot_run(run, tmp_path / "out", "pdf")
    assert [p.name for p in written] == ["fig1_params.pdf", "fig7_fsp_depth.pdf"]
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in written)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fig1_params.pdf", "fig7_fsp_depth.pdf"]


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


@pytest.mark.parametrize("name", list(plots.FIGURES))
def test_script_draws_the_same_figure_as_plot_all(name, tmp_path, capsys):
    results = tmp_path / "records.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in _table()))
    out = tmp_path / f"{name}.svg"
    assert _script(name).main([str(results), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    records = load_records(results)
    fig = plots.make_figure(name, records, plots.run_context(results))
    expected = plots.save_figure(fig, tmp_path / "expected.svg").read_bytes()
    assert out.read_bytes() == expected


def test_script_errors_print_one_line_and_exit_1(tmp_path, capsys):
    assert _script("fig5_density").main([str(tmp_path / "missing.jsonl")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: records: ") and "does not exist" in err and err.count("\n") == 1

"""The paper's figures from a search's records (Guo et al., "When NAS Meets Robustness", CVPR 2020).

Every ``plot_*`` function takes the data (records, or a result of :mod:`fspkit.stats.findings`) and a
matplotlib ``Axes`` (a ``Figure`` for multi-panel ones), draws on it and returns it, so the
figures compose into a user's own layout. :func:`make_figure` builds one whole captioned figure
of :data:`FIGURES` from records (computing its statistics with :mod:`fspkit.stats.findings`); :func:`plot_all`
writes every figure of a run and :func:`plot_run` is what ``fspkit plot RUN_DIR`` calls.

Only this module imports matplotlib and seaborn, lazily (inside functions), so ``import fspkit``
never needs them. Figures are ``matplotlib.figure.Figure`` objects (no pyplot, no global figure
manager) saved through the Agg canvas; seaborn's style is applied with ``rc_context``, never
``set_theme``, so the caller's rcParams are left as they were.

Records are mappings with the search's columns (``pgd_acc``, ``density``, ``fsp``, ...; see
:mod:`fspkit.stats.study`); accuracies are fractions in [0, 1] and are shown in percent. What the figures
show, computed without matplotlib (records and columns, series, groups, captions, :func:`run_context`,
each figure's columns and size), lives in ``fspkit.plots.data`` and is re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fspkit.plots.data import (
    FIGURE_SPECS,
    GROUP_SHARE,  # noqa: F401 (re-exported)
    KEEP,
    PROXY_LABELS,  # noqa: F401 (re-exported)
    Records,
    _ci_text,
    _density_points,
    _depth_groups,
    _depth_panel,
    _direct_convs_of,
    _direct_convs_series,
    _filter_score,
    _filter_selection,
    _finding1_of,
    _finding2_of,
    _pct,
    _proxy_bars,
    _proxy_note,
    _proxy_table_of,
    _Rows,
    _rows,
    _stage,
    _t_half,  # noqa: F401 (re-exported)
    _with,
    caption_text,
    direct_convs,
    run_context,
    series,
)
from fspkit.stats import findings as stats
from robnet.search.records import RecordSet, read_records

if TYPE_CHECKING:
    from argparse import ArgumentParser, Namespace

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

    from fspkit.stats.study import StudyReport

__all__ = [
    "FIGURES", "FORMATS", "add_caption", "caption_text", "direct_convs", "figure_script", "make_figure", "new_figure",
    "plot_all", "plot_density", "plot_direct_convs", "plot_filtering", "plot_finetune", "plot_finetune_hist",
    "plot_fsp_depth", "plot_params", "plot_proxies", "plot_run", "plot_style", "plot_tsne", "plot_weights",
    "run_context", "save_figure", "series",
]

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
DPI = 150
# Font sizes in points at the saved size (>= 9 pt everywhere).
_FONTS: dict[str, float] = {"font.size": 10.0, "axes.titlesize": 11.0, "axes.labelsize": 10.0,
                            "xtick.labelsize": 9.0, "ytick.labelsize": 9.0, "legend.fontsize": 9.0,
                            "legend.title_fontsize": 9.0, "figure.titlesize": 12.0}
CAPTION_SIZE = 9.0


# --------------------------------------------------------------------------- style, caption, files
@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Seaborn's ``whitegrid`` style, its colorblind palette and this module's font sizes, for the
    duration of the block only (``matplotlib.rc_context``)."""
    import matplotlib as mpl
    import seaborn as sns
    from cycler import cycler

    rc: Any = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), **_FONTS,
               "axes.prop_cycle": cycler(color=sns.color_palette("colorblind")), "savefig.dpi": DPI, "figure.dpi": DPI}
    with mpl.rc_context(rc):
        yield


def _palette() -> list[Any]:
    import seaborn as sns

    return list(sns.color_palette("colorblind"))


def new_figure(width: float = 5.5, height: float = 4.0) -> Figure:
    """A ``Figure`` (size in inches, constrained layout) in this module's style, unknown to pyplot.

    Make its axes inside :func:`plot_style` (``with plot_style(): ax = fig.subplots()``) so the tick
    labels get this module's font sizes; :func:`make_figure` does.
    """
    from matplotlib.figure import Figure

    with plot_style():
        return Figure(figsize=(width, height), layout="constrained", dpi=DPI)


def add_caption(fig: Figure, context: Mapping[str, Any] | None, *, n: int, what: str = "candidates") -> Text:
    """Put the caption line (:func:`caption_text`) under the axes of ``fig``; returns its ``Text``.

    With constrained layout the axes move up to make room; without, the line sits on the bottom
    edge (saving with ``bbox_inches="tight"`` keeps it).
    """
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        room = (CAPTION_SIZE * 1.6 + 4.0) / (fig.get_figheight() * 72.0)
        engine.set(rect=(0.0, room, 1.0, 1.0 - room))
    return fig.text(0.5, 0.008, caption_text(context, n=n, what=what), ha="center", va="bottom",
                    fontsize=CAPTION_SIZE, color="0.25", wrap=True)


def save_figure(fig: Figure, path: str | Path, *, fmt: str | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically, in ``fmt`` (default: the suffix's format; Agg for png).

    Raises:
        ValueError: a format other than png, pdf or svg.
    """
    import matplotlib as mpl

    from robnet.io.files import atomic_write

    target = Path(path)
    fmt = fmt or target.suffix.lstrip(".") or "png"
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r} is not supported: expected one of {', '.join(FORMATS)}")
    # pdf and svg embed the creation time unless told not to; without it reruns give identical files
    metadata: dict[str, Any] = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
    with mpl.rc_context({"svg.hashsalt": "fspkit"}):  # svg element ids: fixed instead of random
        atomic_write(target, lambda f: fig.savefig(f, format=fmt, dpi=DPI, metadata=metadata))
    return target


def _legend(ax: Axes, *, title: str | None = None, loc: Any = "best", min_entries: int = 2) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) >= min_entries:
        ax.legend(handles, labels, title=title, loc=loc, frameon=True, framealpha=0.9)


def _legend_below(ax: Axes, *, title: str | None = None, handles: list[Any] | None = None, ncols: int = 1) -> None:
    """The legend under the axes, clear of the data, the tick labels and the x label."""
    from matplotlib.transforms import ScaledTranslation

    below = ax.transAxes + ScaledTranslation(0.0, -44.0 / 72.0, ax.figure.dpi_scale_trans)
    extra: dict[str, Any] = {} if handles is None else {"handles": handles}
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, title=title, frameon=False,
              ncols=ncols, **extra)


# --------------------------------------------------------------------------- Fig. 1 and Fig. 3
def plot_params(records: Records, ax: Axes) -> Axes:
    """Fig. 1: parameter count (millions; thousands when all are under 50k) vs final PGD accuracy (%),
    one colour per conv budget."""
    rows = _with(records, "params", "pgd_acc")
    params = stats.column(rows, "params")
    scale, unit = (1e6, "millions") if params.max() >= 5e4 else (1e3, "thousands")
    x, y = params / scale, _pct(rows, "pgd_acc")
    keys, labels = series(rows)
    with plot_style():
        for key in sorted(labels, key=lambda k: (k is None, k or 0)):
            sel = np.array([k == key for k in keys])
            ax.scatter(x[sel], y[sel], s=16, alpha=0.75, linewidths=0, label=labels[key])
        ax.set_xlabel(f"parameters ({unit})")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 1: model size vs PGD accuracy")
        _legend(ax, title="sep-convs per cell" if len(labels) > 1 else None)
    return ax


def plot_finetune(records: Records, ax: Axes) -> Axes:
    """Fig. 3 (left): PGD accuracy with the inherited weights vs after finetuning, and the line y = x."""
    rows = _with(records, "pgd_acc_before_finetune", "pgd_acc")
    before, after = _pct(rows, "pgd_acc_before_finetune"), _pct(rows, "pgd_acc")
    lo, hi = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    with plot_style():
        ax.scatter(before, after, s=16, alpha=0.75, linewidths=0, label="candidate")
        ax.plot([lo, hi], [lo, hi], ls="--", color="0.35", lw=1.0, label="y = x")
        ax.set_xlabel("PGD accuracy, inherited weights (%)")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 3: before vs after finetuning")
        _legend(ax)
    return ax


def plot_finetune_hist(records: Records, ax: Axes, *, bins: int = 20) -> Axes:
    """Fig. 3 (right): PGD accuracy before and after finetuning, two histograms on shared bins."""
    rows = _rows(records)
    before = _pct(_with(rows, "pgd_acc_before_finetune"), "pgd_acc_before_finetune")
    after = _pct(_with(rows, "pgd_acc"), "pgd_acc")
    edges = np.histogram_bin_edges(np.concatenate([before, after]), bins=bins).tolist()
    with plot_style():
        ax.hist(before, bins=edges, alpha=0.6, label=f"before finetuning (n={len(before)})")
        ax.hist(after, bins=edges, alpha=0.6, label=f"after finetuning (n={len(after)})")
        ax.set_xlabel("PGD accuracy (%)")
        ax.set_ylabel("candidates (count)")
        ax.set_title("PGD accuracy distribution")
        _legend(ax)
    return ax


# --------------------------------------------------------------------------- Fig. 4 (Finding #1)
def plot_tsne(result: stats.Finding1, ax: Axes) -> Axes:
    """Fig. 4 (left): t-SNE of the bit vectors of the top-k (robust) and bottom-k (non-robust) candidates.

    Raises:
        ValueError: the result was computed with ``tsne=False``.
    """
    if result.embedding is None:
        raise ValueError("plot_tsne: this Finding1 has no embedding; hint: stats.finding1(..., tsne=True)")
    emb, robust = np.asarray(result.embedding), np.asarray(result.labels) == 1
    colors = _palette()
    with plot_style():
        ax.scatter(emb[robust, 0], emb[robust, 1], s=14, alpha=0.75, linewidths=0, color=colors[0],
                   label=f"robust: top {result.k} (PGD ≥ {100 * result.top_min_pgd:.1f}%)")
        ax.scatter(emb[~robust, 0], emb[~robust, 1], s=14, alpha=0.75, linewidths=0, color=colors[1],
                   label=f"non-robust: bottom {result.k} (PGD ≤ {100 * result.bottom_max_pgd:.1f}%)")
        ax.set_xlabel("t-SNE 1 (unitless)")
        ax.set_ylabel("t-SNE 2 (unitless)")
        ax.set_title("Fig. 4: t-SNE of genotype bits")
        _legend_below(ax)
    return ax


def plot_weights(result: stats.Finding1, ax: Axes) -> Axes:
    """Fig. 4 (right): the linear classifier's weight per (edge, op) bit, positive and negative coloured.

    One horizontal bar per bit, named, for a shared cell; one vertical bar per bit with a tick
    per cell for cell-free genotypes.
    """
    w = np.asarray(result.weights, dtype=float)
    colors = np.array(_palette()[:2], dtype=object)
    bar_colors = [colors[0] if v > 0 else colors[1] for v in w]
    with plot_style():
        from matplotlib.patches import Patch

        if len(w) <= stats.BITS_PER_CELL:
            pos = np.arange(len(w))[::-1]
            ax.barh(pos, w, color=bar_colors, height=0.8)
            ax.set_yticks(pos, [n.replace(":", " ") for n in result.feature_names], fontsize=9)
            ax.set_xlabel("weight (log-odds of robust per bit)")
            ax.axvline(0.0, color="0.3", lw=0.8)
        else:
            ax.bar(np.arange(len(w)), w, color=bar_colors, width=1.0, linewidth=0)
            starts = np.arange(0, len(w), stats.BITS_PER_CELL)
            step = max(1, len(starts) // 10)
            ax.set_xticks(starts[::step], [f"cell {i}" for i in range(0, len(starts), step)])
            ax.set_xlabel("genotype bit (28 per cell)")
            ax.set_ylabel("weight (log-odds of robust per bit)")
            ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_title(f"classifier weights: {result.positive_share:.0%} positive "
                     f"({result.n_positive} of {result.n_positive + result.n_negative})\n"
                     f"CV accuracy {result.cv_accuracy:.2f} ± {result.cv_std:.2f} (chance 0.50)")
        _legend_below(ax, handles=[Patch(color=colors[0], label="positive"),
                                   Patch(color=colors[1], label="negative")], ncols=2)
    return ax


# --------------------------------------------------------------------------- Fig. 5 and Fig. 6 (Finding #2)
def plot_density(result: stats.Finding2, density: Any, pgd_acc: Any, ax: Axes) -> Axes:
    """Fig. 5: density (paper Eq. 2) vs final PGD accuracy, the least-squares line and its band.

    Args:
        result: :func:`fspkit.stats.findings.finding2` of the same ``density`` and ``pgd_acc``.
        density, pgd_acc: the points (fractions).
        ax: where to draw.
    """
    x, y = _density_points(result, density, pgd_acc)
    colors = _palette()
    lo, hi = result.slope_ci
    with plot_style():
        ax.scatter(x, y, s=14, alpha=0.6, linewidths=0, color=colors[0], label="candidate")
        ax.plot(result.x_grid, 100 * result.y_fit, color=colors[3], lw=1.6,
                label=f"least squares: slope {100 * result.slope:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}] "
                      f"points per unit density, R² = {result.r2:.2f}")
        ax.fill_between(result.x_grid, 100 * result.band_low, 100 * result.band_high, color=colors[3], alpha=0.2,
                        linewidth=0, label=f"{result.level:.0%} confidence band of the mean")
        ax.set_xlabel("density (connected bits / all bits)")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 5: architecture density vs PGD accuracy")
        _legend_below(ax, title=f"Spearman {_ci_text(result.spearman)}, n = {result.n}")
    return ax


def plot_direct_convs(result: stats.DirectConvs, ax: Axes, *, labels: Mapping[int | None, str] | None = None) -> Axes:
    """Fig. 6: mean final PGD accuracy (%) per number of direct-edge convs, one series per budget,
    with the 95% t interval of each mean and the series' Spearman correlation in the legend.

    Args:
        result: :func:`fspkit.stats.findings.direct_convs_by_budget`.
        ax: where to draw.
        labels: legend label per budget key (default ``budget 7`` / ``unconstrained``).
    """
    from matplotlib.ticker import MaxNLocator

    with plot_style():
        for x, y, yerr, label in _direct_convs_series(result, labels):
            ax.errorbar(x, y, yerr=yerr, marker="o", ms=5, capsize=3, lw=1.4, label=label)
        whole = all(float(c).is_integer() for g in result.groups for c in g.counts)
        ax.set_xlabel("sep-convs on direct edges (per cell)" if whole else
                      "sep-convs on direct edges (mean per cell, to the nearest 0.5)")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 6: direct-edge convs vs PGD accuracy")
        if whole:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _legend_below(ax, title="series: mean ± 95% CI per count; ρ: Spearman within the series")
    return ax


# --------------------------------------------------------------------------- Fig. 7 (Finding #3) and the filter
def plot_fsp_depth(records: Records, fig: Figure, *, stage: str | None = None, k: int | None = None) -> Figure:
    """Fig. 7 (Finding #3): mean FSP distance per cell depth of the robust (top-k by PGD accuracy)
    and non-robust (bottom-k) candidates, with 95% t intervals; the raw distance and, where
    recorded, the relative one ||G(x) - G(x_adv)||_F^2 / ||G(x)||_F^2, one panel each.

    Args:
        records: candidate records.
        fig: an empty figure; one or two axes are added.
        stage: ``after`` (finetuned weights: ``fsp``, ``fsp_rel`` vs ``pgd_acc``) or ``before``
            (inherited weights); default ``after`` when recorded.
        k: group size (default 30% of the candidates, as Finding #1).
    """
    from matplotlib.ticker import MaxNLocator

    stage, rel, cols, rows, groups = _depth_groups(records, stage, k)
    colors = _palette()
    with plot_style():
        axes = fig.subplots(1, len(cols), squeeze=False)[0]
        for ax, col in zip(axes, cols, strict=True):
            depth, bands, log_scale, reductions = _depth_panel(stats.list_column(rows, col), groups)
            for (mean, half), (_, label), color in zip(bands, groups, colors, strict=False):
                ax.plot(depth, mean, marker="o", ms=4, color=color, label=label)
                ax.fill_between(depth, mean - half, mean + half, color=color, alpha=0.2, linewidth=0)
            if log_scale:
                ax.set_yscale("log")
            for red in reductions:
                ax.axvline(red, color="0.5", ls=":", lw=1.0, label="reduction cell" if red == len(depth) // 3 else None)
            ax.set_xlabel("cell depth (0 = first cell)")
            ax.set_ylabel("relative FSP distance (unitless)" if col == rel else "FSP distance (squared Frobenius)")
            ax.set_title("relative: ||ΔG||² / ||G(x)||²" if col == rel else "raw: ||G(x) - G(x_adv)||²")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            _legend(ax)
        weights = "finetuned weights" if stage == "after" else "inherited weights"
        fig.suptitle(f"Fig. 7: FSP distance by depth, robust vs non-robust ({weights}; mean ± 95% CI)")
    return fig


def plot_filtering(records: Records, ax: Axes, *, keep: float = KEEP) -> Axes:
    """Fig. 7 (filter): the PGD-accuracy distribution of all candidates and of those the FSP filter keeps.

    When the run used the filter (``filtered_out`` set), the accuracy known for every candidate
    is the one with inherited weights, and the kept ones are those the run finetuned. Otherwise
    the filter is simulated on final PGD accuracy: keep the ``keep`` fraction with the smallest
    ``fsp_deep_before_finetune`` (the deepest third of the cells, the score ``fspkit search
    --fsp-keep`` ranks by; without it, the mean over all cells of ``fsp_before_finetune``), and the
    title gives the recall of the true top 10% (:func:`fspkit.stats.findings.filter_quality`).
    """
    acc, kept, xlabel, title = _filter_selection(records, keep)
    colors = _palette()
    edges = np.histogram_bin_edges(acc, bins=20).tolist()
    with plot_style():
        ax.hist(acc, bins=edges, color=colors[7], alpha=0.6, label=f"all candidates (n={len(acc)})")
        ax.hist(acc[kept], bins=edges, color=colors[2], alpha=0.75, label=f"kept by the FSP filter (n={kept.sum()})")
        for values, color in ((acc, colors[7]), (acc[kept], colors[2])):
            ax.axvline(float(np.median(values)), color=color, ls="--", lw=1.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("candidates (count)")
        ax.set_title(f"Fig. 7: FSP filtering\n{title}")
        _legend(ax, title="dashed: medians")
    return ax


def plot_proxies(table: stats.ProxyTable, fig: Figure, *, note: str | None = None) -> Figure:
    """The proxy table as a figure: per proxy, its Spearman with final PGD accuracy (95% CI; the sign
    flipped for scores where lower is better, so right = ranks robust candidates first), its recall
    of the true top candidates when keeping a fraction, and its cost per candidate. ``note`` is a
    second line of the title (e.g. that a filtered run ranks the finetuned candidates only).

    Raises:
        ValueError: an empty table.
    """
    if not table.rows:
        raise ValueError(f"plot_proxies: the table has no proxy rows ({'; '.join(table.notes) or 'no notes'})")
    bars = _proxy_bars(table)
    colors = _palette()
    with plot_style():
        ax0, ax1, ax2 = fig.subplots(1, 3, sharey=True, gridspec_kw={"width_ratios": [1.4, 1.0, 1.0]})
        for y, interval, coef in zip(bars.pos, bars.intervals, bars.coefs, strict=True):
            # the interval as its own segment: a percentile bootstrap interval need not contain the estimate
            ax0.plot(interval, [y, y], color=colors[0], lw=1.5, marker="|", ms=8)
            ax0.plot([coef], [y], "o", color=colors[0], ms=6)
        ax0.axvline(0.0, color="0.3", lw=0.8)
        ax0.set_yticks(bars.pos, bars.names)
        ax0.set_xlabel("Spearman ρ with final PGD acc.\n(oriented; (−): lower score = better)")
        ax0.set_title("rank agreement (95% CI)")
        ax1.barh(bars.pos, bars.recalls, color=colors[2], height=0.6)
        ax1.axvline(table.rows[0].quality.random_recall, color="0.3", ls="--", lw=1.0)
        ax1.set_xlim(0, 1.05)
        ax1.set_xlabel(f"recall of the true top {table.top:.0%} keeping {table.keep:.0%}\n(fraction; dashed: random)")
        ax1.set_title("filter recall")
        ax2.barh(bars.pos, bars.seconds, color=colors[4], height=0.6)
        if table.finetune_seconds:
            ax2.axvline(table.finetune_seconds, color="0.3", ls="--", lw=1.0)
        if np.nanmin(bars.seconds) > 0:
            ax2.set_xscale("log")
        ax2.set_xlabel("seconds per candidate (log scale)" +
                       ("\n(dashed: finetuning one)" if table.finetune_seconds else ""))
        ax2.set_title("cost")
        fig.suptitle("Cheap robustness proxies on the same candidates" + (f"\n{note}" if note else ""))
    return fig


# --------------------------------------------------------------------------- whole figures
# A drawer fills an empty figure from the records, computing its statistics (or reusing those of an
# fspkit.stats.study.StudyReport, so the figures show the report's numbers), and returns the caption's n.
Drawer = Callable[..., int]


def _draw_params(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    rows = _with(rows, "params", "pgd_acc")
    plot_params(rows, fig.subplots())
    return len(rows)


def _draw_finetune(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    left, right = fig.subplots(1, 2)
    plot_finetune(rows, left)
    plot_finetune_hist(rows, right)
    return len(_with(rows, "pgd_acc_before_finetune"))


def _draw_finding1(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    result = _finding1_of(rows, analysis, seed)
    shared = len(result.weights) <= stats.BITS_PER_CELL
    fig.set_size_inches(11.0, 6.2 if shared else 4.6)
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.0, 1.0 if shared else 1.6]})
    plot_tsne(result, left)
    plot_weights(result, right)
    return result.n


def _draw_density(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    density, pgd, result = _finding2_of(rows, analysis, seed)
    plot_density(result, density, pgd, fig.subplots())
    return len(density)


def _draw_direct_convs(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    result, labels = _direct_convs_of(rows, seed)
    plot_direct_convs(result, fig.subplots(), labels=labels)
    return sum(g.n for g in result.groups)


def _draw_fsp_depth(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    raw, _, _, pgd_col, _ = stats.STAGES[_stage(rows, None)]
    plot_fsp_depth(rows, fig)
    return len(_with(rows, raw, pgd_col))


def _draw_filtering(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    plot_filtering(rows, fig.subplots())
    if any(r.get("filtered_out") for r in rows):
        return len(_with(rows, "pgd_acc_before_finetune"))
    return len(_with(rows, _filter_score(rows), "pgd_acc"))


def _draw_proxies(rows: _Rows, fig: Figure, analysis: StudyReport | None, seed: int) -> int:
    table = _proxy_table_of(rows, analysis, seed)
    note = _proxy_note(rows)
    fig.set_size_inches(11.0, 1.6 + 0.45 * len(table.rows) + (0.3 if note else 0.0))
    plot_proxies(table, fig, note=note)
    return table.rows[0].quality.n


# file stem -> (alternative sets of columns, one of which must be present; size in inches; drawer)
_DRAWERS: dict[str, Drawer] = {
    "fig1_params": _draw_params, "fig3_finetune": _draw_finetune, "fig4_finding1": _draw_finding1,
    "fig5_density": _draw_density, "fig6_direct_convs": _draw_direct_convs, "fig7_fsp_depth": _draw_fsp_depth,
    "fig7_filtering": _draw_filtering, "proxy_table": _draw_proxies,
}
FIGURES: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[float, float], Drawer]] = {
    name: (needs, size, _DRAWERS[name]) for name, (needs, size) in FIGURE_SPECS.items()}


def make_figure(name: str, records: Records, context: Mapping[str, Any] | None = None, *,
                analysis: StudyReport | None = None, seed: int = 0) -> Figure:
    """Figure ``name`` of :data:`FIGURES`, drawn from the records and captioned.

    Args:
        name: ``fig1_params``, ``fig3_finetune``, ... (the keys of :data:`FIGURES`).
        records: candidate records (:func:`robnet.search.read_records`).
        context: caption facts (``attack``, ``data``, ``n``; ``n`` defaults to the number of records).
        analysis: a :func:`fspkit.stats.study.analyze` report of the same records, whose statistics the
            figure then shows instead of recomputing them.
        seed: seed of the statistics computed here (bootstrap, t-SNE, folds).

    Raises:
        ValueError: an unknown name, records without the figure's columns, statistics that are
            undefined on them (fewer than 3 points, a constant column).
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of {', '.join(FIGURES)}")
    rows = _rows(records)
    _, size, draw = FIGURES[name]
    fig = new_figure(*size)
    with plot_style():
        n = draw(rows, fig, analysis, seed)
    add_caption(fig, {"n": len(rows), **(context or {})}, n=n)
    return fig


def plot_all(records: Records, out_dir: str | Path, *, fmt: str = "png", context: Mapping[str, Any] | None = None,
             analysis: StudyReport | None = None, seed: int = 0) -> list[Path]:
    """Write every figure of :data:`FIGURES` whose columns the records hold, as ``out_dir/<name>.<fmt>``.

    A figure whose columns are absent, or whose statistics are undefined on these records (fewer
    than 3 points, a constant column: ``ValueError`` from :mod:`fspkit.stats.findings`), is skipped with a
    logged note.

    Args:
        records: candidate records (:func:`robnet.search.read_records`).
        out_dir: folder for the files (created).
        fmt: ``png``, ``pdf`` or ``svg``.
        context: caption facts (``attack``, ``data``, ``n``; ``n`` defaults to the number of records).
        analysis: a :func:`fspkit.stats.study.analyze` report of the same records, whose statistics the
            figures then show instead of recomputing them.
        seed: seed of the statistics computed here.

    Returns:
        The written files, in :data:`FIGURES` order.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    rows = _rows(records)
    ctx = {"n": len(rows), **(context or {})}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (needs, _, _) in FIGURES.items():
        if not any(all(stats.has_column(rows, c) for c in cols) for cols in needs):
            log.info("%s: skipped, the records lack its columns (%s)", name,
                     " or ".join("+".join(cols) for cols in needs))
            continue
        try:
            fig = make_figure(name, rows, ctx, analysis=analysis, seed=seed)
        except ValueError as e:
            log.warning("%s: skipped, %s", name, e)
            continue
        written.append(save_figure(fig, out / f"{name}.{fmt}", fmt=fmt))
    return written


def plot_run(records: RecordSet, out_dir: str | Path, fmt: str = "png", *, seed: int = 0) -> list[Path]:
    """``fspkit plot RUN_DIR --out DIR``: every figure of a search's records (read with
    :func:`robnet.search.read_records`), captioned from the run's config; returns the written files."""
    return plot_all(records.records, out_dir, fmt=fmt, context=run_context(records.source, n=len(records)),
                    seed=seed)


# --------------------------------------------------------------------------- figures/ scripts
# A script's drawer: the records and the parsed options -> (a matplotlib Figure, the caption's n).
ScriptDrawer = Callable[[list[dict[str, Any]], "Namespace"], tuple[Any, int]]


def figure_script(argv: list[str] | None, *, doc: str, default_out: str, draw: ScriptDrawer,
                  seed_help: str | None = None, extra_args: Callable[[ArgumentParser], None] | None = None) -> int:
    """The ``main`` of a ``figures/`` script (``fspkit.plots.figures.figure_script``).

    Parses ``RESULTS [--out FILE]``, the options ``extra_args(parser)`` adds and, given ``seed_help``,
    ``[--seed N]`` (default 0); loads the records (:func:`robnet.search.read_records`), draws
    ``draw(records, args)``, captions the figure from :func:`run_context`, saves it and prints its path.

    Args:
        argv: the command line without the program name (``None``: ``sys.argv[1:]``).
        doc: the script's docstring; its first line is the ``--help`` description.
        default_out: the default of ``--out``.
        draw: ``(records, parsed options) -> (figure, number of candidates shown)``.
        seed_help: the help of ``--seed``; ``None``: no ``--seed`` option.
        extra_args: adds the script's own options to the parser (before ``--seed``).

    Returns:
        0, or 1 after printing ``error: ...`` on stderr (a ``ValueError`` or ``TypeError``).
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("results", help="run folder, .jsonl or .csv of candidate records")
    parser.add_argument("--out", default=default_out, help="output file: .png, .pdf or .svg")
    if extra_args is not None:
        extra_args(parser)
    if seed_help is not None:
        parser.add_argument("--seed", type=int, default=0, help=seed_help)
    args = parser.parse_args(argv)
    try:
        records = read_records(args.results).records
        fig, n = draw(records, args)
        add_caption(fig, run_context(args.results, n=len(records)), n=n)
        print(save_figure(fig, args.out))
    except (ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

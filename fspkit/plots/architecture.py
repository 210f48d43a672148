"""Figures of the architecture statistics: Fig. 1 (parameters), Fig. 3 (finetuning), Fig. 4 (Finding
#1's classifier and t-SNE), Fig. 5 (density) and Fig. 6 (direct-edge convs). Every estimate and interval
drawn comes from the analysis (:mod:`fspkit.stats`); each function takes the result it draws and a
matplotlib ``Axes`` and returns it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from fspkit import stats
from fspkit.plots.data import Records, _pct, _rows, _with, ci_label, series
from fspkit.plots.style import legend, legend_below, note_panel, palette, plot_style
from robnet.search import records as R

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_density", "plot_direct_convs", "plot_finetune", "plot_finetune_hist", "plot_params", "plot_tsne",
           "plot_weights"]


def plot_params(records: Records, ax: Axes) -> Axes:
    """Fig. 1: parameter count (millions; thousands when all are under 50k) vs final PGD accuracy (%),
    one colour per conv budget."""
    rows = _with(records, R.PARAMS, R.PGD_ACC)
    params = stats.column(rows, R.PARAMS)
    scale, unit = (1e6, "millions") if params.max() >= 5e4 else (1e3, "thousands")
    x, y = params / scale, _pct(rows, R.PGD_ACC)
    keys, labels = series(rows)
    with plot_style():
        for key in sorted(labels, key=lambda k: (k is None, k or 0)):
            sel = np.array([k == key for k in keys])
            ax.scatter(x[sel], y[sel], s=16, alpha=0.75, linewidths=0, label=labels[key])
        ax.set_xlabel(f"parameters ({unit})")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 1: model size vs PGD accuracy")
        legend(ax, title="sep-convs per cell" if len(labels) > 1 else None)
    return ax


def plot_finetune(records: Records, ax: Axes) -> Axes:
    """Fig. 3 (left): PGD accuracy with the inherited weights vs after finetuning, and the line y = x."""
    rows = _with(records, R.PGD_ACC_BEFORE, R.PGD_ACC)
    before, after = _pct(rows, R.PGD_ACC_BEFORE), _pct(rows, R.PGD_ACC)
    lo, hi = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    with plot_style():
        ax.scatter(before, after, s=16, alpha=0.75, linewidths=0, label="candidate")
        ax.plot([lo, hi], [lo, hi], ls="--", color="0.35", lw=1.0, label="y = x")
        ax.set_xlabel("PGD accuracy, inherited weights (%)")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 3: before vs after finetuning")
        legend(ax)
    return ax


def plot_finetune_hist(records: Records, ax: Axes, *, bins: int = 20) -> Axes:
    """Fig. 3 (right): PGD accuracy before and after finetuning, two histograms on shared bins."""
    rows = _rows(records)
    before = _pct(_with(rows, R.PGD_ACC_BEFORE), R.PGD_ACC_BEFORE)
    after = _pct(_with(rows, R.PGD_ACC), R.PGD_ACC)
    edges = np.histogram_bin_edges(np.concatenate([before, after]), bins=bins).tolist()
    with plot_style():
        ax.hist(before, bins=edges, alpha=0.6, label=f"before finetuning (n={len(before)})")
        ax.hist(after, bins=edges, alpha=0.6, label=f"after finetuning (n={len(after)})")
        ax.set_xlabel("PGD accuracy (%)")
        ax.set_ylabel("candidates (count)")
        ax.set_title("PGD accuracy distribution")
        legend(ax)
    return ax


# --------------------------------------------------------------------------- Fig. 4 (Finding #1)
def plot_tsne(result: stats.Finding1, ax: Axes) -> Axes:
    """Fig. 4 (left): t-SNE of the bit vectors of the robust and non-robust candidates, or, when the
    analysis did not embed them (too few points: a 2-D map of a few dozen says nothing), a panel
    saying so."""
    title = "Fig. 4: t-SNE of genotype bits"
    if result.embedding is None or result.embedding_labels is None:
        note_panel(ax, result.tsne_note, title)
        return ax
    emb, robust = np.asarray(result.embedding), np.asarray(result.embedding_labels) == 1
    colors = palette()
    with plot_style():
        ax.scatter(emb[robust, 0], emb[robust, 1], s=14, alpha=0.75, linewidths=0, color=colors[0],
                   label=f"robust: top {result.k} (PGD ≥ {100 * result.top_min_pgd:.1f}%)")
        ax.scatter(emb[~robust, 0], emb[~robust, 1], s=14, alpha=0.75, linewidths=0, color=colors[1],
                   label=f"non-robust: bottom {result.k} (PGD ≤ {100 * result.bottom_max_pgd:.1f}%)")
        ax.set_xlabel("t-SNE 1 (unitless)")
        ax.set_ylabel("t-SNE 2 (unitless)")
        ax.set_title(f"{title}\n{result.tsne_note}")
        legend_below(ax)
    return ax


def _shares_title(result: stats.Finding1, what: str) -> str:
    parts = []
    for kind in ("identity", "conv"):
        s = result.share(kind)
        parts.append(f"{kind} bits: {s.n_positive}/{s.n_positive + s.n_negative} positive, {stats.p_text(s.pvalue)}")
    return (f"{what}\n" + "\n".join(parts) + f"\nCV accuracy {result.cv_accuracy:.2f} ± {result.cv_std:.2f} "
            f"({result.cv_splits} splits; chance 0.50)")


def plot_weights(result: stats.Finding1, ax: Axes, *, title: str = "the paper's classifier: top vs bottom") -> Axes:
    """Fig. 4 (right): the classifier's weight per (edge, op) bit, identity and conv bits coloured apart,
    titled with each kind's positive share and its permutation p-value (from the analysis). One
    horizontal bar per named bit for a shared cell; one vertical bar per bit for cell-free genotypes."""
    from matplotlib.patches import Patch

    w = np.asarray(result.weights, dtype=float)
    colors = palette()
    bar_colors = [colors[0] if i % 2 == 0 else colors[2] for i in range(len(w))]  # identity bit first per edge
    with plot_style():
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
        ax.set_title(_shares_title(result, title), fontsize=10)
        legend_below(ax, handles=[Patch(color=colors[0], label="identity bit (no parameters)"),
                                  Patch(color=colors[2], label="conv bit (a sep-conv)")], ncols=2)
    return ax


# --------------------------------------------------------------------------- Fig. 5 and Fig. 6
def plot_density(result: stats.Finding2, density: Any, pgd_acc: Any, ax: Axes, *,
                 controlled: stats.Claim | None = None, strata: Sequence[float] | None = None) -> Axes:
    """Fig. 5: density (paper Eq. 2) vs final PGD accuracy, the least-squares line and its band, the
    marginal Spearman and, given the ``f1_density`` claim, its capacity-controlled test (the one that
    decides the verdict). ``strata`` colours the points by their conv count.

    Raises:
        ValueError: a different number of points than the fit was computed from.
    """
    x, y = np.asarray(density, dtype=float), 100.0 * np.asarray(pgd_acc, dtype=float)
    if len(x) != result.n or len(y) != result.n:
        raise ValueError(f"plot_density: the fit has n = {result.n} but got {len(x)} densities and {len(y)} "
                         "accuracies; pass the arrays the fit was computed from")
    colors = palette()
    lo, hi = result.slope_ci
    with plot_style():
        keys = np.asarray(strata, dtype=float) if strata is not None else np.zeros(len(x))
        groups = np.unique(keys[np.isfinite(keys)])
        many = 1 < len(groups) <= 8
        for i, k in enumerate(groups if many else [None]):
            sel = np.ones(len(x), bool) if k is None else keys == k
            ax.scatter(x[sel], y[sel], s=14, alpha=0.7, linewidths=0, color=colors[i if many else 0],
                       label=f"{k:g}" if many else "candidate")
        if many:
            ax.add_artist(ax.legend(title="sep-convs per cell", loc="upper left", frameon=True, framealpha=0.9))
        line = ax.plot(result.x_grid, 100 * result.y_fit, color="0.15", lw=1.6,
                       label=f"least squares, all candidates: slope {100 * result.slope:+.1f} [{100 * lo:+.1f}, "
                             f"{100 * hi:+.1f}] points per unit density")
        band = ax.fill_between(result.x_grid, 100 * result.band_low, 100 * result.band_high, color="0.5", alpha=0.2,
                               linewidth=0, label=f"{result.level:.0%} confidence band of the mean")
        ax.set_xlabel("density (connected bits / all bits)")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 5: architecture density vs PGD accuracy")
        lines = [f"marginal: {ci_label(result.spearman)}, n = {result.n}"]
        if controlled is not None and controlled.effect is not None:
            lines.append(f"within conv count (decides): ρ = {controlled.effect:+.2f} {stats.ci_text(controlled.ci)}, "
                         f"{stats.p_text(controlled.pvalue)} → {controlled.verdict}"
                         + (f" ({controlled.reason})" if controlled.reason else ""))
        legend_below(ax, title="\n".join(lines), handles=[line[0], band])
    return ax


def plot_direct_convs(result: stats.DirectConvs, ax: Axes) -> Axes:
    """Fig. 6: mean final PGD accuracy (%) per number of direct-edge convs, one series per budget, with
    each mean's t interval from the analysis; a count held by fewer than 3 candidates is a hollow
    marker without an interval. The legend gives each series' Spearman with its interval and p-value."""
    from matplotlib.ticker import MaxNLocator

    groups = result.groups
    width = 0.12 * (len(groups) - 1)
    colors = palette()
    with plot_style():
        for i, g in enumerate(groups):
            name = g.label
            corr = ci_label(g.correlation) if g.correlation is not None else g.note
            x = np.asarray(g.counts) + (i * 0.12 - width / 2 if len(groups) > 1 else 0.0)  # dodge the series
            y, lo, hi = (100 * np.asarray(v, dtype=float) for v in (g.mean_pgd, g.ci_low, g.ci_high))
            has = np.isfinite(lo)
            color = colors[i % 10]
            ax.plot(x, y, lw=1.2, color=color, alpha=0.6)
            ax.errorbar(x[has], y[has], yerr=[y[has] - lo[has], hi[has] - y[has]], fmt="o", ms=5, capsize=3,
                        color=color, label=f"{name} (n={g.n}; {corr})")
            ax.plot(x[~has], y[~has], "o", ms=5, mfc="white", mec=color)
        whole = all(float(c).is_integer() for g in groups for c in g.counts)
        ax.set_xlabel("sep-convs on direct edges (per cell)" if whole else
                      "sep-convs on direct edges (mean per cell, to the nearest 0.5)")
        ax.set_ylabel("PGD accuracy after finetuning (%)")
        ax.set_title("Fig. 6: direct-edge convs vs PGD accuracy")
        if whole:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        legend_below(ax, title=f"mean ± {result.level:.0%} t interval per count (hollow: fewer than 3 candidates, "
                               "no interval)\nρ: Spearman within the series")
    return ax

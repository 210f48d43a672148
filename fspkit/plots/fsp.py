"""Figures of Finding #3: FSP distance by depth (Fig. 7) and the FSP filter. Every estimate and interval
drawn comes from the analysis (:mod:`fspkit.stats`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from fspkit import stats
from fspkit.plots.data import KEEP, Records, _filter_selection
from fspkit.plots.style import legend, palette, plot_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_filtering", "plot_fsp_depth"]


def _marks(ax: Axes, pc: stats.PerCell) -> None:
    """Shade the deep cells, dot the reduction cells."""
    deep = pc.deep_cells
    if deep:
        ax.axvspan(min(deep) - 0.4, max(deep) + 0.4, color="0.85", alpha=0.5, lw=0, label="deep cells (the claim)")
    for i, red in enumerate(pc.reduction_cells):
        ax.axvline(red, color="0.5", ls=":", lw=1.0, label="reduction cell" if i == 0 else None)


def _correlation_panel(ax: Axes, pc: stats.PerCell) -> None:
    from matplotlib.ticker import MaxNLocator

    colors = palette()
    _marks(ax, pc)
    series: list[tuple[str, list[stats.Correlation | None], object, float]] = [
        ("raw", [c.fsp_pgd for c in pc.cells], colors[0], -0.08),
        ("relative", [c.rel_pgd for c in pc.cells], colors[2], 0.08)]
    for name, corrs, color, dx in series:
        found = [c for c in corrs if c is not None]
        if len(found) < len(corrs):
            continue
        x = np.arange(len(found)) + dx
        coef = np.array([c.coef for c in found])
        lo = np.array([c.ci[0] for c in found])
        hi = np.array([c.ci[1] for c in found])
        has = np.isfinite(lo)
        ax.errorbar(x[has], coef[has], yerr=[coef[has] - lo[has], hi[has] - coef[has]], fmt="o", ms=4, capsize=3,
                    color=color, label=f"{name} distance")
        ax.plot(x[~has], coef[~has], "o", ms=4, mfc="white", mec=color)
    for c in pc.cells:
        if c.holm_pvalue is not None and c.holm_pvalue < stats.ALPHA:
            ax.annotate("*", (c.cell - 0.08, c.fsp_pgd.ci[1] if np.isfinite(c.fsp_pgd.ci[1]) else c.fsp_pgd.coef),
                        ha="center", va="bottom", fontsize=12)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_ylim(-1.05, 1.1)
    ax.set_xlabel("cell depth (0 = first cell)")
    ax.set_ylabel("Spearman ρ, lower distance ↔ higher PGD acc.")
    ax.set_title("per cell: ρ of the negated distance (95% CI)\n* deep cell significant after Holm")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend(ax)


def _profile_panel(ax: Axes, pc: stats.PerCell, profile: stats.DepthProfile, relative: bool) -> None:
    from matplotlib.ticker import MaxNLocator

    colors = palette()
    _marks(ax, pc)
    depth = np.arange(len(profile.robust_median))
    for (med, lo, hi), label, color, dx in (
            ((profile.robust_median, profile.robust_low, profile.robust_high), f"robust (top {profile.k})",
             colors[0], -0.06),
            ((profile.fragile_median, profile.fragile_low, profile.fragile_high), f"non-robust (bottom {profile.k})",
             colors[1], 0.06)):
        m, lo_a, hi_a = (np.asarray(v, dtype=float) for v in (med, lo, hi))
        ax.plot(depth + dx, m, marker="o", ms=4, color=color, label=label)
        has = np.isfinite(lo_a)
        ax.vlines(depth[has] + dx, lo_a[has], hi_a[has], color=color, lw=2.0, alpha=0.6)
    values = np.asarray(profile.robust_median + profile.fragile_median, dtype=float)
    if np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("cell depth (0 = first cell)")
    ax.set_ylabel("relative FSP distance (unitless)" if relative else "FSP distance (squared Frobenius)")
    ax.set_title(("relative: ||ΔG||² / ||G(x)||²" if relative else "raw: ||G(x) - G(x_adv)||²") +
                 "\nmedian and 95% order-statistic interval")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend(ax)


def plot_fsp_depth(per_cell: stats.PerCell, fig: Figure) -> Figure:
    """Fig. 7 (Finding #3): per cell, the Spearman correlation of the negated FSP distance with PGD
    accuracy (raw and relative, 95% intervals, Holm-significant deep cells starred), and the median
    distance of the robust and non-robust candidates with distribution-free intervals (raw, and
    relative where recorded, on a log axis: the distances are heavy-tailed). The deep cells are
    shaded, the reduction cells dotted: all from :func:`fspkit.stats.per_cell`."""
    panels = 1 + len(per_cell.profiles)
    with plot_style():
        axes = fig.subplots(1, panels, squeeze=False)[0]
        _correlation_panel(axes[0], per_cell)
        for ax, profile in zip(axes[1:], per_cell.profiles, strict=True):
            _profile_panel(ax, per_cell, profile, relative=profile is not per_cell.profiles[0])
        weights = {"after": "finetuned weights", "before": "inherited weights"}.get(per_cell.stage, per_cell.stage)
        fig.suptitle(f"Fig. 7: FSP distance by depth ({weights}; n = {per_cell.n})")
    return fig


def plot_filtering(records: Records, ax: Axes, *, row: stats.ProxyRow | None = None, keep: float = KEEP) -> Axes:
    """Fig. 7 (filter): the PGD-accuracy distribution of all candidates and of those the FSP filter keeps.

    When the run used the filter (``filtered_out`` set), the accuracy known for every candidate is the
    one with inherited weights, and the kept ones are those the run finetuned. Otherwise the kept set
    is the ``keep`` fraction with the smallest deep-cell FSP distance before finetuning (the rule of
    :func:`fspkit.stats.keep_mask`), and the title gives the analysis's recall of the true top
    candidates, its interval and its exact p-value against a random filter (``row``, the proxy
    table's FSP row).
    """
    acc, kept, xlabel, own = _filter_selection(records, keep)
    colors = palette()
    edges = np.histogram_bin_edges(acc, bins=20).tolist()
    if own:
        title = f"this run's FSP filter kept {int(kept.sum())} of {len(kept)}"
    elif row is not None:
        title = (f"keep {row.n_keep} of {row.n} with the lowest deep-cell FSP: top-{row.n_top} recall "
                 f"{row.recall:.2f} {stats.ci_text(row.recall_ci, sign=False)}\nrandom filter {row.random_recall:.2f}"
                 f", {stats.p_text(row.recall_pvalue)} (exact)")
    else:
        title = f"keep {int(kept.sum())} of {len(kept)} with the lowest deep-cell FSP"
    with plot_style():
        ax.hist(acc, bins=edges, color=colors[7], alpha=0.6, label=f"all candidates (n={len(acc)})")
        ax.hist(acc[kept], bins=edges, color=colors[2], alpha=0.75, label=f"kept by the FSP filter (n={kept.sum()})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("candidates (count)")
        ax.set_title(f"Fig. 7: FSP filtering\n{title}", fontsize=10)
        legend(ax)
    return ax

"""The proxy table as a figure: the analysis's sign-adjusted Spearman (the same number the text table
and the JSON hold), the filter recall with its interval and exact p-value, and the cost per candidate,
for every cheap score and free baseline."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fspkit import stats
from fspkit.plots.data import PROXY_LABELS
from fspkit.plots.style import palette, plot_style

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_proxies"]


class _ProxyBars(NamedTuple):
    """The figure's rows, the first on top: y positions, names, whether each beats the parameter count
    (None: params itself), each row's sign-adjusted Spearman and interval, recall and interval, the
    recall's p-value and the seconds per candidate (NaN: not recorded)."""

    pos: np.ndarray
    names: list[str]
    beats: list[bool | None]
    baseline: list[bool]
    coefs: list[float]
    intervals: list[tuple[float, float]]
    recalls: list[float]
    recall_intervals: list[tuple[float, float]]
    recall_p: list[float]
    seconds: list[float]


def _proxy_bars(table: stats.ProxyTable) -> _ProxyBars:
    rows = table.rows
    names = []
    for r in rows:
        name = PROXY_LABELS.get(r.proxy, r.proxy) + (" (lower better)" if r.lower_is_better else "")
        names.append(name + (" [free]" if r.baseline else ""))
    return _ProxyBars(pos=np.arange(len(rows))[::-1], names=names, beats=[r.beats_params for r in rows],
                      baseline=[r.baseline for r in rows], coefs=[r.spearman.coef for r in rows],
                      intervals=[r.spearman.ci for r in rows], recalls=[r.recall for r in rows],
                      recall_intervals=[r.recall_ci for r in rows], recall_p=[r.recall_pvalue for r in rows],
                      seconds=[math.nan if r.seconds_per_candidate is None else r.seconds_per_candidate
                               for r in rows])


def _rank_panel(ax: Axes, bars: _ProxyBars) -> None:
    colors = palette()
    for y, (lo, hi), coef, beats, base in zip(bars.pos, bars.intervals, bars.coefs, bars.beats, bars.baseline,
                                              strict=True):
        color = "0.45" if base else colors[0]
        if math.isfinite(lo):
            ax.plot([lo, hi], [y, y], color=color, lw=1.5, marker="|", ms=8)
        filled = beats is None or beats
        ax.plot([coef], [y], "o", ms=6, color=color, mfc=color if filled else "white")
    ax.axvline(0.0, color="0.3", lw=0.8)
    ax.set_yticks(bars.pos, bars.names)
    ax.set_xlabel("Spearman ρ with final PGD acc., sign-adjusted\n(+: ranks robust candidates first)")
    ax.set_title("rank agreement (95% CI)\nhollow: does not beat the parameter count")


def _recall_panel(ax: Axes, bars: _ProxyBars, table: stats.ProxyTable) -> None:
    colors = palette()
    rec = np.asarray(bars.recalls)
    lo = np.array([i[0] for i in bars.recall_intervals])
    hi = np.array([i[1] for i in bars.recall_intervals])
    has = np.isfinite(lo)
    ax.barh(bars.pos, rec, color=colors[2], height=0.6)
    ax.errorbar(rec[has], bars.pos[has], xerr=[rec[has] - lo[has], hi[has] - rec[has]], fmt="none", ecolor="0.2",
                capsize=3, lw=1.0)
    for y, p in zip(bars.pos, bars.recall_p, strict=True):
        ax.text(1.04, y, stats.p_text(p), va="center", fontsize=8, color="0.2")
    ax.axvline(table.rows[0].random_recall, color="0.3", ls="--", lw=1.0)
    ax.set_xlim(0, 1.4)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_xlabel(f"recall of the true top {table.top:.0%} keeping {table.keep:.0%}\n(dashed: a random filter; "
                  "p: exact, vs random)")
    ax.set_title("filter recall (95% CI)")


def _cost_panel(ax: Axes, bars: _ProxyBars, table: stats.ProxyTable) -> None:
    colors = palette()
    seconds = np.asarray(bars.seconds)
    shown = np.isfinite(seconds) & (seconds > 0)
    ax.barh(bars.pos[shown], seconds[shown], color=colors[4], height=0.6)
    for y, s in zip(bars.pos, seconds, strict=True):
        if not (math.isfinite(s) and s > 0):
            ax.text(0.02, y, "free" if s == 0 else "not recorded", va="center", fontsize=8, color="0.3",
                    transform=ax.get_yaxis_transform())
    if table.finetune_seconds:
        ax.axvline(table.finetune_seconds, color="0.3", ls="--", lw=1.0)
    if shown.any():
        ax.set_xscale("log")
    ax.set_xlabel("seconds per candidate (log scale)" + ("\n(dashed: finetuning one)" if table.finetune_seconds
                                                        else ""))
    ax.set_title("cost")


def plot_proxies(table: stats.ProxyTable, fig: Figure, *, note: str | None = None) -> Figure:
    """The proxy table (:func:`fspkit.stats.proxy_table`) as a figure: per score, its sign-adjusted
    Spearman with final PGD accuracy (95% CI; hollow when it does not beat the parameter count), its
    recall of the true top candidates when keeping a fraction (interval, exact p-value against a random
    filter), and its cost per candidate (the free baselines cost nothing). ``note`` is a second line of
    the title (e.g. that a filtered run ranks the finetuned candidates only).

    Raises:
        ValueError: an empty table.
    """
    if not table.rows:
        raise ValueError(f"plot_proxies: the table has no proxy rows ({'; '.join(table.notes) or 'no notes'})")
    bars = _proxy_bars(table)
    with plot_style():
        ax0, ax1, ax2 = fig.subplots(1, 3, sharey=True, gridspec_kw={"width_ratios": [1.4, 1.1, 0.9]})
        _rank_panel(ax0, bars)
        _recall_panel(ax1, bars, table)
        _cost_panel(ax2, bars, table)
        fig.suptitle(f"Cheap robustness scores and free baselines on the same {table.rows[0].n} candidates"
                     + (f"\n{note}" if note else ""))
    return fig

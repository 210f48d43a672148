"""The data half of ``fspkit.plots.figures`` (import it from there): records and their columns, the conv-budget
series, the groups of Fig. 7, the FSP filter's selection, caption text, the run's caption facts,
which columns and size each figure of ``fspkit.plots.figures.FIGURES`` has and the ``main`` of the
``figures/`` scripts (:func:`figure_script`).

No matplotlib or seaborn here (only ``fspkit.plots.figures`` imports them), so everything below is plain
numpy on records and can be tested without a figure. Records are mappings with the search's columns
(``pgd_acc``, ``density``, ``fsp``, ...; see :mod:`fspkit.stats.study`); accuracies are fractions in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from fspkit.stats import findings as stats
from robnet.search.records import CONFIG_FILE, read_search_json

if TYPE_CHECKING:
    from fspkit.stats.study import StudyReport

Records = Sequence[Mapping[str, Any]]
_Rows = list[Mapping[str, Any]]
# Finding #1's split (the paper: top-300 vs bottom-300 of 1000) and the FSP filter's keep fraction.
GROUP_SHARE = 0.3
KEEP = 0.3

PROXY_LABELS: dict[str, str] = {"fsp": "FSP distance", "fsp_rel": "relative FSP", "grad_norm": "grad norm",
                                "synflow": "SynFlow", "naswot": "NASWOT", "pgd_before_finetune": "PGD, no finetune"}

# file stem -> (alternative sets of columns, one of which must be present; size in inches); the
# drawers that complete fspkit.plots.figures.FIGURES live beside the plotting code
FIGURE_SPECS: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[float, float]]] = {
    "fig1_params": ((("params", "pgd_acc"),), (5.5, 4.2)),
    "fig3_finetune": ((("pgd_acc_before_finetune", "pgd_acc"),), (10.0, 4.2)),
    "fig4_finding1": ((("bits", "pgd_acc"),), (11.0, 6.2)),
    "fig5_density": ((("density", "pgd_acc"),), (6.5, 5.4)),
    "fig6_direct_convs": ((("direct_convs", "pgd_acc"),), (6.5, 5.4)),
    "fig7_fsp_depth": ((("fsp", "pgd_acc"), ("fsp_before_finetune", "pgd_acc_before_finetune")), (11.0, 4.4)),
    "fig7_filtering": ((("fsp_before_finetune", "pgd_acc"),
                        ("fsp_before_finetune", "pgd_acc_before_finetune", "filtered_out")), (6.5, 4.4)),
    "proxy_table": (tuple((col, "pgd_acc") for col, _, _ in stats.PROXIES.values()), (11.0, 4.0)),
}


# --------------------------------------------------------------------------- records and columns
def _rows(records: Any) -> list[Mapping[str, Any]]:
    if hasattr(records, "to_dict") and not isinstance(records, Mapping):  # a pandas DataFrame
        records = records.to_dict("records")
    if isinstance(records, Mapping | str | bytes):
        raise TypeError(f"expected a sequence of records (one mapping per candidate), got {type(records).__name__}")
    rows = list(records)
    for i, r in enumerate(rows):
        if not isinstance(r, Mapping):
            raise TypeError(f"record {i} is a {type(r).__name__}, expected a mapping of column -> value")
    if not rows:
        raise ValueError("no records to plot (an empty table); hint: fspkit.stats.study.load_records(RUN_DIR)")
    return rows


def _with(records: Records, *names: str) -> list[Mapping[str, Any]]:
    """The records holding a finite value in every one of ``names`` (lists: every entry finite)."""
    rows = _rows(records)
    for name in names:
        if not stats.has_column(rows, name):
            raise ValueError(f"column {name!r} is absent from all {len(rows)} records; hint: it is recorded by "
                             "the search stage that computes it (FSP and proxies: `fspkit search`)")

    def finite(v: Any) -> bool:
        values = v if isinstance(v, list | tuple) else [v]
        return all(x is not None and math.isfinite(float(x)) for x in values)

    return [r for r in rows if all(finite(r.get(name)) for name in names)]


def _pct(rows: Records, name: str) -> np.ndarray:
    return stats.column(rows, name) * 100.0


# --------------------------------------------------------------------------- Fig. 1 and Fig. 6: conv budgets
def series(records: Records, *, max_groups: int = 3) -> tuple[list[int | None], dict[int | None, str]]:
    """The conv-budget series of Fig. 1 and Fig. 6: a key per record and a legend label per key.

    The key is the record's ``budget`` (sep-convs per cell the candidate was sampled with; None:
    unconstrained). When no record has a budget, candidates are grouped by their own ``convs``
    instead (a candidate's budget is its conv count), in at most ``max_groups`` bins of about
    equal size, keyed 0, 1, ... from the fewest convs.
    """
    rows = _rows(records)
    if stats.has_column(rows, "budget") or not stats.has_column(rows, "convs"):
        budgets: list[int | None] = [None if r.get("budget") is None else int(r["budget"]) for r in rows]
        return budgets, {k: "unconstrained" if k is None else f"budget {k}" for k in set(budgets)}
    convs = stats.column(rows, "convs")
    cuts = np.unique(np.quantile(convs, np.linspace(0, 1, max_groups + 1)[1:-1]))
    bins = np.searchsorted(cuts, convs, side="left")  # (n,) bin of each record
    keys: list[int | None] = [None] * len(rows)
    labels: dict[int | None, str] = {}
    for b in np.unique(bins):
        members = np.flatnonzero(bins == b)
        lo, hi = float(convs[members].min()), float(convs[members].max())
        for i in members:
            keys[i] = int(b)
        labels[int(b)] = f"{lo:.3g} convs" if lo == hi else f"{lo:.3g}-{hi:.3g} convs"
    return keys, labels


def direct_convs(records: Records) -> np.ndarray:
    """Fig. 6's x: each record's ``direct_convs``; cell-free means over cells rounded to the nearest
    0.5, so candidates share a handful of counts (the statistics then run on the rounded values)."""
    values = stats.column(_rows(records), "direct_convs")
    return values if np.all(values == np.round(values)) else np.round(2 * values) / 2


def _direct_convs_of(rows: Records, seed: int) -> tuple[stats.DirectConvs, dict[int | None, str]]:
    """Fig. 6's statistics from the records holding ``direct_convs`` and ``pgd_acc``, and its legend labels."""
    rows = _with(rows, "direct_convs", "pgd_acc")
    keys, labels = series(rows)
    result = stats.direct_convs_by_budget(direct_convs(rows), keys, stats.column(rows, "pgd_acc"), rng=seed)
    return result, labels


def _direct_convs_series(result: stats.DirectConvs, labels: Mapping[int | None, str] | None
                         ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """Fig. 6's series: per budget, the direct-conv counts (dodged sideways when there are several
    series), the mean PGD accuracy (%) at each, its 95% t half-width (%) and the legend label."""
    groups = result.groups
    width = 0.12 * (len(groups) - 1)
    out = []
    for i, g in enumerate(groups):
        name = (labels or {}).get(g.budget) or ("unconstrained" if g.budget is None else f"budget {g.budget}")
        corr = _ci_text(g.correlation) if g.correlation is not None else g.note
        x = np.asarray(g.counts) + (i * 0.12 - width / 2 if len(groups) > 1 else 0.0)  # dodge the series
        y = 100 * np.asarray(g.mean_pgd)
        out.append((x, y, 100 * _t_half(g.std_pgd, g.n_per_count), f"{name} (n={g.n}; {corr})"))
    return out


def _t_half(std: Any, n: Any, level: float = 0.95) -> np.ndarray:
    """Half-width of the t interval of a mean from the population std (ddof 0) of n values: t * std / sqrt(n - 1);
    0 for single values."""
    from scipy import stats as sps

    std, n = np.asarray(std, dtype=float), np.asarray(n, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = sps.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n - 1)
    return np.where(n > 1, half, 0.0)


def _ci_text(c: stats.Correlation) -> str:
    return f"ρ = {c.coef:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]"


# --------------------------------------------------------------------------- Fig. 4 and Fig. 5 (Findings #1, #2)
def _finding1_of(rows: Records, analysis: StudyReport | None, seed: int) -> stats.Finding1:
    """Fig. 4's statistics: the report's when it holds the t-SNE embedding, else computed here."""
    result = analysis.finding1 if analysis is not None else None
    if result is None or result.embedding is None:
        rows = _with(rows, "bits", "pgd_acc")
        result = stats.finding1(stats.list_column(rows, "bits"), stats.column(rows, "pgd_acc"), rng=seed)
    return result


def _density_points(result: stats.Finding2, density: Any, pgd_acc: Any) -> tuple[np.ndarray, np.ndarray]:
    """Fig. 5's points: the densities and the PGD accuracies in percent, as many as the fit has.

    Raises:
        ValueError: a different number of points than the fit was computed from.
    """
    x, y = np.asarray(density, dtype=float), 100.0 * np.asarray(pgd_acc, dtype=float)
    if len(x) != result.n or len(y) != result.n:
        raise ValueError(f"plot_density: the fit has n = {result.n} but got {len(x)} densities and {len(y)} "
                         "accuracies; pass the arrays the fit was computed from")
    return x, y


def _finding2_of(rows: Records, analysis: StudyReport | None, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, stats.Finding2]:
    """Fig. 5's points (density, PGD accuracy) and their fit: the report's when it is of as many points."""
    rows = _with(rows, "density", "pgd_acc")
    density, pgd = stats.column(rows, "density"), stats.column(rows, "pgd_acc")
    result = analysis.finding2 if analysis is not None else None
    if result is None or result.n != len(rows):
        result = stats.finding2(density, pgd, rng=seed)
    return density, pgd, result


# --------------------------------------------------------------------------- Fig. 7 (Finding #3) and the filter
class _DepthGroups(NamedTuple):
    """What Fig. 7's depth panels show: the stage, its relative-FSP column, the columns drawn (one
    panel each), the records holding them and the (indices, label) of the robust and non-robust groups."""

    stage: str
    rel: str
    cols: list[str]
    rows: _Rows
    groups: tuple[tuple[np.ndarray, str], tuple[np.ndarray, str]]


class _Selection(NamedTuple):
    """What Fig. 7's filter panel shows: the accuracies (%), which candidates the filter keeps, the x
    label and the title's second line."""

    acc: np.ndarray
    kept: np.ndarray
    xlabel: str
    title: str


def _stage(records: Records, stage: str | None) -> str:
    if stage is None:
        return "after" if stats.has_column(records, "fsp") else "before"
    if stage not in stats.STAGES:
        raise ValueError(f"stage: expected one of {', '.join(stats.STAGES)}, got {stage!r}")
    return stage


def _depth_groups(records: Records, stage: str | None, k: int | None) -> _DepthGroups:
    """The robust (top-k by PGD accuracy) and non-robust (bottom-k) groups of
    :func:`fspkit.plots.figures.plot_fsp_depth`, whose arguments these are."""
    stage = _stage(records, stage)
    raw, rel, _, pgd_col, _ = stats.STAGES[stage]
    cols = [raw] + ([rel] if stats.has_column(_rows(records), rel) else [])
    rows = _with(records, pgd_col, *cols)
    n = len(rows)
    k = round(GROUP_SHARE * n) if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n // 2:
        raise ValueError(f"k: expected an int in 2..{n // 2} (two disjoint groups of at least 2), got {k!r} "
                         f"for n = {n} candidates with {', '.join(cols)}")
    order = np.argsort(-stats.column(rows, pgd_col), kind="stable")
    groups = ((order[:k], f"robust (top {k})"), (order[n - k:], f"non-robust (bottom {k})"))
    return _DepthGroups(stage, rel, cols, rows, groups)


def _depth_panel(m: np.ndarray, groups: Sequence[tuple[np.ndarray, str]]
                 ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], bool, list[int]]:
    """One panel of Fig. 7 from the (n, cells) matrix of a per-cell column: the depths, each group's
    mean and 95% t half-width per depth, whether the means want a log scale (all positive and spanning
    more than 30x, e.g. raw distances growing with width) and the depths of the reduction cells."""
    bands = [(m[idx].mean(axis=0), _t_half(m[idx].std(axis=0), len(idx))) for idx, _ in groups]
    means = np.array([mean for mean, _ in bands])  # (groups, cells)
    log_scale = bool(np.all(means > 0) and means.max() / means.min() > 30)
    return np.arange(m.shape[1]), bands, log_scale, sorted({m.shape[1] // 3, 2 * m.shape[1] // 3} - {0})


def _filter_score(rows: Records) -> str:
    return "fsp_deep_before_finetune" if stats.has_column(rows, "fsp_deep_before_finetune") else "fsp_before_finetune"


def _filter_selection(records: Records, keep: float) -> _Selection:
    """The candidates :func:`fspkit.plots.figures.plot_filtering` shows and those the FSP filter keeps:
    the run's own choice when it used the filter (``filtered_out`` set), else the simulated one."""
    rows = _rows(records)
    if any(r.get("filtered_out") for r in rows):
        rows = _with(rows, "pgd_acc_before_finetune")
        kept = np.array([not r.get("filtered_out") for r in rows])
        return _Selection(_pct(rows, "pgd_acc_before_finetune"), kept, "PGD accuracy, inherited weights (%)",
                          f"this run's FSP filter kept {kept.mean():.0%}")
    col = _filter_score(rows)
    rows = _with(rows, col, "pgd_acc")
    score = stats.list_column(rows, col).mean(axis=1) if col == "fsp_before_finetune" else stats.column(rows, col)
    acc = _pct(rows, "pgd_acc")
    q = stats.filter_quality(score, acc, keep=keep, n_boot=0, names=(col, "pgd_acc"))
    kept = np.zeros(len(rows), dtype=bool)
    kept[np.argsort(score, kind="stable")[:q.n_keep]] = True  # the filter's rule (filter_quality's too)
    title = (f"simulated: keep {keep:.0%} lowest {'deep-cell' if col != 'fsp_before_finetune' else 'mean'} FSP; "
             f"top-{q.top:.0%} recall {q.recall:.2f} (random {q.random_recall:.2f})")
    return _Selection(acc, kept, "PGD accuracy after finetuning (%)", title)


# --------------------------------------------------------------------------- proxies and captions
def caption_text(context: Mapping[str, Any] | None, *, n: int, what: str = "candidates") -> str:
    """The caption line: ``n = 180 of 200 candidates · attack: PGD-7 eps 8/255 · data: CIFAR-10 val``.

    Args:
        context: facts of the run, keys ``attack``, ``data`` and ``n`` (the run's size); missing
            ones read "not recorded".
        n: how many candidates the figure shows.
        what: the noun counted.
    """
    ctx = dict(context or {})
    total = ctx.get("n")
    count = f"n = {n} {what}" if total is None or int(total) == n else f"n = {n} of {int(total)} {what}"
    return f"{count} · attack: {ctx.get('attack') or 'not recorded'} · data: {ctx.get('data') or 'not recorded'}"


def _proxy_table_of(rows: Records, analysis: StudyReport | None, seed: int) -> stats.ProxyTable:
    """The proxy figure's table: the report's, else computed here from the proxy columns recorded."""
    table = analysis.proxies if analysis is not None else None
    if table is None:
        present = [p for p, (col, _, _) in stats.PROXIES.items() if stats.has_column(rows, col)]
        table = stats.proxy_table(rows, present, rng=seed)
    return table


class _ProxyBars(NamedTuple):
    """The proxy figure's rows, the first proxy on top: y positions, names ((−): lower is better),
    each Spearman interval (ascending) and estimate oriented so that right ranks robust candidates
    first, the filter recall and the seconds per candidate (NaN when not recorded)."""

    pos: np.ndarray
    names: list[str]
    intervals: list[list[float]]
    coefs: list[float]
    recalls: list[float]
    seconds: list[float]


def _proxy_bars(table: stats.ProxyTable) -> _ProxyBars:
    """What :func:`fspkit.plots.figures.plot_proxies` draws of each row of ``table``."""
    rows = table.rows
    signs = [-1.0 if r.lower_is_better else 1.0 for r in rows]
    corrs = [r.quality.spearman for r in rows]
    return _ProxyBars(pos=np.arange(len(rows))[::-1],
                      names=[PROXY_LABELS.get(r.proxy, r.proxy) + (" (−)" if r.lower_is_better else "") for r in rows],
                      intervals=[sorted((s * c.ci[0], s * c.ci[1])) for s, c in zip(signs, corrs, strict=True)],
                      coefs=[s * c.coef for s, c in zip(signs, corrs, strict=True)],
                      recalls=[r.quality.recall for r in rows],
                      seconds=[r.seconds_per_candidate or math.nan for r in rows])


def _proxy_note(rows: Records) -> str | None:
    """The proxy figure's second title line when the FSP filter left candidates out, else None."""
    filtered = sum(bool(r.get("filtered_out")) for r in rows)
    return (f"the FSP filter left out {filtered} candidates: every proxy is ranked among the finetuned ones only"
            if filtered else None)


def run_context(path: str | Path, *, n: int | None = None) -> dict[str, Any]:
    """Caption facts of a run folder (or of the folder of a records file) from the search's
    ``search.json``: the evaluation ``attack`` and the ``data``; none for a loose file."""
    ctx: dict[str, Any] = {} if n is None else {"n": n}
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if (folder / CONFIG_FILE).is_file():
        config = read_search_json(folder)["config"]
        ctx.update({k: v for k, v in (("attack", config.get("eval_attack")), ("data", config.get("data")))
                    if v is not None})
    return ctx

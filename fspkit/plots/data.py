"""What the figures show, prepared without matplotlib: records and their columns, the conv-budget
series, the FSP filter's kept set, caption text, the run's caption facts, and which columns and size
each figure of ``fspkit.plots.figures.FIGURES`` has.

No statistic is computed here or anywhere in ``fspkit.plots``: every number a figure prints or draws as
an estimate or an interval comes from the :class:`fspkit.stats.StudyReport` the figure is given (the
same analysis ``fspkit stats`` prints and the report shows). What is here only selects, groups and
converts units. Records are mappings with the search's columns (``robnet.search.records``);
accuracies are fractions in [0, 1], shown in percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fspkit import stats
from robnet.search import records as R

Records = Sequence[Mapping[str, Any]]
_Rows = list[Mapping[str, Any]]
KEEP = 0.3  # the FSP filter's keep fraction of a simulated filter (the proxy table's)

PROXY_LABELS: dict[str, str] = {"fsp": "FSP distance, deep cells", "fsp_rel": "relative FSP, deep cells",
                                "grad_norm": "grad norm", "synflow": "SynFlow", "naswot": "NASWOT",
                                "pgd_before_finetune": "PGD, no finetune", "params": "parameters",
                                "flops": "FLOPs", "convs": "sep-convs", "density": "density"}

# file stem -> (alternative sets of columns, one of which must be present; size in inches); the
# drawers that complete fspkit.plots.figures.FIGURES live beside the plotting code
FIGURE_SPECS: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[float, float]]] = {
    "fig1_params": (((R.PARAMS, R.PGD_ACC),), (5.5, 4.2)),
    "fig3_finetune": (((R.PGD_ACC_BEFORE, R.PGD_ACC),), (10.0, 4.2)),
    "fig4_finding1": (((R.BITS, R.PGD_ACC),), (15.0, 6.4)),
    "fig5_density": (((R.DENSITY, R.PGD_ACC),), (6.5, 5.8)),
    "fig6_direct_convs": (((R.DIRECT_CONVS, R.PGD_ACC),), (6.5, 5.6)),
    "fig7_fsp_depth": (((R.FSP, R.PGD_ACC), (R.FSP + R.BEFORE, R.PGD_ACC_BEFORE)), (15.0, 4.8)),
    "fig7_filtering": (((R.FSP + R.BEFORE, R.PGD_ACC),
                        (R.FSP + R.BEFORE, R.PGD_ACC_BEFORE, R.FILTERED_OUT)), (6.5, 4.6)),
    "proxy_table": (tuple((col, R.PGD_ACC) for col, _, _ in stats.PROXIES.values()), (12.0, 4.0)),
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
        raise ValueError("no records to plot (an empty table); hint: robnet.search.records.read_records(RUN_DIR)")
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
def series(records: Records) -> tuple[list[int | None], dict[int | None, str]]:
    """The conv-budget series of Fig. 1: a key per record and a legend label per key.

    The key is the record's ``budget`` (sep-convs per cell the candidate was sampled with; None:
    unconstrained). When no record has a budget, candidates are grouped by their own ``convs`` in
    the fixed ranges of :data:`fspkit.stats.CONV_BINS` (of the 14 edges), keyed 0, 1, 2, as the
    analysis groups Fig. 6.
    """
    rows = _rows(records)
    if stats.has_column(rows, R.BUDGET) or not stats.has_column(rows, R.CONVS):
        budgets: list[int | None] = [None if r.get(R.BUDGET) is None else int(r[R.BUDGET]) for r in rows]
        return budgets, {k: "unconstrained" if k is None else f"budget {k}" for k in set(budgets)}
    keys: list[int | None] = [int(k) for k in stats.conv_bins(stats.column(rows, R.CONVS))]
    return keys, {k: stats.CONV_BINS[k][2] for k in set(keys) if k is not None}


def direct_convs(records: Records) -> np.ndarray:
    """Fig. 6's x: each record's ``direct_convs`` as the analysis groups them
    (:func:`fspkit.stats.direct_conv_counts`: cell-free means over cells rounded to the nearest 0.5)."""
    return stats.direct_conv_counts(stats.column(_rows(records), R.DIRECT_CONVS))


# --------------------------------------------------------------------------- Fig. 7 filter panel
class _Selection(NamedTuple):
    """What Fig. 7's filter panel shows: the accuracies (%), which candidates the filter keeps, the x
    label, and whether the run used the filter itself."""

    acc: np.ndarray
    kept: np.ndarray
    xlabel: str
    own: bool


def _filter_selection(records: Records, keep: float) -> _Selection:
    """The candidates :func:`fspkit.plots.figures.plot_filtering` shows and those the FSP filter keeps:
    the run's own choice when it used the filter (``filtered_out`` set), else the rule of
    :func:`fspkit.stats.keep_mask` on the deep-cell FSP score (the proxy table's FSP row)."""
    rows = _rows(records)
    if any(r.get(R.FILTERED_OUT) for r in rows):
        rows = _with(rows, R.PGD_ACC_BEFORE)
        kept = np.array([not r.get(R.FILTERED_OUT) for r in rows])
        return _Selection(_pct(rows, R.PGD_ACC_BEFORE), kept, "PGD accuracy, inherited weights (%)", True)
    rows = _with(rows, R.FSP + R.BEFORE, R.PGD_ACC)
    kept = stats.keep_mask(stats.score_column(rows, R.FSP + R.BEFORE), keep, lower_is_better=True)
    return _Selection(_pct(rows, R.PGD_ACC), kept, "PGD accuracy after finetuning (%)", False)


# --------------------------------------------------------------------------- captions
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


def run_context(path: str | Path, *, n: int | None = None) -> dict[str, Any]:
    """Caption facts of a run folder (or of the folder of a records file) from the search's
    ``search.json``: the evaluation ``attack`` and the ``data``; none for a loose file."""
    ctx: dict[str, Any] = {} if n is None else {"n": n}
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    if (folder / R.CONFIG_FILE).is_file():
        config = R.read_search_json(folder)["config"]
        ctx.update({k: v for k, v in (("attack", config.get("eval_attack")), ("data", config.get("data")))
                    if v is not None})
    return ctx


def ci_label(c: stats.Correlation) -> str:
    """``ρ = +0.31 [+0.12, +0.48], p = 0.004``: a correlation of the analysis as a legend shows it."""
    return f"ρ = {c.coef:+.2f} {stats.ci_text(c.ci)}, {stats.p_text(c.pvalue)}"

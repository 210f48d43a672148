"""The paper's figures of a search, whole: each drawn from the records and from one analysis
(:func:`fspkit.stats.analyze`), captioned and saved (Guo et al., "When NAS Meets Robustness", CVPR 2020).

:func:`draw_figure` draws figure ``name`` of :data:`FIGURES`; :func:`make_figure` captions it;
:func:`plot_all` writes every figure a run's records allow and :func:`plot_run` is what ``fspkit plot
RUN_DIR`` calls. A figure never computes a statistic: given no analysis, these functions run
:func:`fspkit.stats.analyze` once and every figure reads the same numbers the report prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fspkit import stats
from fspkit.plots.architecture import (
    plot_density,
    plot_direct_convs,
    plot_finetune,
    plot_finetune_hist,
    plot_params,
    plot_tsne,
    plot_weights,
)
from fspkit.plots.data import FIGURE_SPECS, KEEP, Records, _Rows, _rows, _with
from fspkit.plots.fsp import plot_filtering, plot_fsp_depth
from fspkit.plots.proxies import plot_proxies
from fspkit.plots.style import FORMATS, add_caption, new_figure, plot_style, save_figure
from robnet.search import records as R
from robnet.search.records import RecordSet, read_records

if TYPE_CHECKING:
    from argparse import ArgumentParser, Namespace

    from matplotlib.figure import Figure

__all__ = ["FIGURES", "draw_figure", "figure_script", "make_figure", "plot_all", "plot_run"]

log = logging.getLogger(__name__)

# A drawer fills an empty figure from the records and the analysis, and returns the caption's n.
Drawer = Callable[..., int]


def _need(part: Any, what: str) -> Any:
    if part is None:
        raise ValueError(f"the analysis has no {what} (see its notes: the records lack its columns, or its "
                         "statistics are undefined on them)")
    return part


def _draw_params(rows: _Rows, fig: Figure, a: stats.StudyReport | None, **_: Any) -> int:
    rows = _with(rows, R.PARAMS, R.PGD_ACC)
    plot_params(rows, fig.subplots())
    return len(rows)


def _draw_finetune(rows: _Rows, fig: Figure, a: stats.StudyReport | None, **_: Any) -> int:
    left, right = fig.subplots(1, 2)
    plot_finetune(rows, left)
    plot_finetune_hist(rows, right)
    return len(_with(rows, R.PGD_ACC_BEFORE))


def _draw_finding1(rows: _Rows, fig: Figure, a: stats.StudyReport, **_: Any) -> int:
    result = _need(a.finding1, "Finding #1 classifier")
    shared = len(result.weights) <= stats.BITS_PER_CELL
    controlled = a.finding1_controlled
    embedded = result.embedding is not None
    fig.set_size_inches((11.0 if controlled else 7.5) + (3.5 if embedded else 1.8), 6.8 if shared else 5.0)
    ratios = [1.0 if embedded else 0.45, 1.0] + ([1.0] if controlled else [])
    axes = fig.subplots(1, len(ratios), gridspec_kw={"width_ratios": ratios})
    plot_tsne(result, axes[0])
    plot_weights(result, axes[1])
    if controlled is not None:
        plot_weights(controlled, axes[2], title="within strata of equal conv count (decides)")
    return result.n


def _draw_density(rows: _Rows, fig: Figure, a: stats.StudyReport, **_: Any) -> int:
    result = _need(a.finding2, "density fit")
    rows = _with(rows, R.DENSITY, R.PGD_ACC)
    if len(rows) != result.n:
        raise ValueError(f"the analysis's density fit has n = {result.n}, the records {len(rows)}: give the "
                         "analysis of these records")
    strata = stats.column(rows, R.CONVS) if stats.has_column(rows, R.CONVS) else None
    claim = next((c for c in a.claims if c.id == "f1_density"), None)
    plot_density(result, stats.column(rows, R.DENSITY), stats.column(rows, R.PGD_ACC), fig.subplots(),
                 controlled=claim, strata=None if strata is None else strata.tolist())
    return len(rows)


def _draw_direct_convs(rows: _Rows, fig: Figure, a: stats.StudyReport, **_: Any) -> int:
    result = _need(a.direct_convs, "direct-edge conv groups")
    plot_direct_convs(result, fig.subplots())
    return sum(g.n for g in result.groups)


def _draw_fsp_depth(rows: _Rows, fig: Figure, a: stats.StudyReport, *, stage: str | None = None, **_: Any) -> int:
    pc = a.per_cell_before if stage == "before" else a.per_cell if stage == "after" else (
        a.per_cell or a.per_cell_before)
    pc = _need(pc, "per-cell FSP analysis" + (f" ({stage} finetuning)" if stage else ""))
    fig.set_size_inches(5.0 * (1 + len(pc.profiles)), 4.8)
    plot_fsp_depth(pc, fig)
    return pc.n


def _draw_filtering(rows: _Rows, fig: Figure, a: stats.StudyReport, **_: Any) -> int:
    table = a.proxies
    row = None if table is None else next((r for r in table.rows if r.proxy == "fsp"), None)
    keep = KEEP if table is None else table.keep
    plot_filtering(rows, fig.subplots(), row=row, keep=keep)
    if any(r.get(R.FILTERED_OUT) for r in rows):
        return len(_with(rows, R.PGD_ACC_BEFORE))
    return len(_with(rows, R.FSP + R.BEFORE, R.PGD_ACC))


def _draw_proxies(rows: _Rows, fig: Figure, a: stats.StudyReport, **_: Any) -> int:
    table = _need(a.proxies, "proxy table")
    filtered = sum(bool(r.get(R.FILTERED_OUT)) for r in rows)
    note = (f"the FSP filter left out {filtered} candidates: every score is ranked among the finetuned ones only"
            if filtered else None)
    fig.set_size_inches(12.0, 1.9 + 0.42 * len(table.rows) + (0.3 if note else 0.0))
    plot_proxies(table, fig, note=note)
    return table.rows[0].n


_DRAWERS: dict[str, Drawer] = {
    "fig1_params": _draw_params, "fig3_finetune": _draw_finetune, "fig4_finding1": _draw_finding1,
    "fig5_density": _draw_density, "fig6_direct_convs": _draw_direct_convs, "fig7_fsp_depth": _draw_fsp_depth,
    "fig7_filtering": _draw_filtering, "proxy_table": _draw_proxies,
}
_NO_STATISTICS = frozenset({"fig1_params", "fig3_finetune"})  # data only: drawn without an analysis
# file stem -> (alternative sets of columns, one of which must be present; size in inches; drawer)
FIGURES: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[float, float], Drawer]] = {
    name: (needs, size, _DRAWERS[name]) for name, (needs, size) in FIGURE_SPECS.items()}


def draw_figure(name: str, records: Records, *, analysis: stats.StudyReport | None = None, seed: int = 0,
                **options: Any) -> tuple[Figure, int]:
    """Figure ``name`` of :data:`FIGURES`, uncaptioned, and the number of candidates it shows.

    Args:
        name: ``fig1_params``, ``fig3_finetune``, ... (the keys of :data:`FIGURES`).
        records: candidate records (:func:`robnet.search.records.read_records`).
        analysis: :func:`fspkit.stats.analyze` of the same records, whose numbers the figure shows
            (None: analysed here, with ``seed``).
        options: the drawer's own: ``stage`` (``after``/``before``) for ``fig7_fsp_depth``.

    Raises:
        ValueError: an unknown name, records without the figure's columns, an analysis without the part
            the figure shows.
    """
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of {', '.join(FIGURES)}")
    rows = _rows(records)
    if analysis is None and name not in _NO_STATISTICS:
        analysis = stats.analyze(rows, rng=seed)
    _, size, draw = FIGURES[name]
    fig = new_figure(*size)
    with plot_style():
        n = draw(rows, fig, analysis, **options)
    return fig, n


def make_figure(name: str, records: Records, context: Mapping[str, Any] | None = None, *,
                analysis: stats.StudyReport | None = None, seed: int = 0, **options: Any) -> Figure:
    """Figure ``name`` (:func:`draw_figure`) with its caption: n, the attack and the data (``context``:
    ``attack``, ``data``, ``n``; ``n`` defaults to the number of records)."""
    fig, n = draw_figure(name, records, analysis=analysis, seed=seed, **options)
    add_caption(fig, {"n": len(_rows(records)), **(context or {})}, n=n)
    return fig


def plot_all(records: Records, out_dir: str | Path, *, fmt: str = "png", context: Mapping[str, Any] | None = None,
             analysis: stats.StudyReport | None = None, seed: int = 0) -> list[Path]:
    """Write every figure of :data:`FIGURES` whose columns the records hold, as ``out_dir/<name>.<fmt>``.

    A figure whose columns are absent, or whose part of the analysis is missing, is skipped with a
    logged note.

    Args:
        records: candidate records (:func:`robnet.search.records.read_records`).
        out_dir: folder for the files (created).
        fmt: ``png``, ``pdf`` or ``svg``.
        context: caption facts (``attack``, ``data``, ``n``; ``n`` defaults to the number of records).
        analysis: :func:`fspkit.stats.analyze` of the same records (None: analysed once here, with ``seed``).
        seed: seed of that analysis.

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
        if analysis is None and name not in _NO_STATISTICS:
            analysis = stats.analyze(rows, rng=seed)
        try:
            fig = make_figure(name, rows, ctx, analysis=analysis)
        except ValueError as e:
            log.warning("%s: skipped, %s", name, e)
            continue
        written.append(save_figure(fig, out / f"{name}.{fmt}", fmt=fmt))
    return written


def plot_run(records: RecordSet, out_dir: str | Path, fmt: str = "png", *, seed: int = 0) -> list[Path]:
    """``fspkit plot RUN_DIR --out DIR``: every figure of a search's records (read with
    :func:`robnet.search.records.read_records`), from one analysis of them (seeded by ``seed``),
    captioned from the run's config; returns the written files."""
    from fspkit.plots.data import run_context

    analysis = stats.analyze(records.records, rng=seed, notes=records.notes)
    return plot_all(records.records, out_dir, fmt=fmt, context=run_context(records.source, n=len(records)),
                    analysis=analysis, seed=seed)


# A script's drawer: the records and the parsed options -> (a matplotlib Figure, the caption's n).
ScriptDrawer = Callable[[list[dict[str, Any]], "Namespace"], tuple[Any, int]]


def figure_script(argv: list[str] | None, *, doc: str, default_out: str, draw: ScriptDrawer,
                  seed_help: str | None = "seed of the analysis (bootstrap, permutations, t-SNE, folds)",
                  extra_args: Callable[[ArgumentParser], None] | None = None) -> int:
    """The ``main`` of a ``figures/`` script.

    Parses ``RESULTS [--out FILE]``, the options ``extra_args(parser)`` adds and ``[--seed N]``
    (default 0); loads the records (:func:`robnet.search.records.read_records`), draws
    ``draw(records, args)``, captions the figure from :func:`fspkit.plots.run_context`, saves it and
    prints its path.

    Returns:
        0, or 1 after printing ``error: ...`` on stderr (a ``ValueError`` or ``TypeError``).
    """
    import argparse
    import sys

    from fspkit.plots.data import run_context

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

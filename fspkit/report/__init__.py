"""The study report of ``fspkit demo``: ``report.md`` and ``report.html``.

:func:`write_report` turns a :class:`fspkit.stats.StudyReport`, the figures of :func:`fspkit.plots.plot_all`
and the facts of the run into two files with the same content:

1. at a glance: every claim's verdict with its deciding test, the columns it held fixed, its effect,
   interval, p-value and n, and which claims the run had the power to test (docs/study.md linked);
2. what was run (data, preset, candidates, attack, seeds, device, wall time) and the one-line
   command that reproduces it;
3. the measurement's noise (test-retest, noise ceiling, detectable effect, top-set stability) and the
   selected architecture's validation accuracy beside its held-out test accuracy;
4. each claim: this run's verdict beside what the paper reported, and every test behind it (the
   deciding one, the marginal one, secondary controls, sensitivity checks);
5. the proxy table with its free baselines and the FSP filter's value;
6. every figure with a caption, the full statistics tables, links to ``stats.json`` and the records.

The document is built once as blocks (:mod:`fspkit.report.document`) and rendered twice; nothing from
the data can become markup in either file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fspkit import stats
from fspkit.report import sections
from fspkit.report.document import Block, Fig, H, List, Pre, S, p, to_html, to_md
from robnet.io.files import atomic_write
from robnet.io.results import check_output_path

__all__ = ["CAPTIONS", "VERDICTS", "write_report"]

CAPTIONS: dict[str, str] = {
    "fig1_params": "Fig. 1. Parameters against final PGD accuracy of the evaluated candidates, one series per "
                   "conv budget.",
    "fig3_finetune": "Fig. 3. PGD accuracy with the inherited supernet weights against after finetuning (left), "
                     "and both distributions (right).",
    "fig4_finding1": "Fig. 4 (Finding #1). t-SNE of the genotype bits of the most and least robust candidates "
                     "(only from 100 points), the paper's classifier's weight per (edge, op), and the weights of "
                     "the classifier within strata of equal conv count, which decides the verdict.",
    "fig5_density": "Fig. 5 (Finding #1). Architecture density against PGD accuracy, coloured by conv count, "
                    "with the least-squares line and its 95% band; the marginal and the within-conv-count Spearman.",
    "fig6_direct_convs": "Fig. 6 (Finding #2). PGD accuracy against the number of convs on direct edges, one "
                         "series per conv budget: means with 95% t intervals (hollow: fewer than 3 candidates).",
    "fig7_fsp_depth": "Fig. 7 (Finding #3). Per cell, the correlation of the negated FSP distance with PGD "
                      "accuracy (deep cells shaded, Holm-significant starred), and the median distance of the "
                      "robust and non-robust candidates with 95% order-statistic intervals.",
    "fig7_filtering": "Fig. 7 (filter). PGD accuracy of all candidates and of those the FSP filter keeps, with the "
                      "filter's recall and its exact p-value against a random filter.",
    "proxy_table": "FSP distance against the cheap robustness proxies and the free baselines: sign-adjusted "
                   "Spearman with final PGD accuracy, recall of the true top candidates, cost per candidate.",
}
VERDICTS = sections.VERDICT_WORDS
# notes of the analysis shown under a claim: the prefixes of its parts
_NOTE_PREFIXES = {"f1_density": ("Finding #1 (density)", "capacity"), "f1_classifier": ("Finding #1 (classifier)",),
                  "f2_direct_edges": ("Finding #2",), "f3_fsp_deep": ("Finding #3",)}


def _link(path: str, out_dir: Path) -> str:
    target = Path(path)
    if target.is_absolute() and target.resolve().is_relative_to(out_dir.resolve()):
        return target.resolve().relative_to(out_dir.resolve()).as_posix()
    return target.as_posix()


def _png_width(path: Path) -> int | None:
    """A PNG's width in CSS pixels (96 per inch) at its designed size (saved at ``fspkit.plots.DPI``), so that
    every figure's fonts show at the same size; None for another format or an unreadable file."""
    from fspkit.plots import DPI

    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return round(int.from_bytes(head[16:20], "big") * 96 / DPI)


def _figures(figures: Sequence[Path], out_dir: Path) -> list[Block]:
    from fspkit.plots import FIGURES

    out: list[Block] = [H(2, "Figures")]
    if not figures:
        out.append(p("No figures were written for this run."))
    for f in figures:
        src = Path(os.path.relpath(Path(f).resolve(), out_dir.resolve())).as_posix()
        out.append(Fig(src, CAPTIONS.get(Path(f).stem, Path(f).stem), _png_width(Path(f))))
    missing = [name for name in FIGURES if name not in {Path(f).stem for f in figures}]
    if missing:
        out.append(p(f"Not drawn (the records lack their columns, or the analysis could not compute their part): "
                     f"{', '.join(missing)}."))
    return out


def _build(r: stats.StudyReport, figures: Sequence[Path], context: Mapping[str, Any], records_path: str,
           stats_path: str, extra: Mapping[str, Any], out_dir: Path) -> list[Block]:
    notes = {cid: [n for n in r.notes if n.startswith(prefixes)] for cid, prefixes in _NOTE_PREFIXES.items()}
    records = _link(records_path, out_dir)
    blocks: list[Block] = [H(1, "FSP study report: when NAS meets robustness, on this run"),
                           *sections.at_a_glance(r, out_dir), *sections.header(r, context, extra),
                           *sections.noise(r), *sections.selection(r), *sections.claims(r, notes),
                           *sections.proxies(r, extra), *_figures(figures, out_dir), H(2, "Statistics tables"),
                           p("Everything the analysis measured, as ", S("fspkit stats", "code"),
                             " prints it. Machine-readable: ", S("stats.json", "a", _link(stats_path, out_dir)),
                             "; the candidate records: ", S(records, "a", records), "."),
                           Pre(r.tables().rstrip("\n"))]
    other = [n for n in r.notes if not any(n in v for v in notes.values())]
    if other:
        blocks[-2:-2] = [H(2, "Notes"), List(tuple(f"Note: {n}" for n in other))]
    return blocks


def write_report(out_dir: str | os.PathLike[str], *, report: stats.StudyReport,
                 figures: Sequence[str | os.PathLike[str]], context: Mapping[str, Any], records_path: str,
                 stats_path: str, extra: Mapping[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` (same content; see the module docstring) into ``out_dir``.

    Both files are written atomically; figures are linked by their path relative to ``out_dir``
    (``figures/NAME.png`` for the figures of ``plot_all(records, out_dir / "figures")``).

    Args:
        out_dir: the run's output folder (created when missing).
        report: :func:`fspkit.stats.analyze` of the run's records.
        figures: the figure files (:func:`fspkit.plots.plot_all`), captioned by their stem.
        context: caption facts of the run (:func:`fspkit.plots.run_context`: ``data``, ``attack``).
        records_path, stats_path: the records and ``stats.json``, linked (relative to ``out_dir``
            when inside it).
        extra: facts for the header: ``command`` (the one line that reproduces the run), ``preset``,
            ``seed``/``seeds``, ``device``, ``wall_seconds``, ``search_seconds``, ``processes``,
            ``fsp_keep``, ``data``/``attack`` (override ``context``); any other key is listed as it is.

    Returns:
        The paths of ``report.md`` and ``report.html``.

    Raises:
        TypeError: ``report`` is not a StudyReport, or ``context``/``extra`` not a mapping.
        ValueError: an empty ``records_path``/``stats_path``, or an output path that cannot be written.
    """
    if not isinstance(report, stats.StudyReport):
        raise TypeError(f"write_report: report must be a fspkit.stats.StudyReport, got {type(report).__name__}; "
                        "hint: report = fspkit.stats.analyze(records)")
    for name, facts in (("context", context), ("extra", {} if extra is None else extra)):
        if not isinstance(facts, Mapping):
            raise TypeError(f"write_report: {name} must be a mapping (dict), got {type(facts).__name__}")
    for name, path in (("records_path", records_path), ("stats_path", stats_path)):
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"write_report: {name} must name the file to link, got {path!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"write_report: out_dir {out} is a file; expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = (check_output_path(out / n, what="report") for n in ("report.md", "report.html"))
    blocks = _build(report, [Path(f) for f in figures], context, records_path, stats_path, dict(extra or {}), out)
    atomic_write(md_path, to_md(blocks))
    atomic_write(html_path, to_html(blocks))
    return md_path, html_path

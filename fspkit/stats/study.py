"""The study of a search's records: every analysis whose columns the records hold, and the paper's claims
with this run's verdicts (docs/study.md).

``analyze(records)`` returns a :class:`StudyReport`: ``.to_dict()`` (strict JSON: ``fspkit stats --json``
writes it) and ``.tables()`` (readable text). The figures (:mod:`fspkit.plots`) and the report
(:mod:`fspkit.report`) read their numbers from it, never computing their own. Records are the
candidate records of :mod:`robnet.search.records` (:func:`robnet.search.records.read_records`); any
column may be missing (a ``robnet search`` run has no FSP or proxy columns), and the parts that need it
are skipped with a note saying why.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from fspkit.stats import classifier
from fspkit.stats.architecture import (
    CONV_BINS,
    DirectConvs,
    Finding2,
    conv_bins,
    direct_conv_counts,
    direct_convs_by_budget,
    finding2,
)
from fspkit.stats.claims import Claim
from fspkit.stats.classifier import N_PERM_FIT, Finding1
from fspkit.stats.classifier import finding1 as fit_finding1
from fspkit.stats.controls import Strata, capacity_strata, strata_sizes
from fspkit.stats.core import ALPHA, LEVEL, N_BOOT, N_PERM, RESAMPLE_MAX_N, column, has_column, list_column
from fspkit.stats.depth import PerCell, per_cell
from fspkit.stats.findings import Options, classifier_claim, density_claim, direct_claim, fsp_claim, untested
from fspkit.stats.noise import REFERENCE_EFFECT, Noise, measurement_noise
from fspkit.stats.proxies import BASELINES, PROXIES, ProxyTable, proxy_table
from fspkit.stats.regression import Regression, regress
from fspkit.stats.text import render
from robnet.io.results import to_jsonable
from robnet.search import records as R

__all__ = ["Selection", "StudyReport", "analyze"]

log = logging.getLogger(__name__)
Rows = list[Mapping[str, Any]]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """The selected architecture: its validation accuracy (the maximum of many noisy estimates, biased
    upward) beside its accuracy on the held-out test split, which no choice saw.

    Attributes:
        candidates: how many candidates it was chosen from; optimism: validation minus test PGD accuracy.
    """

    id: int | None
    genotype: str | None
    candidates: int
    validation_pgd_acc: float | None
    validation_ci: tuple[float, float]
    validation_clean_acc: float | None
    validation_n: int | None
    test_pgd_acc: float | None
    test_ci: tuple[float, float]
    test_clean_acc: float | None
    test_n: int | None
    optimism: float | None
    note: str


@dataclass(frozen=True, kw_only=True, eq=False)
class StudyReport:
    """Everything :func:`analyze` measured; a part is None when its columns were absent (see ``notes``).

    Attributes:
        claims: one per claim of the paper (``f1_density``, ``f1_classifier``, ``f2_direct_edges``,
            ``f3_fsp_deep``), each with its verdict, deciding test and the tests beside it.
        noise: the measurement's test-retest reliability, noise ceiling, detectable effect, top-set
            stability. selection: validation vs held-out test accuracy of the selected architecture.
        capacity: the strata of equal capacity the controlled tests use (column, note, sizes).
        finding1, finding1_controlled: the paper's classifier and the one within strata.
        finding2, direct_convs, regression: descriptions (Fig. 5, Fig. 6, OLS).
        per_cell, per_cell_before: Finding #3 by depth, finetuned and inherited weights.
        proxies: every cheap score and free baseline. settings: every setting of the analysis.
    """

    n_records: int
    n_evaluated: int
    n_filtered_out: int
    claims: tuple[Claim, ...]
    noise: Noise | None
    selection: Selection | None
    capacity: dict[str, Any]
    finding1: Finding1 | None
    finding1_controlled: Finding1 | None
    finding2: Finding2 | None
    direct_convs: DirectConvs | None
    regression: Regression | None
    per_cell: PerCell | None
    per_cell_before: PerCell | None
    proxies: ProxyTable | None
    notes: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain, strict-JSON-able data (NaN and infinities become null)."""
        return cast(dict[str, Any], to_jsonable(self))  # a dataclass maps to a dict

    def tables(self) -> str:
        """The report as readable text tables."""
        return render(self)

    def claim(self, cid: str) -> Claim:
        """The claim with id ``cid`` (``f1_density``, ...)."""
        for c in self.claims:
            if c.id == cid:
                return c
        raise KeyError(f"no claim {cid!r}; the claims are {', '.join(c.id for c in self.claims)}")


def _part(name: str, needs: Sequence[str], rows: Rows, notes: list[str], run: Callable[[Rows], Any]) -> Any:
    """Run one analysis on the rows that hold its columns; None with a note when it cannot run."""
    missing = [c for c in needs if not has_column(rows, c)]
    if missing:
        notes.append(f"{name}: skipped, column(s) {', '.join(missing)} absent from the records")
        return None
    try:
        return run([r for r in rows if all(r.get(c) is not None for c in needs)])
    except ValueError as e:
        notes.append(f"{name}: skipped, {e}")
        return None


def _regression(rows: Rows, notes: list[str], seed: int) -> Regression:
    cols = [c for c in (R.DENSITY, R.CONVS, R.DIRECT_CONVS) if has_column(rows, c)]
    varying = [c for c in cols if np.ptp(column(rows, c)) > 0]
    if len(varying) < len(cols):
        notes.append(f"regression: left out constant predictor(s) {sorted(set(cols) - set(varying))} "
                     "(e.g. convs under a fixed budget)")
    if not varying:
        raise ValueError("no varying predictor among density, convs, direct_convs")
    X = np.column_stack([column(rows, c) for c in varying])
    return regress(X, column(rows, R.PGD_ACC), varying, y_name=R.PGD_ACC, rng=seed)


def _direct(rows: Rows, seed: int, kw: dict[str, Any]) -> DirectConvs:
    """Fig. 6's groups: per budget, or per conv-count bin when no candidate has a budget."""
    keys: list[Any] = [r.get(R.BUDGET) for r in rows]
    labels: dict[int | None, str] | None = None
    if not has_column(rows, R.BUDGET) and has_column(rows, R.CONVS):
        keys = [int(k) for k in conv_bins(column(rows, R.CONVS))]
        labels = {i: label for i, (_, _, label) in enumerate(CONV_BINS)}
    return direct_convs_by_budget(direct_conv_counts(column(rows, R.DIRECT_CONVS)), keys, column(rows, R.PGD_ACC),
                                  rng=seed, labels=labels, **kw)


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def _split(part: Any) -> tuple[float | None, tuple[float, float], float | None, int | None]:
    part = part if isinstance(part, Mapping) else {}
    ci = part.get("pgd_acc_ci95")
    interval = (float(ci[0]), float(ci[1])) if isinstance(ci, Sequence) and len(ci) == 2 and all(
        _number(v) is not None for v in ci) else (math.nan, math.nan)
    n = part.get("n")
    return (_number(part.get(R.PGD_ACC)), interval, _number(part.get(R.CLEAN_ACC)),
            n if isinstance(n, int) and not isinstance(n, bool) else None)


def _selection(selection: Mapping[str, Any] | None, candidates: int) -> Selection | None:
    if selection is None:
        return None
    val, val_ci, val_clean, val_n = _split(selection.get("validation"))
    test, test_ci, test_clean, test_n = _split(selection.get("test"))
    sid, geno = selection.get(R.ID), selection.get(R.GENOTYPE)
    return Selection(id=sid if isinstance(sid, int) else None, genotype=geno if isinstance(geno, str) else None,
                     candidates=candidates, validation_pgd_acc=val, validation_ci=val_ci,
                     validation_clean_acc=val_clean, validation_n=val_n, test_pgd_acc=test, test_ci=test_ci,
                     test_clean_acc=test_clean, test_n=test_n,
                     optimism=None if val is None or test is None else val - test,
                     note="the validation accuracy is the highest of many noisy estimates, so it is biased upward; "
                          "the test accuracy is measured on images no choice saw")


def _check(records: Sequence[Mapping[str, Any]], rng: Any) -> np.random.Generator:
    if not records:
        raise ValueError("analyze: no records")
    if not has_column(records, R.PGD_ACC):
        raise ValueError(f"analyze: none of the {len(records)} records has a final PGD accuracy (pgd_acc); "
                         "hint: run the finetune stage first (`robnet search finetune RUN_DIR`)")
    if isinstance(rng, bool) or not isinstance(rng, int | np.random.Generator):
        raise TypeError(f"analyze: rng must be an int seed or a numpy.random.Generator, got {type(rng).__name__}")
    return np.random.default_rng(rng) if isinstance(rng, int) else rng


def _strata(rows: Rows, notes: list[str]) -> tuple[Strata | None, dict[str, Any]]:
    try:
        strata = capacity_strata(rows)
    except ValueError as e:
        notes.append(f"capacity control: {e}")
        return None, {}
    sizes = strata_sizes(strata.keys.tolist())
    return strata, {"column": strata.column, "note": strata.note, "strata": len(sizes), "sizes": sizes}


def _classifiers(rows: Rows, strata: Strata | None, o: Options, k: int | None, tsne: bool, seeds: list[int],
                 notes: list[str]) -> tuple[Finding1 | None, Finding1 | None, str]:
    marginal = _part("Finding #1 (classifier)", [R.BITS], rows, notes, lambda rs: fit_finding1(
        list_column(rs, R.BITS), column(rs, R.PGD_ACC), k=k, rng=seeds[0], n_perm=o.n_perm_fit, tsne=tsne))
    if strata is None or not has_column(rows, R.BITS):
        return marginal, None, "no bits or capacity recorded"
    try:
        controlled = fit_finding1(list_column(rows, R.BITS), column(rows, R.PGD_ACC), strata=strata.keys,
                                  rng=seeds[8], n_perm=o.n_perm_fit, tsne=False)
    except ValueError as e:
        return marginal, None, f"n = {len(rows)}, {e}"
    return marginal, controlled, ""


def _claims(rows: Rows, records: Sequence[Mapping[str, Any]], strata: Strata | None, parts: dict[str, Any],
            noise: Noise, o: Options, seeds: list[int]) -> tuple[Claim, ...]:
    gens = [np.random.default_rng(s) for s in seeds[9:12]]
    no_capacity = "capacity not recorded (no convs or budget column)"
    out = []
    if strata is None or not has_column(rows, R.DENSITY):
        out.append(untested("f1_density", no_capacity if strata is None else "density not recorded",
                            "Spearman within strata of equal capacity"))
    else:
        f2 = parts["finding2"]
        out.append(density_claim(rows, strata, None if f2 is None else f2.spearman, noise, o, gens[0]))
    if strata is None or not has_column(rows, R.BITS):
        out.append(untested("f1_classifier", no_capacity if strata is None else "bits not recorded",
                            "positive share of the identity-bit weights within strata"))
    else:
        out.append(classifier_claim(parts["finding1_controlled"], parts["why_not"], strata, parts["finding1"], noise))
    if strata is None or not has_column(rows, R.DIRECT_CONVS):
        out.append(untested("f2_direct_edges", no_capacity if strata is None else "direct_convs not recorded",
                            "Spearman of direct-edge convs within strata of equal conv count"))
    else:
        out.append(direct_claim(rows, strata, parts["direct_convs"], noise, o, gens[1]))
    pc = parts["per_cell"] or parts["per_cell_before"]
    if pc is None:
        out.append(untested("f3_fsp_deep", "no FSP distances recorded (a `robnet search` run records none; "
                                           "`fspkit search` does)", "Spearman per deep cell, Holm-corrected"))
    else:
        out.append(fsp_claim(pc, parts["per_cell_before"], rows, strata, noise, o, gens[2]))
    return tuple(out)


def analyze(records: Sequence[Mapping[str, Any]], *, rng: int | np.random.Generator = 0, k: int | None = None,
            n_boot: int = N_BOOT, n_perm: int = N_PERM, n_perm_fit: int = N_PERM_FIT, keep: float = 0.3,
            top: float = 0.1, tsne: bool = True, notes: Sequence[str] = (), selection: Mapping[str, Any] | None = None,
            level: float = LEVEL, resample_max_n: int | None = RESAMPLE_MAX_N) -> StudyReport:
    """Every analysis whose columns the records hold, and the paper's claims (module docstring).

    Each part gets its own seed drawn from ``rng`` up front, so skipping a part never changes the
    others. Analyses of final PGD accuracy use the candidates that have one (filtered-out ones do not).

    Args:
        records: candidate records (:func:`robnet.search.records.read_records`).
        rng: seed or generator of every bootstrap, permutation, fold split and t-SNE.
        k: Finding #1 group size (default 30% of the evaluated candidates).
        n_boot, n_perm: bootstrap resamples per interval, permutations per test.
        n_perm_fit: label permutations of the classifier (each refits it).
        keep, top: the proxy table's kept fraction and the true top fraction.
        tsne: compute Finding #1's t-SNE embedding (only from 100 points, on at most 1000).
        notes: what the reader of the records found (shown with the analysis's own notes).
        selection: ``selection.json`` of the search (validation and test accuracy of the best candidate).
        level: coverage of every interval. resample_max_n: above this n, large-sample formulas (None: never).

    Raises:
        ValueError: no records, or no record with a final PGD accuracy.
        TypeError: ``rng`` is neither an int nor a generator.
    """
    gen = _check(records, rng)
    seeds = [int(s) for s in gen.integers(0, 2**63 - 1, size=12)]
    found: list[str] = list(notes)
    n_filtered = sum(bool(r.get(R.FILTERED_OUT)) for r in records)
    if n_filtered:
        found.append(f"{n_filtered} candidates were filtered out before finetuning and have no final PGD accuracy; "
                     "the final-accuracy analyses use the finetuned ones only")
    rows: Rows = [r for r in records if r.get(R.PGD_ACC) is not None]
    o = Options(n_boot, n_perm, n_perm_fit, level, resample_max_n)
    kw: dict[str, Any] = {"n_boot": n_boot, "n_perm": n_perm, "level": level, "resample_max_n": resample_max_n}
    strata, capacity = _strata(rows, found)
    parts: dict[str, Any] = {}
    parts["finding1"], parts["finding1_controlled"], parts["why_not"] = _classifiers(rows, strata, o, k, tsne, seeds,
                                                                                      found)
    parts["finding2"] = _part("Finding #1 (density)", [R.DENSITY], rows, found, lambda rs: finding2(
        column(rs, R.DENSITY), column(rs, R.PGD_ACC), rng=seeds[1], **kw))
    parts["direct_convs"] = _part("Finding #2 (direct-edge convs)", [R.DIRECT_CONVS], rows, found,
                                  lambda rs: _direct(rs, seeds[2], kw))
    parts["regression"] = _part("regression", [R.DENSITY], rows, found, lambda rs: _regression(rs, found, seeds[3]))
    parts["per_cell"] = _part("Finding #3 (after finetuning)", [R.FSP], rows, found,
                              lambda rs: per_cell(rs, stage="after", rng=seeds[4], **kw))
    before = [r for r in records if r.get(R.FSP + R.BEFORE) is not None]
    parts["per_cell_before"] = _part("Finding #3 (inherited weights)", [R.FSP + R.BEFORE, R.PGD_ACC_BEFORE],
                                     before or list(records), found,
                                     lambda rs: per_cell(rs, stage="before", rng=seeds[5], **kw))
    parts["proxies"] = _proxies(records, found, seeds[6], keep, top, kw)
    noise = measurement_noise(records, top=top, n_boot=n_boot, rng=seeds[7], level=level)
    return StudyReport(n_records=len(records), n_evaluated=len(rows), n_filtered_out=n_filtered,
                       claims=_claims(rows, records, strata, parts, noise, o, seeds), noise=noise,
                       selection=_selection(selection, len(rows)), capacity=capacity, finding1=parts["finding1"],
                       finding1_controlled=parts["finding1_controlled"], finding2=parts["finding2"],
                       direct_convs=parts["direct_convs"], regression=parts["regression"], per_cell=parts["per_cell"],
                       per_cell_before=parts["per_cell_before"], proxies=parts["proxies"], notes=tuple(found),
                       settings=_settings(rng, k, keep, top, tsne, o))


def _proxies(records: Sequence[Mapping[str, Any]], notes: list[str], seed: int, keep: float, top: float,
             kw: dict[str, Any]) -> ProxyTable | None:
    specs = {**PROXIES, **BASELINES}
    measured = [p for p in PROXIES if has_column(records, PROXIES[p][0])]
    if not measured:
        notes.append(f"proxy table: skipped, none of {', '.join(c for c, _, _ in PROXIES.values())} in the records")
        return None
    names = measured + [b for b in BASELINES if has_column(records, specs[b][0])]
    return _part("proxy table", [], list(records), notes, lambda rs: proxy_table(rs, names, keep=keep, top=top,
                                                                                  rng=seed, **kw))


def _settings(rng: Any, k: int | None, keep: float, top: float, tsne: bool, o: Options) -> dict[str, Any]:
    return {"rng": rng if isinstance(rng, int) else "generator", "k": k, "n_boot": o.n_boot, "n_perm": o.n_perm,
            "n_perm_fit": o.n_perm_fit, "keep": keep, "top": top, "alpha": ALPHA, "level": o.level,
            "resample_max_n": o.resample_max_n, "reference_effect": REFERENCE_EFFECT, "tsne": tsne,
            "tsne_min_points": classifier.TSNE_MIN_POINTS, "tsne_max_points": classifier.TSNE_MAX_POINTS,
            "classifier_max_points": classifier.CLASSIFIER_MAX_POINTS}

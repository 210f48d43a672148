"""The candidate record's schema: its columns, their types and checks, one record's check.

The columns, with their types, are :data:`COLUMNS` (docs/search.md lists them); accuracies are
fractions in [0, 1], counts are integers, per-cell lists hold numbers (``null`` where a value is
undefined), and a missing final accuracy is ``null`` with the reason beside it
(``pgd_acc_missing``). :func:`check_record` checks every known column of one record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from robnet.models.genotype import NUM_EDGES, Genotype

SCHEMA_VERSION = 2  # 2: n_eval, finetune_epochs, pgd_acc_half, pgd_acc_retest
CONFIG_FILE = "search.json"
CANDIDATES_FILE = "candidates.json"

# ------------------------------------------------------------------------------------------ columns
ID = "id"
GENOTYPE = "genotype"
BITS = "bits"
BUDGET = "budget"
DENSITY = "density"
CONVS = "convs"
DIRECT_CONVS = "direct_convs"
PARAMS = "params"
FLOPS = "flops"
CLEAN_ACC = "clean_acc"
PGD_ACC = "pgd_acc"
CLEAN_ACC_BEFORE = "clean_acc_before_finetune"
PGD_ACC_BEFORE = "pgd_acc_before_finetune"
PGD_ACC_HALF = "pgd_acc_half"
PGD_ACC_RETEST = "pgd_acc_retest"
N_EVAL = "n_eval"
FINETUNE_EPOCHS = "finetune_epochs"
FILTERED_OUT = "filtered_out"
SEED = "seed"
CONFIG_HASH = "config_hash"
RANK = "rank"
VERSIONS = "versions"
FSP = "fsp"
FSP_REL = "fsp_rel"
FSP_SCALE = "fsp_scale"
FSP_DEEP = "fsp_deep"
FSP_STRIDED = "fsp_strided"
BEFORE = "_before_finetune"  # suffix of a column's value with the inherited weights
PROXY_PREFIX = "proxy_"
SECONDS_PREFIX = "seconds_"
MISSING_SUFFIX = "_missing"


class RecordError(ValueError):
    """A record, a record file or a run folder's file that does not hold what the schema says."""


# ------------------------------------------------------------------------------------------ value checks
# Each check returns the value (normalised) or raises ValueError with what was expected.


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"expected a number, got {show(v)}")
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v}")
    return v


def _fraction(v: Any) -> float:
    x = _number(v)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"expected a fraction in [0, 1], got {show(v)}")
    return x


def _nonneg(v: Any) -> float:
    x = _number(v)
    if x < 0:
        raise ValueError(f"expected a number >= 0, got {show(v)}")
    return x


def _count(v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # a CSV or another writer may store 12.0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"expected a whole number >= 0, got {show(v)}")
    return v


def _budget(v: Any) -> int:
    b = _count(v)
    if b > NUM_EDGES:
        raise ValueError(f"expected a budget of 0..{NUM_EDGES} sep-convs per cell, got {b}")
    return b


def _bits(v: Any) -> list[int]:
    if not isinstance(v, list) or not v or len(v) % (2 * NUM_EDGES):
        raise ValueError(f"expected a list of 0/1 bits, 28 per cell, got {show(v)}")
    if any(isinstance(b, bool) or b not in (0, 1) for b in v):
        raise ValueError(f"expected a list of 0/1 bits, got entries {sorted({str(b) for b in v} - {'0', '1'})[:3]}")
    return v


def _genotype(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a genotype string, got {show(v)}")
    try:
        Genotype.parse(v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"not a valid genotype ({e})") from None
    return v


def _cells(v: Any) -> list[float | None]:
    if not isinstance(v, list) or not v:
        raise ValueError(f"expected a non-empty list of per-cell numbers, got {show(v)}")
    for x in v:
        if x is not None:
            _number(x)
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {show(v)}")
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {show(v)}")
    return v


def _mapping(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError(f"expected an object, got {show(v)}")
    return v


def show(v: Any) -> str:
    """``v`` as a message shows it: JSON for plain values (cut at 40 characters), else its type."""
    text = json.dumps(v) if isinstance(v, str | int | float | bool | type(None)) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


class Column(NamedTuple):
    """One column of the candidate record: its check, whether ``null`` is allowed, what it holds."""

    check: Callable[[Any], Any]
    nullable: bool
    doc: str

    @property
    def holds_text(self) -> bool:
        """Whether the column holds text (a CSV cell of it is never read as a number)."""
        return self.check in (_genotype, _text)


_ACC = "accuracy on the search's validation images (never the test set)"
COLUMNS: dict[str, Column] = {
    ID: Column(_count, False, "candidate id (its index in candidates.json)"),
    GENOTYPE: Column(_genotype, False, "the architecture (robnet.models.Genotype string form)"),
    BITS: Column(_bits, False, "the genotype's bits, 28 per cell, identity bit first per edge"),
    BUDGET: Column(_budget, True, "sep-convs per cell the candidate was sampled with (null: unconstrained)"),
    DENSITY: Column(_fraction, False, "architecture density, paper Eq. 2 (mean over cells)"),
    CONVS: Column(_nonneg, False, "sep-convs per cell (mean over cells)"),
    DIRECT_CONVS: Column(_nonneg, False, "sep-convs on direct edges per cell (mean over cells)"),
    PARAMS: Column(_count, False, "parameters of the standalone network"),
    FLOPS: Column(_count, False, "multiply-adds of one forward pass on one image"),
    CLEAN_ACC: Column(_fraction, True, f"clean {_ACC}, after finetuning (null: not finetuned, see _missing)"),
    PGD_ACC: Column(_fraction, True, f"PGD {_ACC}, after finetuning (null: not finetuned, see _missing)"),
    CLEAN_ACC_BEFORE: Column(_fraction, False, f"clean {_ACC} with the inherited supernet weights"),
    PGD_ACC_BEFORE: Column(_fraction, False, f"PGD {_ACC} with the inherited supernet weights"),
    PGD_ACC_HALF: Column(_fraction, True, "PGD accuracy after finetuning on the first half of the validation "
                                          "images (the retest's pair; null without a retest)"),
    PGD_ACC_RETEST: Column(_fraction, True, "PGD accuracy after finetuning measured again on the second half of "
                                            "the validation images with a fresh attack seed (null: no retest)"),
    N_EVAL: Column(_count, False, "validation images behind each accuracy"),
    FINETUNE_EPOCHS: Column(_count, False, "finetuning epochs the candidate got (0 when filtered out)"),
    FILTERED_OUT: Column(_flag, False, "dropped by the candidate filter before finetuning"),
    SEED: Column(_count, False, "the candidate's seed (every random choice of its evaluation derives from it)"),
    CONFIG_HASH: Column(_text, False, "hash of the search config that produced the record"),
    RANK: Column(_count, False, "the process that wrote the record"),
    VERSIONS: Column(_mapping, False, "package versions"),
    FSP: Column(_cells, True, "per-cell clean-vs-adversarial FSP distance after finetuning (fspkit)"),
    FSP_REL: Column(_cells, True, "per-cell relative FSP distance after finetuning (fspkit)"),
    FSP_SCALE: Column(_cells, True, "per-cell clean FSP scale ||G(x)||^2 after finetuning (fspkit)"),
    FSP_DEEP: Column(_nonneg, True, "mean FSP distance of the deep cells after finetuning (fspkit)"),
    FSP_STRIDED: Column(_cells, True, "per-cell FSP distance after finetuning, maps aligned by strided subsampling "
                                      "instead of average pooling (fspkit)"),
}
for _name in (FSP, FSP_REL, FSP_SCALE, FSP_DEEP, FSP_STRIDED):
    _col = COLUMNS[_name]
    COLUMNS[_name + BEFORE] = Column(_col.check, True, _col.doc.replace("after finetuning", "with inherited weights"))
# Column families checked by prefix / suffix: proxies and timings are numbers, reasons are text.
PREFIXES: dict[str, Column] = {
    PROXY_PREFIX: Column(_number, True, "a zero-cost proxy's score with the inherited weights (fspkit)"),
    SECONDS_PREFIX: Column(_nonneg, True, "seconds a step took"),
}
REQUIRED = (ID, GENOTYPE, PGD_ACC)  # what a record from a search run folder always has


def column(name: str) -> Column | None:
    """The column ``name`` (by family for proxies, timings and ``*_missing`` reasons); None if unknown."""
    if name in COLUMNS:
        return COLUMNS[name]
    if name.endswith(MISSING_SUFFIX):
        return Column(_text, False, "why the value beside it is null")
    return next((c for p, c in PREFIXES.items() if name.startswith(p)), None)


def check_record(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``record`` with every known column checked (unknown columns are kept as they are).

    Args:
        record: one candidate's record.
        where: how messages name it, e.g. ``"run/records.rank0.jsonl: line 3"``.

    Raises:
        RecordError: one line naming ``where``, the column and what was expected.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"{where}: expected a JSON object per candidate, got {show(record)}")
    out = dict(record)
    for name, value in record.items():
        col = column(name)
        if col is None or (value is None and col.nullable):
            continue
        try:
            out[name] = col.check(value)
        except ValueError as e:
            raise RecordError(f"{where}, column {name!r}: {e}") from None
    return out

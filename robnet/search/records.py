"""The candidate record: the one schema of a search's results, and the one reader of them.

A search writes one JSON object per candidate (``records.rank{R}.jsonl`` in its run folder, one
file per process); ``fspkit search`` adds its FSP and proxy columns; the statistics, plots, report
and study read records through :func:`read_records`, which also takes JSON Lines and CSV files
made elsewhere. The columns, with their types, are :data:`COLUMNS` (docs/search.md lists them);
accuracies are fractions in [0, 1], counts are integers, per-cell lists hold numbers (``null``
where a value is undefined), and a missing final accuracy is ``null`` with the reason beside it
(``pgd_acc_missing``). Every value is checked when read: anything else is one ``RecordError``
naming the file, the line and the column (or, with ``skip_invalid``, the record is skipped and
counted).

This module imports no torch: statistics on 100,000 records need none.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import operator
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from robnet.io.results import read_jsonl
from robnet.models.genotype import NUM_EDGES, Genotype

__all__ = [
    "COLUMNS", "SCHEMA_VERSION", "Column", "RecordError", "RecordSet", "check_record", "read_candidates",
    "read_json_object", "read_records", "read_search_json", "read_shards", "records_path", "scores_path",
]

log = logging.getLogger(__name__)

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
        raise ValueError(f"expected a number, got {_show(v)}")
    if not math.isfinite(v):
        raise ValueError(f"expected a finite number, got {v}")
    return v


def _fraction(v: Any) -> float:
    x = _number(v)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"expected a fraction in [0, 1], got {_show(v)}")
    return x


def _nonneg(v: Any) -> float:
    x = _number(v)
    if x < 0:
        raise ValueError(f"expected a number >= 0, got {_show(v)}")
    return x


def _count(v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # a CSV or another writer may store 12.0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"expected a whole number >= 0, got {_show(v)}")
    return v


def _integer(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {_show(v)}")
    return v


def _budget(v: Any) -> int:
    b = _count(v)
    if b > NUM_EDGES:
        raise ValueError(f"expected a budget of 0..{NUM_EDGES} sep-convs per cell, got {b}")
    return b


def _bits(v: Any) -> list[int]:
    if not isinstance(v, list) or not v or len(v) % (2 * NUM_EDGES):
        raise ValueError(f"expected a list of 0/1 bits, 28 per cell, got {_show(v)}")
    if any(isinstance(b, bool) or b not in (0, 1) for b in v):
        raise ValueError(f"expected a list of 0/1 bits, got entries {sorted({str(b) for b in v} - {'0', '1'})[:3]}")
    return v


def _genotype(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a genotype string, got {_show(v)}")
    try:
        Genotype.parse(v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"not a valid genotype ({e})") from None
    return v


def _cells(v: Any) -> list[float | None]:
    if not isinstance(v, list) or not v:
        raise ValueError(f"expected a non-empty list of per-cell numbers, got {_show(v)}")
    for x in v:
        if x is not None:
            _number(x)
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {_show(v)}")
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_show(v)}")
    return v


def _mapping(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError(f"expected an object, got {_show(v)}")
    return v


def _show(v: Any) -> str:
    text = json.dumps(v) if isinstance(v, str | int | float | bool | type(None)) else type(v).__name__
    return text if len(text) <= 40 else text[:37] + "..."


class Column(NamedTuple):
    """One column of the candidate record: its check, whether ``null`` is allowed, what it holds."""

    check: Callable[[Any], Any]
    nullable: bool
    doc: str


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


def _column(name: str) -> Column | None:
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
        raise RecordError(f"{where}: expected a JSON object per candidate, got {_show(record)}")
    out = dict(record)
    for name, value in record.items():
        col = _column(name)
        if col is None or (value is None and col.nullable):
            continue
        try:
            out[name] = col.check(value)
        except ValueError as e:
            raise RecordError(f"{where}, column {name!r}: {e}") from None
    return out


# ------------------------------------------------------------------------------------------ run folders


def records_path(run: Path, rank: int) -> Path:
    """The final records shard of process ``rank``."""
    return run / f"records.rank{rank}.jsonl"


def scores_path(run: Path, rank: int) -> Path:
    """The first-pass (inherited weights) shard of process ``rank``."""
    return run / f"scores.rank{rank}.jsonl"


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding one object (a run folder's ``search.json``, ``selection.json``, ...).

    Raises:
        RecordError: missing, unreadable, or not an object, naming the file.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RecordError(f"{path} is unreadable ({e}); was it edited by hand?") from None
    if not isinstance(value, dict):
        raise RecordError(f"{path}: expected a JSON object, got {_show(value)}")
    return value


def read_search_json(run: str | os.PathLike[str]) -> dict[str, Any]:
    """A run folder's ``search.json`` (config, plugin settings, config hash, invocations), checked.

    Raises:
        RecordError: missing, unreadable, or without the keys a search writes (naming the key).
    """
    path = Path(run) / CONFIG_FILE
    data = read_json_object(path)
    for key, kind in (("config", dict), ("config_hash", str)):
        if not isinstance(data.get(key), kind):
            raise RecordError(f"{path}: {key!r} should be a {'JSON object' if kind is dict else 'string'}, got "
                              f"{_show(data.get(key)) if key in data else 'nothing'}; was it edited by hand? "
                              "Hint: restore it, or start the search in another --out")
    plugin = data.setdefault("plugin", {})
    if not isinstance(plugin, dict):
        raise RecordError(f"{path}: 'plugin' should be a JSON object, got {_show(plugin)}")
    if not isinstance(data.setdefault("invocations", []), list):
        raise RecordError(f"{path}: 'invocations' should be a list")
    return data


def read_candidates(run: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``candidates.json``'s ``[{"id": i, "genotype": "..."}]`` in id order, checked.

    Raises:
        RecordError: missing, unreadable, a missing ``candidates`` key, ids that are not 0..n-1 in
            order, an invalid genotype (naming the candidate).
    """
    path = Path(run) / CANDIDATES_FILE
    data = read_json_object(path)
    cands = data.get("candidates")
    if not isinstance(cands, list):
        got = _show(cands) if "candidates" in data else "no such key"
        raise RecordError(f"{path}: expected a 'candidates' list, got {got}; was it edited by hand? Hint: delete it "
                          "and rerun the sample stage")
    for i, c in enumerate(cands):
        checked = check_record(c, f"{path}: candidate {i}")
        if checked.get(ID) != i or GENOTYPE not in checked:
            raise RecordError(f"{path}: candidate {i} should be {{'id': {i}, 'genotype': ...}}, got {_show(c)}")
    return cands


def _jsonl_records(path: Path, *, repair: bool) -> Iterator[tuple[int, Any]]:
    try:
        read = read_jsonl(path, repair=repair)
    except UnicodeDecodeError:
        raise RecordError(f"{path} is not a JSON Lines text file (it holds bytes that are not UTF-8)") from None
    except ValueError as e:
        raise RecordError(str(e)) from None
    yield from read.numbered


def read_shards(run: str | os.PathLike[str], kind: str, *, config_hash: str, repair_rank: int | None = None,
                key: Callable[[dict[str, Any]], Any] = operator.itemgetter(ID)) -> dict[Any, dict[str, Any]]:
    """Every process's ``kind`` shard (``records``, ``scores``, ``rungs``) of a run folder, by ``key``
    (the candidate id; successive halving's rungs: ``(id, epoch)``).

    Only this process's own shard (``repair_rank``) has a torn last line cut off: other processes
    may be writing theirs. The first record of a key wins (a warning counts duplicates).

    Raises:
        RecordError: a malformed record, or one written by another search config (naming the file
            and line: two searches' records must never be analysed as one).
    """
    folder = Path(run)
    out: dict[Any, dict[str, Any]] = {}
    duplicates = 0
    for f in sorted(folder.glob(f"{kind}.rank*.jsonl")):
        own = repair_rank is not None and f.name == f"{kind}.rank{repair_rank}.jsonl"
        for line, raw in _jsonl_records(f, repair=own):
            where = f"{f}: line {line}"
            rec = check_record(raw, where)
            if ID not in rec:
                raise RecordError(f"{where}: the record has no 'id'; was the file edited by hand?")
            if rec.get(CONFIG_HASH) != config_hash:
                raise RecordError(f"{where}: a record of another search (config_hash {rec.get(CONFIG_HASH)!r}, this "
                                  f"folder's is {config_hash!r}); records of two searches must not be mixed. Hint: "
                                  "move the file out of the run folder")
            duplicates += key(rec) in out
            out.setdefault(key(rec), rec)
    if duplicates:
        log.warning("%s: %d duplicate %s record(s); kept the first of each id", folder, duplicates, kind)
    return out


# ------------------------------------------------------------------------------------------ the reader


@dataclass
class RecordSet:
    """What :func:`read_records` found.

    Attributes:
        records: the candidates' records, sorted by id.
        source: the folder or file read.
        config_hashes: the search config(s) the records come from, with their counts.
        expected: candidates the search sampled (run folders; None for a loose file).
        skipped: one line per record left out by ``skip_invalid``.
        notes: what a reader of the analysis should know (ids from row order, ...).
    """

    records: list[dict[str, Any]]
    source: Path
    config_hashes: dict[str, int] = field(default_factory=dict)
    expected: int | None = None
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Candidates of the search without a final record yet (0 for a loose file)."""
        return 0 if self.expected is None else max(0, self.expected - len(self.records))

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)


def _csv_cell(name: str, text: str) -> Any:
    s = text.strip()
    col = _column(name)
    if s == "" or s.lower() in ("null", "none", "nan"):
        return None
    if col is not None and col.check in (_genotype, _text):
        return s
    if s[0] in "[{":
        try:
            return json.loads(s)
        except json.JSONDecodeError as e:
            raise ValueError(f"{s[:40]!r} is not valid JSON ({e.msg}); list columns hold JSON text like "
                             "[0.1, 0.2]") from None
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    for convert in (int, float):
        try:
            return convert(s)
        except ValueError:
            pass
    return s


def _csv_records(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: the byte-order mark spreadsheets write
    except UnicodeDecodeError:
        raise RecordError(f"{path} is not a CSV text file (it holds bytes that are not UTF-8)") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        return
    header = [h.strip() for h in header]
    dup = [h for h, n in Counter(header).items() if n > 1]
    if dup:
        raise RecordError(f"{path}: line 1 names column {dup[0]!r} twice; each column must appear once")
    for line, row in enumerate(reader, 2):
        if not row:
            continue
        if len(row) != len(header):
            raise RecordError(f"{path}: line {line} has {len(row)} cells, the header has {len(header)}")
        out = {}
        for name, cell in zip(header, row, strict=True):
            try:
                out[name] = _csv_cell(name, cell)
            except ValueError as e:
                raise RecordError(f"{path}: line {line}, column {name!r}: {e}") from None
        yield line, out


def _files(source: Path) -> tuple[list[Path], dict[str, Any] | None]:
    if not source.exists():
        raise RecordError(f"records: {source} does not exist; expected a run folder, a .jsonl or a .csv file")
    if source.is_dir():
        info = read_search_json(source) if (source / CONFIG_FILE).exists() else None
        files = sorted(source.glob("records.rank*.jsonl"))
        if not files:
            raise RecordError(f"records: folder {source} holds no records.rank*.jsonl shard; expected the run "
                              "folder of `robnet search` / `fspkit search` (has the finetune stage run?)")
        return files, info
    if source.suffix not in (".jsonl", ".csv"):
        raise RecordError(f"records: {source} has suffix {source.suffix!r}; expected a run folder, a .jsonl or "
                          "a .csv file")
    return [source], None


def _checked(source: Path, skip_invalid: bool, skipped: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    files, info = _files(source)
    for f in files:
        rows: Iterable[tuple[int, Any]] = _csv_records(f) if f.suffix == ".csv" else _jsonl_records(f, repair=False)
        for line, raw in rows:
            where = f"{f}: line {line}"
            try:
                rec = check_record(raw, where)
                if info is not None and ID not in rec:
                    raise RecordError(f"{where}: the record has no 'id'; was the file edited by hand?")
            except RecordError as e:
                if not skip_invalid:
                    raise
                skipped.append(str(e))
                continue
            yield where, rec


def _select_config(out: RecordSet, config_hash: str | None, allow_mixed: bool, folder_hash: str | None,
                   wheres: list[str]) -> None:
    hashes = Counter(str(r[CONFIG_HASH]) for r in out.records if r.get(CONFIG_HASH) is not None)
    if folder_hash is not None:
        bad = next((w for w, r in zip(wheres, out.records, strict=True)
                    if r.get(CONFIG_HASH) not in (None, folder_hash)), None)
        if bad is not None:
            raise RecordError(f"{bad}: a record of another search (config_hash differs from the folder's "
                              f"{folder_hash}); two searches must not be analysed as one. Hint: move the file out")
    elif config_hash is not None:
        if config_hash not in hashes:
            raise RecordError(f"{out.source}: no record has config_hash {config_hash!r}; it holds "
                              f"{', '.join(f'{h} ({n})' for h, n in hashes.most_common()) or 'none'}")
        out.records = [r for r in out.records if r.get(CONFIG_HASH) == config_hash]
        out.notes.append(f"kept the {len(out.records)} records of config {config_hash}")
    elif len(hashes) > 1 and not allow_mixed:
        shown = ", ".join(f"{h} ({n} records)" for h, n in hashes.most_common())
        raise RecordError(f"{out.source} holds the records of {len(hashes)} searches: {shown}. Hint: name one with "
                          "--config-hash, or pass --allow-mixed to analyse them together on purpose")
    out.config_hashes = dict(hashes)


def _assign_ids(out: RecordSet, wheres: list[str]) -> None:
    with_id = [ID in r for r in out.records]
    if out.records and not any(with_id):
        for i, r in enumerate(out.records):
            r[ID] = i
        out.notes.append("the records have no 'id' column: the row order is the id")
        return
    if not all(with_id):
        raise RecordError(f"{wheres[with_id.index(False)]}: the record has no 'id' while others have one")
    counts = Counter(r[ID] for r in out.records)
    if any(n > 1 for n in counts.values()):
        dup = sum(n - 1 for n in counts.values())
        log.warning("records: %d duplicate id(s) in %s; kept the first of each", dup, out.source)
        first: dict[int, dict[str, Any]] = {}
        for r in out.records:
            first.setdefault(r[ID], r)
        out.records = list(first.values())
    out.records.sort(key=lambda r: r[ID])


def read_records(source: str | os.PathLike[str], *, config_hash: str | None = None, allow_mixed: bool = False,
                 skip_invalid: bool = False) -> RecordSet:
    """The candidate records of a run folder (every rank's ``records.rank*.jsonl``), a ``.jsonl`` or a
    ``.csv`` file, every value checked against :data:`COLUMNS`, sorted by id.

    A run folder's records must all come from its own search config; a loose file holding the
    records of several configs is refused unless ``config_hash`` names the one to keep or
    ``allow_mixed`` says mixing is intended. A loose file without an ``id`` column gets the row
    order as ids. A run folder still being searched gives the records so far (``missing``).

    Args:
        source: the run folder or the file.
        config_hash: keep only the records of this search config (loose files).
        allow_mixed: analyse the records of several configs together (loose files).
        skip_invalid: skip (and count in ``skipped``) a record that fails a check instead of raising.

    Raises:
        RecordError: one line naming the file, line and column of the first bad value, or what else
            is wrong (no records, mixed configs, ...).
    """
    src = Path(source)
    out = RecordSet(records=[], source=src)
    wheres: list[str] = []
    for where, rec in _checked(src, skip_invalid, out.skipped):
        wheres.append(where)
        out.records.append(rec)
    if not out.records:
        raise RecordError(f"records: {src} holds no records" + (f" ({len(out.skipped)} skipped as invalid)"
                                                                 if out.skipped else ""))
    info = read_search_json(src) if src.is_dir() and (src / CONFIG_FILE).exists() else None
    _select_config(out, config_hash, allow_mixed, None if info is None else info["config_hash"], wheres)
    _assign_ids(out, wheres)
    if src.is_dir() and (src / CANDIDATES_FILE).exists():
        out.expected = len(read_candidates(src))
    if out.skipped:
        out.notes.append(f"{len(out.skipped)} invalid record(s) skipped (--skip-invalid); the first: {out.skipped[0]}")
    if out.missing:
        out.notes.append(f"the search is incomplete: {len(out.records)} of {out.expected} candidates finished, "
                         f"{out.missing} still missing")
    return out

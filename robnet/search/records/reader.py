"""The one reader of candidate records: a run folder's shards, or JSON Lines and CSV files made
elsewhere, every value checked against the schema."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .folder import jsonl_records, read_candidates, read_search_json
from .schema import CANDIDATES_FILE, CONFIG_FILE, CONFIG_HASH, ID, RecordError, check_record, column

log = logging.getLogger(__name__)


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
    col = column(name)
    if s == "" or s.lower() in ("null", "none", "nan"):
        return None
    if col is not None and col.holds_text:
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
        rows: Iterable[tuple[int, Any]] = _csv_records(f) if f.suffix == ".csv" else jsonl_records(f, repair=False)
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

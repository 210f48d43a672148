"""The files of a search's run folder, read and checked: ``search.json``, ``candidates.json`` and
every process's shards (``records``, ``scores``, ``rungs``)."""

from __future__ import annotations

import json
import logging
import operator
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from robnet.io.results import read_jsonl

from .schema import CANDIDATES_FILE, CONFIG_FILE, CONFIG_HASH, GENOTYPE, ID, RecordError, check_record, show

log = logging.getLogger(__name__)


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
        raise RecordError(f"{path}: expected a JSON object, got {show(value)}")
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
                              f"{show(data.get(key)) if key in data else 'nothing'}; was it edited by hand? "
                              "Hint: restore it, or start the search in another --out")
    plugin = data.setdefault("plugin", {})
    if not isinstance(plugin, dict):
        raise RecordError(f"{path}: 'plugin' should be a JSON object, got {show(plugin)}")
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
        got = show(cands) if "candidates" in data else "no such key"
        raise RecordError(f"{path}: expected a 'candidates' list, got {got}; was it edited by hand? Hint: delete it "
                          "and rerun the sample stage")
    for i, c in enumerate(cands):
        checked = check_record(c, f"{path}: candidate {i}")
        if checked.get(ID) != i or GENOTYPE not in checked:
            raise RecordError(f"{path}: candidate {i} should be {{'id': {i}, 'genotype': ...}}, got {show(c)}")
    return cands


def jsonl_records(path: Path, *, repair: bool) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` of a JSON Lines file (``repair``: cut off a torn last line).

    Raises:
        RecordError: not UTF-8 text, or a line that is not JSON (naming the file and line).
    """
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
        for line, raw in jsonl_records(f, repair=own):
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

"""robnet.search.records: the one schema of candidate records and its reader, against every malformed
input a person may hand it (values that are not what they claim, two searches mixed, files edited by
hand or written by a spreadsheet)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from robnet.io import results
from robnet.search import records as R
from robnet.search.records import RecordError, check_record, read_candidates, read_records, read_search_json

GOOD = {"id": 0, "genotype": "11 11 11 11 11 01 11 01 10 11 01 01 01 11", "bits": [1, 1] * 5 + [0, 1] + [1] * 16,
        "density": 0.5, "convs": 7, "direct_convs": 2, "budget": 7, "params": 100, "flops": 1000, "clean_acc": 0.75,
        "pgd_acc": 0.5, "pgd_acc_before_finetune": 0.25, "n_eval": 4, "fsp": [1.0, 2.0, None], "filtered_out": False,
        "proxy_synflow": 3.5, "seconds_finetune": 1.0, "config_hash": "aaaa"}


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{**GOOD, "id": i, "pgd_acc": i / (n + 1), **extra} for i in range(n)]


def test_a_good_record_passes_unchanged():
    assert check_record(GOOD, "x") == GOOD


@pytest.mark.parametrize(("column", "value", "expected"), [
    ("pgd_acc", "0.5", 'expected a number, got "0.5"'),  # a string is not an accuracy
    ("pgd_acc", 7.5, "expected a fraction in [0, 1], got 7.5"),
    ("pgd_acc", True, "expected a number, got true"),  # JSON true is not 1
    ("pgd_acc", 1e308, "expected a fraction in [0, 1], got 1e+308"),
    ("clean_acc", -0.1, "expected a fraction in [0, 1], got -0.1"),
    ("fsp", "oops", 'expected a non-empty list of per-cell numbers, got "oops"'),  # not 4 characters
    ("fsp", [1.0, "a"], 'expected a number, got "a"'),
    ("id", "2", 'expected a whole number >= 0, got "2"'),
    ("params", 1.5, "expected a whole number >= 0, got 1.5"),
    ("budget", 15, "expected a budget of 0..14 sep-convs per cell, got 15"),
    ("bits", [0, 1, 2] * 10, "expected a list of 0/1 bits, 28 per cell"),
    ("genotype", "11 01", "not a valid genotype (cell 0: expected 14 edge codes, got 2)"),
    ("filtered_out", "no", 'expected true or false, got "no"'),
    ("proxy_naswot", "high", 'expected a number, got "high"'),
    ("seconds_eval", -1, "expected a number >= 0, got -1"),
])
def test_every_malformed_value_is_one_line_naming_where_and_what(column, value, expected):
    with pytest.raises(RecordError, match=re.escape(f"run/records.rank0.jsonl: line 3, column {column!r}: {expected}")):
        check_record({**GOOD, column: value}, "run/records.rank0.jsonl: line 3")


def test_null_where_the_schema_allows_it_and_unknown_columns_kept():
    rec = {**GOOD, "pgd_acc": None, "pgd_acc_missing": "filtered out", "budget": None, "my_column": {"x": 1}}
    assert check_record(rec, "x") == rec
    with pytest.raises(RecordError, match="column 'density': expected a number, got null"):
        check_record({**GOOD, "density": None}, "x")


def test_a_bad_value_in_a_file_names_file_and_line(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", [*_rows(2), {**GOOD, "id": 2, "pgd_acc": "high"}])
    with pytest.raises(RecordError, match=re.escape(f"{path}: line 3, column 'pgd_acc': expected a number, got "
                                                    '"high"')):
        read_records(path)
    # with --skip-invalid the record is skipped and counted
    got = read_records(path, skip_invalid=True)
    assert [r["id"] for r in got] == [0, 1] and len(got.skipped) == 1
    assert got.notes[0].startswith("1 invalid record(s) skipped (--skip-invalid); the first: ")


def test_two_searches_in_one_file_are_refused_unless_named_or_allowed(tmp_path):
    path = _jsonl(tmp_path / "r.jsonl", _rows(3) + [{**r, "id": r["id"] + 10, "config_hash": "bbbb"} for r in _rows(2)])
    with pytest.raises(RecordError, match=re.escape(f"{path} holds the records of 2 searches: aaaa (3 records), bbbb "
                                                    "(2 records). Hint: name one with --config-hash, or pass "
                                                    "--allow-mixed")):
        read_records(path)
    assert [r["id"] for r in read_records(path, config_hash="bbbb")] == [10, 11]
    assert len(read_records(path, allow_mixed=True)) == 5
    with pytest.raises(RecordError, match="no record has config_hash 'cccc'; it holds aaaa \\(3\\), bbbb \\(2\\)"):
        read_records(path, config_hash="cccc")


def _run_folder(tmp_path: Path, n_candidates: int, records: list[dict[str, Any]]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    results.write_json(run / R.CONFIG_FILE, {"config": {"data": "digits"}, "config_hash": "aaaa", "plugin": {},
                                             "invocations": []})
    results.write_json(run / R.CANDIDATES_FILE, {"candidates": [{"id": i, "genotype": GOOD["genotype"]}
                                                                for i in range(n_candidates)]})
    _jsonl(run / "records.rank0.jsonl", records)
    return run


def test_a_run_folder_refuses_another_searchs_records_and_counts_the_missing(tmp_path):
    run = _run_folder(tmp_path, 5, _rows(3))
    got = read_records(run)
    assert (len(got), got.expected, got.missing) == (3, 5, 2)
    assert "the search is incomplete: 3 of 5 candidates finished, 2 still missing" in got.notes
    _jsonl(run / "records.rank1.jsonl", [{**GOOD, "id": 3, "config_hash": "bbbb"}])  # another search's shard
    with pytest.raises(RecordError, match=re.escape(f"{run / 'records.rank1.jsonl'}: line 1: a record of another "
                                                    "search (config_hash differs from the folder's aaaa)")):
        read_records(run)


def test_a_record_without_an_id(tmp_path):
    # a run folder's records must have one
    run = _run_folder(tmp_path, 2, [_rows(1)[0], {k: v for k, v in GOOD.items() if k != "id"}])
    with pytest.raises(RecordError, match=re.escape(f"{run / 'records.rank0.jsonl'}: line 2: the record has no 'id'")):
        read_records(run)
    # a file from elsewhere without an id column: the row order is the id
    rows = [{k: v for k, v in r.items() if k != "id"} for r in _rows(3)]
    got = read_records(_jsonl(tmp_path / "no_id.jsonl", rows))
    assert [r["id"] for r in got] == [0, 1, 2] and "the row order is the id" in got.notes[0]
    # some with, some without: refused
    with pytest.raises(RecordError, match="line 2: the record has no 'id' while others have one"):
        read_records(_jsonl(tmp_path / "mixed.jsonl", [_rows(1)[0], rows[1]]))


def _csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def test_csv_as_spreadsheets_write_it(tmp_path):
    text = "id,genotype,pgd_acc,fsp\n0,11 11 11 11 11 01 11 01 10 11 01 01 01 11,0.5,\"[1.0, 2.0]\"\n"
    got = read_records(_csv(tmp_path / "bom.csv", text, bom=True))  # the byte-order mark is not part of 'id'
    assert got.records == [{"id": 0, "genotype": GOOD["genotype"], "pgd_acc": 0.5, "fsp": [1.0, 2.0]}]
    with pytest.raises(RecordError, match=re.escape(f"{tmp_path / 'short.csv'}: line 3 has 2 cells, the header has 3")):
        read_records(_csv(tmp_path / "short.csv", "id,pgd_acc,density\n0,0.5,0.5\n1,0.5\n"))
    with pytest.raises(RecordError, match="line 2 has 4 cells, the header has 3"):
        read_records(_csv(tmp_path / "long.csv", "id,pgd_acc,density\n0,0.5,0.5,9\n"))
    with pytest.raises(RecordError, match="line 1 names column 'pgd_acc' twice"):
        read_records(_csv(tmp_path / "dup.csv", "id,pgd_acc,pgd_acc\n0,0.5,0.9\n"))
    with pytest.raises(RecordError, match=re.escape("line 2, column 'pgd_acc': expected a fraction in [0, 1], "
                                                    "got 7.5")):
        read_records(_csv(tmp_path / "bad.csv", "id,pgd_acc\n0,7.5\n"))


def test_random_bytes_name_the_file(tmp_path):
    for suffix in (".jsonl", ".csv"):
        path = tmp_path / f"noise{suffix}"
        path.write_bytes(bytes(range(128, 256)) * 4 + b"\n")
        with pytest.raises(RecordError, match=re.escape(str(path))):
            read_records(path)


def test_run_folder_files_edited_by_hand(tmp_path):
    run = _run_folder(tmp_path, 2, _rows(2))
    results.write_json(run / R.CANDIDATES_FILE, {"genotypes": []})
    with pytest.raises(RecordError, match=re.escape(f"{run / R.CANDIDATES_FILE}: expected a 'candidates' list, got "
                                                    "no such key; was it edited by hand?")):
        read_candidates(run)
    results.write_json(run / R.CANDIDATES_FILE, {"candidates": [{"id": 0, "genotype": "11 01"}]})
    with pytest.raises(RecordError, match="candidate 0, column 'genotype': not a valid genotype"):
        read_candidates(run)
    results.write_json(run / R.CONFIG_FILE, {"plugin": {}})
    with pytest.raises(RecordError, match=re.escape(f"{run / R.CONFIG_FILE}: 'config' should be a JSON object, got "
                                                    "nothing; was it edited by hand?")):
        read_search_json(run)


def test_every_column_has_a_doc():
    assert all(col.doc for col in R.COLUMNS.values())
    assert {R.ID, R.GENOTYPE, R.PGD_ACC, R.PGD_ACC_RETEST, R.FSP, R.FSP + R.BEFORE} <= set(R.COLUMNS)

"""robnet.search.records.reader: the one reader of records, against two searches mixed, records
without ids, files written by a spreadsheet and files that are not text."""

from __future__ import annotations

import re

import pytest

from robnet.search.records import RecordError, read_records

from ._rows import GOOD, csv, jsonl, rows, run_folder


def test_a_bad_value_in_a_file_names_file_and_line(tmp_path):
    path = jsonl(tmp_path / "r.jsonl", [*rows(2), {**GOOD, "id": 2, "pgd_acc": "high"}])
    with pytest.raises(RecordError, match=re.escape(f"{path}: line 3, column 'pgd_acc': expected a number, got "
                                                    '"high"')):
        read_records(path)
    # with --skip-invalid the record is skipped and counted
    got = read_records(path, skip_invalid=True)
    assert [r["id"] for r in got] == [0, 1] and len(got.skipped) == 1
    assert got.notes[0].startswith("1 invalid record(s) skipped (--skip-invalid); the first: ")


def test_two_searches_in_one_file_are_refused_unless_named_or_allowed(tmp_path):
    path = jsonl(tmp_path / "r.jsonl", rows(3) + [{**r, "id": r["id"] + 10, "config_hash": "bbbb"} for r in rows(2)])
    with pytest.raises(RecordError, match=re.escape(f"{path} holds the records of 2 searches: aaaa (3 records), bbbb "
                                                    "(2 records). Hint: name one with --config-hash, or pass "
                                                    "--allow-mixed")):
        read_records(path)
    assert [r["id"] for r in read_records(path, config_hash="bbbb")] == [10, 11]
    assert len(read_records(path, allow_mixed=True)) == 5
    with pytest.raises(RecordError, match="no record has config_hash 'cccc'; it holds aaaa \\(3\\), bbbb \\(2\\)"):
        read_records(path, config_hash="cccc")


def test_a_run_folder_refuses_another_searchs_records_and_counts_the_missing(tmp_path):
    run = run_folder(tmp_path, 5, rows(3))
    got = read_records(run)
    assert (len(got), got.expected, got.missing) == (3, 5, 2)
    assert "the search is incomplete: 3 of 5 candidates finished, 2 still missing" in got.notes
    jsonl(run / "records.rank1.jsonl", [{**GOOD, "id": 3, "config_hash": "bbbb"}])  # another search's shard
    with pytest.raises(RecordError, match=re.escape(f"{run / 'records.rank1.jsonl'}: line 1: a record of another "
                                                    "search (config_hash differs from the folder's aaaa)")):
        read_records(run)


def test_a_record_without_an_id(tmp_path):
    # a run folder's records must have one
    run = run_folder(tmp_path, 2, [rows(1)[0], {k: v for k, v in GOOD.items() if k != "id"}])
    with pytest.raises(RecordError, match=re.escape(f"{run / 'records.rank0.jsonl'}: line 2: the record has no 'id'")):
        read_records(run)
    # a file from elsewhere without an id column: the row order is the id
    no_ids = [{k: v for k, v in r.items() if k != "id"} for r in rows(3)]
    got = read_records(jsonl(tmp_path / "no_id.jsonl", no_ids))
    assert [r["id"] for r in got] == [0, 1, 2] and "the row order is the id" in got.notes[0]
    # some with, some without: refused
    with pytest.raises(RecordError, match="line 2: the record has no 'id' while others have one"):
        read_records(jsonl(tmp_path / "mixed.jsonl", [rows(1)[0], no_ids[1]]))


def test_csv_as_spreadsheets_write_it(tmp_path):
    text = "id,genotype,pgd_acc,fsp\n0,11 11 11 11 11 01 11 01 10 11 01 01 01 11,0.5,\"[1.0, 2.0]\"\n"
    got = read_records(csv(tmp_path / "bom.csv", text, bom=True))  # the byte-order mark is not part of 'id'
    assert got.records == [{"id": 0, "genotype": GOOD["genotype"], "pgd_acc": 0.5, "fsp": [1.0, 2.0]}]
    # a config hash of digits stays the text it is (not the number 12)
    got = read_records(csv(tmp_path / "hash.csv", "id,pgd_acc,config_hash\n0,0.5,0012\n"))
    assert got.records[0]["config_hash"] == "0012"
    with pytest.raises(RecordError, match=re.escape(f"{tmp_path / 'short.csv'}: line 3 has 2 cells, the header has 3")):
        read_records(csv(tmp_path / "short.csv", "id,pgd_acc,density\n0,0.5,0.5\n1,0.5\n"))
    with pytest.raises(RecordError, match="line 2 has 4 cells, the header has 3"):
        read_records(csv(tmp_path / "long.csv", "id,pgd_acc,density\n0,0.5,0.5,9\n"))
    with pytest.raises(RecordError, match="line 1 names column 'pgd_acc' twice"):
        read_records(csv(tmp_path / "dup.csv", "id,pgd_acc,pgd_acc\n0,0.5,0.9\n"))
    with pytest.raises(RecordError, match=re.escape("line 2, column 'pgd_acc': expected a fraction in [0, 1], "
                                                    "got 7.5")):
        read_records(csv(tmp_path / "bad.csv", "id,pgd_acc\n0,7.5\n"))


def test_random_bytes_name_the_file(tmp_path):
    for suffix in (".jsonl", ".csv"):
        path = tmp_path / f"noise{suffix}"
        path.write_bytes(bytes(range(128, 256)) * 4 + b"\n")
        with pytest.raises(RecordError, match=re.escape(str(path))):
            read_records(path)

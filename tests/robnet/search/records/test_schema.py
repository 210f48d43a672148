"""robnet.search.records.schema: every malformed value a person may hand the schema is one line naming
where and what."""

from __future__ import annotations

import re

import pytest

from robnet.search import records as R
from robnet.search.records import RecordError, check_record

from ._rows import GOOD


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


def test_every_column_has_a_doc():
    assert all(col.doc for col in R.COLUMNS.values())
    assert {R.ID, R.GENOTYPE, R.PGD_ACC, R.PGD_ACC_RETEST, R.FSP, R.FSP + R.BEFORE} <= set(R.COLUMNS)


def test_text_columns_stay_text_when_read_from_a_spreadsheet():
    assert R.COLUMNS[R.GENOTYPE].holds_text and R.COLUMNS[R.CONFIG_HASH].holds_text
    assert not R.COLUMNS[R.PGD_ACC].holds_text and R.column("proxy_synflow") is not None
    assert R.column("pgd_acc_missing").holds_text and R.column("no_such_column") is None

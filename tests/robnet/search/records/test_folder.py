"""robnet.search.records.folder: a run folder's files edited by hand are refused naming the file."""

from __future__ import annotations

import re

import pytest

from robnet.io import results
from robnet.search import records as R
from robnet.search.records import RecordError, read_candidates, read_search_json

from ._rows import rows, run_folder


def test_run_folder_files_edited_by_hand(tmp_path):
    run = run_folder(tmp_path, 2, rows(2))
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

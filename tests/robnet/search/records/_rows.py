"""Records for the records tests: one good record, rows of it, files and run folders holding them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from robnet.io import results
from robnet.search import records as R

GOOD = {"id": 0, "genotype": "11 11 11 11 11 01 11 01 10 11 01 01 01 11", "bits": [1, 1] * 5 + [0, 1] + [1] * 16,
        "density": 0.5, "convs": 7, "direct_convs": 2, "budget": 7, "params": 100, "flops": 1000, "clean_acc": 0.75,
        "pgd_acc": 0.5, "pgd_acc_before_finetune": 0.25, "n_eval": 4, "fsp": [1.0, 2.0, None], "filtered_out": False,
        "proxy_synflow": 3.5, "seconds_finetune": 1.0, "config_hash": "aaaa"}


def jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rows(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{**GOOD, "id": i, "pgd_acc": i / (n + 1), **extra} for i in range(n)]


def run_folder(tmp_path: Path, n_candidates: int, records: list[dict[str, Any]]) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    results.write_json(run / R.CONFIG_FILE, {"config": {"data": "digits"}, "config_hash": "aaaa", "plugin": {},
                                             "invocations": []})
    results.write_json(run / R.CANDIDATES_FILE, {"candidates": [{"id": i, "genotype": GOOD["genotype"]}
                                                                for i in range(n_candidates)]})
    jsonl(run / "records.rank0.jsonl", records)
    return run


def csv(path: Path, text: str, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path

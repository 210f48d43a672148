"""The Python shown in docs/api.md runs as written: its blocks, in order, in one namespace, in a fresh
folder (the page's promise to its reader)."""

from __future__ import annotations

import re

import pytest
import torch

from ._paths import ROOT

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: str) -> list[str]:
    return BLOCK.findall((ROOT / "docs" / page).read_text(encoding="utf-8"))


def test_every_api_block_runs_in_order(tmp_path, monkeypatch, capsys):
    blocks = python_blocks("api.md")
    assert len(blocks) >= 6, "docs/api.md lost its examples"
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict[str, object] = {"__name__": "docs_api"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"docs/api.md block {i + 1}", "exec"), namespace)
        except Exception as e:  # name the block, keep the traceback
            pytest.fail(f"docs/api.md block {i + 1} failed: {type(e).__name__}: {e}\n{code}")
    out = capsys.readouterr().out
    assert "6842710" in out  # RobNet-large's exact parameter count, as the page says

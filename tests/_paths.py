"""Paths the tests read: the repository, its reference data, and the optional shared data beside it."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent  # the repository
DATA = TESTS / "data"  # small reference files (official-implementation logits, state_dict manifest)
SHARED_DATA = ROOT.parent / "shared" / "data"  # real CIFAR-10 when present (realdata tests skip without it)

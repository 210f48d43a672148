"""Fixtures of the attack tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def one_blas_thread() -> Any:
    """ART does part of its work in numpy: OpenBLAS's worker threads and torch's OpenMP threads then
    fight over the 2 cores (one DeepFool comparison went from 4 s to 100 s)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield

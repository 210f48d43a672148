"""Fixtures of the robnet.io tests."""

from __future__ import annotations

import pytest
from torch import nn

from tests.robnet.io._checkpoint_models import FLIPPED, small_model


@pytest.fixture(autouse=True)
def _reset_flag() -> None:
    FLIPPED.clear()


@pytest.fixture(scope="module")
def small() -> nn.Module:
    return small_model()

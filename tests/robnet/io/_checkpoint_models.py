"""Shared by test_checkpoint.py and test_official.py: a small RobNet, its state compared, a fixed input
batch, and a pickled lr-scheduler look-alike that records whether unpickling ever ran it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robnet.models.zoo import build_model

SMALL = {"name": "robnet_large", "C": 8, "layers": 5}

# Set by the hostile objects of the tests if anything ever executes them.
FLIPPED: list[str] = []


class FlipScheduler:
    """Pickles like an lr-scheduler (class + __dict__); unpickling runs its __setstate__."""

    def __init__(self) -> None:
        self.last_epoch = 3
        self.base_lrs = [0.1]
        self.milestones = {2: 1}

    def __setstate__(self, state: dict[str, Any]) -> None:
        FLIPPED.append("setstate")
        self.__dict__.update(state)


def small_model(seed: int = 0, **overrides: Any) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model("robnet_large", **{"C": 8, "layers": 5, **overrides})
    # Non-trivial BN statistics, so eval-mode outputs depend on the buffers too.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for name, low, high in (("running_mean", -0.5, 0.5), ("running_var", 0.5, 2.0)):
                getattr(module, name).uniform_(low, high)
    return model.eval()


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def batch(n: int = 4, size: int = 32) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(123))

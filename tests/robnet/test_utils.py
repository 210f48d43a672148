"""robnet.utils: eval_mode / train_mode / frozen_params restore every flag on every exit path."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from robnet.utils import eval_mode, frozen_params, train_mode


def tiny_cnn() -> nn.Sequential:
    """conv(3->8) + BN + ReLU + maxpool + linear, for 3x16x16 inputs."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )


def test_mode_managers_restore_every_flag_even_on_exceptions() -> None:
    model = tiny_cnn()
    model.train()
    model[1].eval()
    before = [m.training for m in model.modules()]
    with eval_mode(model) as m:
        assert m is model and not any(mod.training for mod in model.modules())
    assert [m.training for m in model.modules()] == before
    with pytest.raises(RuntimeError, match="boom"), train_mode(model):
        assert all(mod.training for mod in model.modules())
        raise RuntimeError("boom")
    assert [m.training for m in model.modules()] == before
    model.eval()
    model[1].train()
    before = [m.training for m in model.modules()]
    with pytest.raises(KeyError), eval_mode(model):
        raise KeyError("x")
    assert [m.training for m in model.modules()] == before


def test_frozen_params_restores_flags_even_on_exceptions() -> None:
    model = tiny_cnn()
    model[0].bias.requires_grad_(False)
    before = [p.requires_grad for p in model.parameters()]
    with pytest.raises(RuntimeError, match="boom"), frozen_params(model):
        assert not any(p.requires_grad for p in model.parameters())
        x = torch.rand(2, 3, 16, 16, requires_grad=True)
        model(x).sum().backward()
        assert x.grad is not None and all(p.grad is None for p in model.parameters())
        raise RuntimeError("boom")
    assert [p.requires_grad for p in model.parameters()] == before


def test_mode_managers_reject_non_modules() -> None:
    for cm in (eval_mode, train_mode, frozen_params):
        with pytest.raises(TypeError, match=re.escape("expected a torch.nn.Module, got int")), cm(3):  # type: ignore[arg-type]
            pass

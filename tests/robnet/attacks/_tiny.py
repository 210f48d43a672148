"""The tiny model, batches and distances the tests of the attacks, their contract and their config share."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

import robnet
from robnet.utils import train_mode

EPS = 8 / 255
STEP = 2 / 255
Setup = tuple[nn.Module, Tensor, Tensor]


def tiny_cnn(seed: int = 0, classes: int = 10) -> nn.Sequential:
    """conv(3->8) + BN + ReLU + maxpool + linear, for 3x16x16 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, classes),
    )


def batch(n: int = 8, seed: int = 1, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 16, 16, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def warmed(model: nn.Sequential) -> nn.Sequential:
    """Give BN non-trivial running statistics, so eval and train mode really differ."""
    with torch.no_grad(), train_mode(model):
        for s in range(3):
            model(batch(16, seed=100 + s)[0])
    return model


def linf(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).abs().amax(dim=1)


def l2(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).norm(dim=1)


def unit_noise(x: Tensor, kind: str) -> Tensor:
    """A fixed explicit start in units of eps: uniform in [-1, 1] ("inf") or of per-row L2 norm 0.9 ("2")."""
    g = torch.Generator().manual_seed(11)
    if kind == "inf":
        return torch.rand(x.shape, generator=g, dtype=x.dtype) * 2 - 1
    z = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return z / z.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * 0.9


def model_xy() -> tuple[nn.Module, Tensor, Tensor]:
    x, y = batch()
    return tiny_cnn().eval(), x, y


def art_classifier(model: nn.Module, classes: int = 10) -> Any:
    """IBM ART's wrapper of ``model`` for 3x16x16 inputs in [0, 1] (skips without the 'test' extra)."""
    pytest.importorskip("art", reason="adversarial-robustness-toolbox is in the 'test' extra")
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(3, 16, 16), nb_classes=classes,
                             clip_values=(0.0, 1.0))


def digits_robnet(seed: int = 0) -> nn.Module:
    """RobNet-large's cell, C=4, 3 cells, for the 1x8x8 digits (10 classes); train mode, as built."""
    torch.manual_seed(seed)
    return robnet.build_model("robnet_large", C=4, layers=3, in_channels=1)


class Overflow(nn.Module):
    """Finite weights, non-finite logits: the masking checks must say so, not stay silent."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x) * torch.tensor(float("inf"))

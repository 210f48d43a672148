"""Models the AutoAttack tests share: a tiny random CNN for invariants, and a small adversarially trained digits
CNN for the comparisons with torchattacks (trained once per test session: ~6 s on one core)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robnet.attacks.gradient import pgd
from robnet.data.datasets import load_dataset

# The digits threat model of these tests: L-inf 0.1 on 8x8 images in [0, 1] (trained and evaluated at it).
DIGITS_EPS = 0.1


def tiny_cnn(seed: int = 0, classes: int = 10, channels: int = 3) -> nn.Sequential:
    """conv(channels->8) + BN + ReLU + maxpool + linear, for channels x 16 x 16 inputs (random weights)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, classes),
    )


def batch(n: int = 8, seed: int = 1, classes: int = 10) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, classes, (n,), generator=g)


def digits_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    )


@functools.cache
def robust_digits() -> tuple[nn.Module, Tensor, Tensor]:
    """A digits CNN PGD-trained at eps 0.1 (PGD-7, step eps/4; Adam 3e-3, 15 epochs, batch 64), in eval mode,
    with the 360 test images in [0, 1] and their labels. Clean ~99%, PGD-20 ~84% at eps 0.1.

    Callers must not change the model (attacks never do); the global RNG is left as it was.
    """
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    x, y = train.images.float() / 255, train.labels.long()
    with torch.random.fork_rng():
        model = digits_cnn(0)
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(15):
            order = torch.randperm(len(x), generator=g)
            for i in range(0, len(x), 64):
                b = order[i:i + 64]
                model.eval()  # BN-free: the mode only matters for the record
                x_adv = pgd(model, x[b], y[b], eps=DIGITS_EPS, step_size=DIGITS_EPS / 4, steps=7, generator=g)
                model.train()
                loss = F.cross_entropy(model(x_adv), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval(), test.images.float() / 255, test.labels.long()


def correct(model: nn.Module, x: Tensor, y: Tensor) -> int:
    """How many rows of x the model classifies correctly."""
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


# Why a torchattacks comparison skips: .ci/run installs it without its requirements (torchvision, an old requests),
# which would replace the CPU torch.
TORCHATTACKS_SKIP = ("needs torchattacks, the independent AutoAttack: pip install --no-deps torchattacks (its own "
                     "requirements would replace torch)")

"""A network of your own, outside the zoo: what `--arch mymodels:build` imports (from the current
folder). Any factory returning an ``nn.Module`` works; keyword arguments come from ``--arch-kwargs``."""

from torch import nn


class Block(nn.Module):
    """conv-BN-ReLU twice with a residual connection: the repeated unit `--cells auto` finds."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                                  nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))

    def forward(self, x):
        return nn.functional.relu(x + self.body(x))


def build(num_classes: int = 10, in_channels: int = 1, width: int = 16, blocks: int = 3) -> nn.Module:
    """A small residual CNN for 8x8 digits (or 32x32 CIFAR with in_channels=3)."""
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Sequential(*[Block(width) for _ in range(blocks)]),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

"""Tiny networks and checks shared by test_capture.py and test_cells.py."""

import torch
from torch import nn

import robnet
import robnet.models.genotype

LAYERS = 5
CELL_NAMES = [f"cells.{i}" for i in range(LAYERS)]


def tiny_net(kind: str) -> robnet.RobNet:
    """RobNet-large (``"large"``) or a sampled cell-free genotype (``"free"``), C=8, eval mode."""
    torch.manual_seed(0)
    genotype = (robnet.ROBNET_LARGE if kind == "large"
                else robnet.models.genotype.sample(0, cell_free=True, layers=LAYERS))
    return robnet.build_robnet(genotype, C=8, layers=LAYERS).eval()


def images(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._forward_hooks_with_kwargs
               and not m._forward_pre_hooks_with_kwargs for m in model.modules())

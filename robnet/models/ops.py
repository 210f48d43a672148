"""Primitive operations of the RobNets cell (DARTS-style), with the official module names.

Attribute names (``op``, ``conv``, ``res``, ``conv_1``, ``conv_2``, ``bn``) are part of the
official state_dict layout: official checkpoints load into these modules with ``strict=True``.
All BatchNorms inside cells are ``affine=False`` (docs/design.md §1).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class ReLUConvBN(nn.Module):
    """ReLU -> conv (no bias) -> BN(affine=False); keys ``op.1.weight``, ``op.2.running_mean``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 1, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """DARTS separable conv: (ReLU, depthwise kxk at ``stride``, 1x1, BN) twice, the second at stride 1."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=False),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=1, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """Multiplies by zero; subsamples at stride 2 so the shape matches the other edges."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Stride-2 identity: ReLU, two stride-2 1x1 convs (the second on the input shifted by one pixel), concat, BN."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # conv_1 gives ceil(h/2) rows, the shifted conv_2 on x[..., 1:, 1:] gives ceil((h-1)/2): equal
        # only for even sizes, so an odd one is refused here instead of failing inside torch.cat.
        if h % 2 or w % 2:
            raise ValueError(f"FactorizedReduce (a stride-2 edge) needs an even feature-map size, got "
                             f"{h}x{w}. Hint: use inputs whose side stays even through the reductions "
                             "(e.g. a multiple of 4 for the two reduction cells)")
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class ResSepConv(nn.Module):
    """Sep-conv plus identity (FactorizedReduce at stride 2): the ``11`` edge."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = SepConv(c_in, c_out, kernel_size, stride, padding)
        self.res: nn.Module = Identity() if stride == 1 else FactorizedReduce(c_in, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.res(x)


OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "00": lambda c, stride: Zero(stride),
    "01": lambda c, stride: SepConv(c, c, 3, stride, 1),
    "10": lambda c, stride: Identity() if stride == 1 else FactorizedReduce(c, c),
    "11": lambda c, stride: ResSepConv(c, c, 3, stride, 1),
}


class ChosenOperation(nn.Module):
    """One edge of a cell: wraps the op under the attribute ``op`` (official key layout)."""

    def __init__(self, c: int, stride: int, code: str) -> None:
        super().__init__()
        if code not in OPS:
            raise ValueError(f"unknown edge code {code!r}; expected one of {', '.join(OPS)}")
        self.code = code
        self.op = OPS[code](c, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class NonLocalDenoise(nn.Module):
    """Feature-denoising block (Xie et al., CVPR 2019): y = x + BN(conv1x1(NLM(x))).

    NLM is non-local means with the embedded-Gaussian affinity
    ``y_i = sum_j softmax_j(theta(x_i) . phi(x_j) / sqrt(d)) x_j`` (or the dot-product form
    ``1/N sum_j (x_i . x_j) x_j`` with ``mode="dot"``). The BN's weight starts at zero, so a freshly
    inserted block is the identity and does not disturb a pretrained network.
    """

    def __init__(self, channels: int, *, mode: str = "gaussian", embed: bool = True) -> None:
        super().__init__()
        if mode not in ("gaussian", "dot"):
            raise ValueError(f"denoise mode must be 'gaussian' or 'dot', got {mode!r}")
        self.mode = mode
        inner = max(channels // 2, 1)
        self.theta: nn.Module = nn.Conv2d(channels, inner, 1, bias=False) if embed else Identity()
        self.phi: nn.Module = nn.Conv2d(channels, inner, 1, bias=False) if embed else Identity()
        self.conv = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        nn.init.zeros_(self.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        values = x.flatten(2)  # (N, C, HW)
        if self.mode == "gaussian":
            q = self.theta(x).flatten(2).transpose(1, 2)  # (N, HW, d)
            k = self.phi(x).flatten(2).transpose(1, 2)  # (N, HW, d)
            y = F.scaled_dot_product_attention(q, k, values.transpose(1, 2))  # (N, HW, C)
        else:
            q = x.flatten(2).transpose(1, 2)  # (N, HW, C)
            affinity = torch.bmm(q, values) / (h * w)  # (N, HW, HW)
            y = torch.bmm(affinity, values.transpose(1, 2))
        y = y.transpose(1, 2).reshape(n, c, h, w)
        return x + self.bn(self.conv(y))

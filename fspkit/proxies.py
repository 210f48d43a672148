"""Cheap robustness proxies beside FSP: three published zero-cost NAS scores (torch only).

Each proxy scores a network as it is (e.g. with weights inherited from the supernet) on one
batch, as a pure function: the model's train/eval flags, parameters, buffers (BatchNorm running
statistics included), ``requires_grad`` flags and ``.grad`` fields are the same afterwards, and no
hook is left behind. Higher is better for all three (as in their papers).

* :func:`grad_norm` (Abdelfattah et al., ICLR 2021, "Zero-Cost Proxies for Lightweight NAS"):
  sum over weight tensors W of || dL/dW ||_2, L the mean cross-entropy on the batch.
* :func:`synflow` (Tanaka et al., NeurIPS 2020, "Pruning neural networks without any data by
  iteratively conserving synaptic flow"; used as a NAS proxy by Abdelfattah et al. 2021):
  R = 1^T f_{|theta|}(1), score = sum_W sum |W (.) dR/dW| in float64, BatchNorm removed.
* :func:`naswot` (Mellor et al., ICML 2021, "Neural Architecture Search without Training"):
  log |det K| with K_ij = N_A - d_Hamming(c_i, c_j) over the binary ReLU codes c_i.

Decisions (following the reference code of Abdelfattah et al., SamsungLabs/zero-cost-nas):

* Scored tensors: the ``weight`` of every ``Conv1d/2d/3d`` and ``Linear`` module (biases and
  BatchNorm affine parameters take part in the forward but are not summed); a weight shared by
  several modules counts once.
* BatchNorm for grad_norm and NASWOT: the references run freshly built networks in train mode,
  so BN normalises with the batch's statistics. ``bn="batch"`` (default) does the same and
  ``bn="running"`` uses the running statistics (eval mode); every other module is in eval mode
  either way (no dropout, so results are deterministic), and the running statistics the batch
  mode would update are put back.
* BatchNorm for SynFlow: removed (identity), as the reference's ``synflow`` measure does (it
  builds a copy of the network without BN). With |theta| weights, an all-ones input and no
  normalisation, every pre-activation is >= 0, the ReLUs pass everything and R is a polynomial in
  |theta|, linear in each layer's weights, which is what the SynFlow conservation argument needs.
  Running statistics in eval mode (an affine map with a subtracted mean) or batch statistics
  (which would zero a single all-ones sample) would break that. The score is computed on a float64
  deep copy, so the model itself is never touched.

Non-finite scores: a proxy returns ``float("nan")`` (and logs a warning naming the proxy and the
raw value) instead of raising, so a search over many candidates keeps going; the caller records
``null`` with the reason, e.g. through :func:`proxy_record` (reasons in :data:`NONFINITE_REASONS`).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from fspkit.fsp import _no_autocast
from robnet.utils import unwrap_model

__all__ = [
    "NONFINITE_REASONS",
    "PROXIES",
    "ProxyConfig",
    "compute_proxies",
    "grad_norm",
    "naswot",
    "proxy_record",
    "synflow",
]

logger = logging.getLogger(__name__)

BNMode = Literal["batch", "running"]
_BN_MODES: tuple[str, ...] = ("batch", "running")
#: Proxy names, in the order :func:`compute_proxies` runs them.
PROXIES: tuple[str, ...] = ("grad_norm", "synflow", "naswot")
#: Why a proxy can come out NaN (not finite), for the ``<key>_missing`` field of a record.
NONFINITE_REASONS: dict[str, str] = {
    "grad_norm": "gradient norm not finite: the loss or a weight gradient overflowed or was NaN "
                 "(diverged weights or non-finite logits)",
    "synflow": "SynFlow not finite: R = sum(f_|theta|(1)) overflowed float64 (a very deep network without "
               "BatchNorm) or was NaN",
    "naswot": "NASWOT kernel singular (log det = -inf) or not finite: two samples share one ReLU code "
              "(duplicate images, dead ReLUs)",
}
_SCORED_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
# Binary codes summed in float32 stay exact below 2**24 units per ReLU call.
_FLOAT32_EXACT = 2**24


@dataclass(frozen=True, kw_only=True)
class ProxyConfig:
    """Settings of :func:`compute_proxies` (recorded verbatim with the scores).

    Attributes:
        proxies: which proxies to compute, a subset of :data:`PROXIES` in any order (run in
            :data:`PROXIES` order).
        bn: BatchNorm statistics for grad_norm and NASWOT: ``"batch"`` (the references' train
            mode) or ``"running"`` (eval mode). SynFlow always removes BN.
    """

    proxies: tuple[str, ...] = PROXIES
    bn: BNMode = "batch"

    def __post_init__(self) -> None:
        if isinstance(self.proxies, str) or not isinstance(self.proxies, tuple):
            raise TypeError(f"ProxyConfig.proxies must be a tuple of names, got {self.proxies!r}. "
                            f"Hint: proxies=({', '.join(map(repr, PROXIES))})")
        unknown = [p for p in self.proxies if p not in PROXIES]
        if unknown or not self.proxies or len(set(self.proxies)) != len(self.proxies):
            raise ValueError(f"ProxyConfig.proxies must be distinct names from {', '.join(PROXIES)}, got "
                             f"{self.proxies!r}")
        _check_bn(self.bn)


def _check_bn(bn: object) -> None:
    if bn not in _BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(map(repr, _BN_MODES))}, got {bn!r}. Hint: 'batch' "
                         "normalises with the batch's statistics (the references), 'running' with the running ones")


def _check_model(model: object, what: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what}: model must be a torch.nn.Module, got {type(model).__name__}")
    net = unwrap_model(model)
    if next(net.parameters(), None) is None:
        raise ValueError(f"{what}: the model has no parameters")
    return net


def _check_x(x: object, net: nn.Module, what: str, *, min_batch: int = 1) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: x must be a torch.Tensor batch, got {type(x).__name__}")
    if not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"{what}: x must be a floating-point batch (N, ...), got dtype {x.dtype} and shape "
                         f"{tuple(x.shape)}")
    if x.shape[0] < min_batch:
        raise ValueError(f"{what} needs a batch of at least {min_batch} samples, got {x.shape[0]}")
    device = next(net.parameters()).device
    if x.device != device:
        raise ValueError(f"{what}: x is on {x.device} but the model's parameters are on {device}. "
                         "Hint: move the batch to the model's device")
    return x


def _scored_weights(net: nn.Module, what: str) -> list[nn.Parameter]:
    """The ``weight`` of every conv / linear module, each tensor once, in ``modules()`` order."""
    seen: set[int] = set()
    weights = []
    for m in net.modules():
        w = getattr(m, "weight", None)
        if isinstance(m, _SCORED_TYPES) and isinstance(w, nn.Parameter) and id(w) not in seen:
            seen.add(id(w))
            weights.append(w)
    if not weights:
        raise ValueError(f"{what}: the model has no Conv1d/Conv2d/Conv3d/Linear weights to score")
    return weights


def _finite(name: str, value: float) -> float:
    if math.isfinite(value):
        return value
    logger.warning("%s proxy is not finite (%r); returning NaN: %s", name, value, NONFINITE_REASONS[name])
    return math.nan


@contextmanager
def _scoring_mode(net: nn.Module, bn: BNMode) -> Iterator[None]:
    """Eval mode except BatchNorm (train mode when ``bn="batch"``); flags and BN buffers restored."""
    flags = [(m, m.training) for m in net.modules()]
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    saved = [(b, b.detach().clone()) for m in bns for b in m.buffers(recurse=False)] if bn == "batch" else []
    try:
        net.eval()
        if bn == "batch":
            for norm in bns:
                norm.train()
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
        for m, flag in flags:
            m.training = flag


@contextmanager
def _requires_grad(params: Sequence[nn.Parameter]) -> Iterator[None]:
    saved = [(p, p.requires_grad) for p in params]
    try:
        for p in params:
            p.requires_grad_(True)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, bn: BNMode = "batch") -> float:
    """Gradient-norm proxy of Abdelfattah et al. (ICLR 2021, "Zero-Cost Proxies for Lightweight NAS").

        score = sum_W || dL/dW ||_2,    L = (1/N) sum_i CE(f(x_i), y_i)

    over the weight W of every conv / linear module (the reference's layer set), on one batch,
    with autocast disabled. Gradients come from ``torch.autograd.grad``: ``.grad`` fields are
    never written. The norms are summed in float64.

    Args:
        model: the network (a DDP/DataParallel wrapper is unwrapped); left exactly as it was.
        x: (N, ...) input batch on the model's device.
        y: (N,) integer class labels.
        bn: ``"batch"`` (BN uses the batch's statistics, as the reference) or ``"running"``.

    Returns:
        The score, or NaN when it is not finite (see :data:`NONFINITE_REASONS`).

    Raises:
        TypeError: model not a Module, x / y not tensors, y not integer.
        ValueError: bad shapes, devices or ``bn``; a model without conv / linear weights.
    """
    net = _check_model(model, "grad_norm")
    _check_bn(bn)
    x = _check_x(x, net, "grad_norm")
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"grad_norm: y must be an int64 tensor of class labels, got "
                        f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"grad_norm: y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    weights = _scored_weights(net, "grad_norm")
    with _requires_grad(weights), _scoring_mode(net, bn), torch.enable_grad(), _no_autocast(x.device):
        loss = F.cross_entropy(net(x), y.long())
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
    total = sum((g.double().norm() for g in grads if g is not None), torch.zeros((), dtype=torch.float64))
    return _finite("grad_norm", float(total))


def _input_shape(x_shape: object) -> tuple[int, ...]:
    if (not isinstance(x_shape, Sequence) or isinstance(x_shape, str)
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in x_shape)):
        raise TypeError(f"synflow: x_shape must be a batch shape of ints such as (64, 3, 32, 32), got {x_shape!r}")
    shape = tuple(x_shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"synflow: x_shape must be a batch shape (N, ...) with positive sizes, got {shape}. "
                         "Hint: pass x.shape; N is ignored (one all-ones sample)")
    return shape[1:]


def _without_batchnorm(net: nn.Module) -> None:
    for parent in list(net.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(parent, child_name, nn.Identity())


def synflow(model: nn.Module, x_shape: Sequence[int] | torch.Size) -> float:
    """SynFlow proxy of Tanaka et al. (NeurIPS 2020), as a NAS score in Abdelfattah et al. (ICLR 2021).

    On a float64 deep copy of the model with every parameter replaced by its absolute value and
    every BatchNorm removed (see the module docstring), in eval mode, with autocast disabled:

        R = sum_k f_{|theta|}(1)_k            (one all-ones input sample of shape x_shape[1:])
        score = sum_W sum_ij | W_ij * dR/dW_ij |

    over the weight W of every conv / linear module. With the BN removed the network is monotone
    in |theta|, so the absolute value (the reference's) changes nothing for RobNets. Only the
    input's shape matters, not its values, so no data is needed.

    Args:
        model: the network (a DDP/DataParallel wrapper is unwrapped); never modified.
        x_shape: a batch shape ``(N, ...)``, e.g. ``x.shape``; N is ignored (one sample, as the
            reference: with BN removed R is linear in the batch size).

    Returns:
        The score, or NaN when it is not finite, e.g. float64 overflow in a very deep network
        (see :data:`NONFINITE_REASONS`).

    Raises:
        TypeError: model not a Module; x_shape not a sequence of ints.
        ValueError: x_shape with fewer than 2 sizes or a size < 1; a model without conv / linear
            weights.
    """
    net = _check_model(model, "synflow")
    shape = _input_shape(x_shape)
    _scored_weights(net, "synflow")  # raises early, before the copy
    device = next(net.parameters()).device
    work = copy.deepcopy(net)
    _without_batchnorm(work)
    work.double().eval()
    with torch.no_grad():
        for p in work.parameters():
            p.abs_()
            p.requires_grad_(True)
    weights = _scored_weights(work, "synflow")
    ones = torch.ones((1, *shape), dtype=torch.float64, device=device)
    with torch.enable_grad(), _no_autocast(device):
        r = work(ones).sum()
        grads = torch.autograd.grad(r, weights, allow_unused=True)
    total = sum(((w.detach() * g).abs().sum() for w, g in zip(weights, grads, strict=True) if g is not None),
                torch.zeros((), dtype=torch.float64, device=device))
    return _finite("synflow", float(total))


def naswot(model: nn.Module, x: torch.Tensor, *, bn: BNMode = "batch") -> float:
    """NASWOT score of Mellor et al. (ICML 2021, "Neural Architecture Search without Training").

    Every ``nn.ReLU`` module's output gives each sample i a binary code c_i (1 where the unit is
    active, > 0), concatenated over all ReLU calls into N_A bits. With C the (N, N_A) code matrix,

        K = C C^T + (1 - C)(1 - C)^T,    K_ij = N_A - d_Hamming(c_i, c_j)
        score = log |det K|              (``torch.linalg.slogdet``, float64)

    The codes are read from forward hooks on each ``nn.ReLU`` output (after the op, so an
    in-place ReLU gives the same codes; a reused module counts once per call); functional
    ``F.relu`` calls are invisible. Each call adds N_A' + 2 C C^T - s_i - s_j (s = row sums of C)
    to K: one matmul per ReLU instead of two, exact in float32 below 2**24 units per call.

    Args:
        model: the network (a DDP/DataParallel wrapper is unwrapped); left exactly as it was.
        x: (N, ...) input batch on the model's device, N >= 2.
        bn: ``"batch"`` (BN uses the batch's statistics, as the reference) or ``"running"``.

    Returns:
        The score, or NaN when it is not finite: a singular K (two samples with one code) has
        log det = -inf (see :data:`NONFINITE_REASONS`).

    Raises:
        TypeError: model not a Module; x not a tensor.
        ValueError: batch smaller than 2, wrong device, bad ``bn``; no ``nn.ReLU`` module, or no
            ReLU ran.
    """
    net = _check_model(model, "naswot")
    _check_bn(bn)
    x = _check_x(x, net, "naswot", min_batch=2)
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"naswot: {type(net).__name__} has no nn.ReLU module. Hint: NASWOT reads binary codes "
                         "from nn.ReLU outputs; functional F.relu calls cannot be hooked")
    n = x.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    calls = [0]

    def hook(module: nn.Module, inputs: tuple[Any, ...], out: torch.Tensor) -> None:
        codes = out.detach().flatten(1) > 0  # (N, units)
        units = codes.shape[1]
        dtype = torch.float32 if units < _FLOAT32_EXACT else torch.float64
        c = codes.to(dtype)
        s = c.sum(dim=1).double()  # (N,)
        agree = (c @ c.T).double()  # (N, N) co-active units
        kernel.add_(units + 2 * agree - s[:, None] - s[None, :])
        calls[0] += 1

    handles = [m.register_forward_hook(hook) for m in relus]
    try:
        with _scoring_mode(net, bn), torch.no_grad(), _no_autocast(x.device):
            net(x)
    finally:
        for h in handles:
            h.remove()
    if calls[0] == 0:
        raise ValueError(f"naswot: none of the {len(relus)} nn.ReLU modules of {type(net).__name__} ran in the "
                         "forward pass")
    return _finite("naswot", float(torch.linalg.slogdet(kernel).logabsdet))


def _timed(fn: Callable[[], float], device: torch.device) -> tuple[float, float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    if sync is not None:
        sync(device)
    t0 = time.perf_counter()
    value = fn()
    if sync is not None:
        sync(device)
    return value, time.perf_counter() - t0


def compute_proxies(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                    config: ProxyConfig | None = None) -> dict[str, float]:
    """Compute the configured proxies on one batch, each with its wall-clock seconds.

    Args:
        model: the network, left exactly as it was.
        x: (N, ...) input batch on the model's device (N >= 2 for NASWOT).
        y: (N,) integer class labels (grad_norm).
        config: which proxies and the BN mode (default :class:`ProxyConfig()`: all three, batch BN).

    Returns:
        ``{"proxy_<name>": score, "seconds_<name>": seconds}`` for each configured proxy, in
        :data:`PROXIES` order; a score is NaN when not finite (:func:`proxy_record` turns that
        into ``None`` plus a reason). Seconds include a CUDA synchronize on both ends.

    Raises:
        TypeError / ValueError: those of the individual proxies, or a config that is not a
            :class:`ProxyConfig`.
    """
    cfg = ProxyConfig() if config is None else config
    if not isinstance(cfg, ProxyConfig):
        raise TypeError(f"config must be a ProxyConfig, got {type(cfg).__name__}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"compute_proxies: x must be a torch.Tensor batch, got {type(x).__name__}")
    device = x.device
    runs: dict[str, Callable[[], float]] = {
        "grad_norm": lambda: grad_norm(model, x, y, bn=cfg.bn),
        "synflow": lambda: synflow(model, tuple(x.shape)),
        "naswot": lambda: naswot(model, x, bn=cfg.bn),
    }
    out: dict[str, float] = {}
    for name in PROXIES:
        if name in cfg.proxies:
            out[f"proxy_{name}"], out[f"seconds_{name}"] = _timed(runs[name], device)
    return out


def proxy_record(scores: Mapping[str, float]) -> dict[str, float | str | None]:
    """A JSON-ready copy of :func:`compute_proxies` output: NaN scores become ``None`` with a reason.

    For every ``proxy_<name>`` that is NaN, the record holds ``proxy_<name>: None`` and
    ``proxy_<name>_missing`` with :data:`NONFINITE_REASONS` ``[name]`` (the results convention of
    :mod:`robnet.io.results`); every other entry is copied.

    Args:
        scores: the mapping returned by :func:`compute_proxies`.

    Returns:
        A new dict.
    """
    record: dict[str, float | str | None] = {}
    for key, value in scores.items():
        name = key.removeprefix("proxy_")
        if key.startswith("proxy_") and name in NONFINITE_REASONS and math.isnan(value):
            record[key] = None
            record[f"{key}_missing"] = NONFINITE_REASONS[name]
        else:
            record[key] = value
    return record

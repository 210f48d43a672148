"""Streaming clean-vs-adversarial FSP scoring (Guo et al. 2020, Finding #3; FSP: Yim et al. 2017).

For every selected cell l, L_l = (1/N) sum_x || G_l(x) - G_l(x_adv) ||_F^2 with
G_l(x) = (1/(h w)) sum_{s,t} F_in[:, s, t] (outer) F_out[:, s, t]. From the same einsum come the
scale-free relative distance r_l(x) = || G_l(x) - G_l(x_adv) ||_F^2 / || G_l(x) ||_F^2 and the
activation scale || G_l(x) ||_F^2 (docs/design.md §5: the raw distance largely tracks activation
scale).

Each batch runs once through the network as ``cat([x, x_adv])`` under ``torch.no_grad``; a hook on
every cell computes G for both halves with one einsum and adds the per-sample distances to
running sums on the device, then the maps are dropped. No feature map outlives its cell, and
nothing but one range check per batch (clean and adversarial images in [0, 1], finite: an
attack that returns NaN or leaves the pixel range is refused) is read on the host until the end,
plus one finiteness check of the first batch's logits and FSP sums.

A model whose outputs or features are not finite (a damaged checkpoint: e.g. a BatchNorm
``running_var`` below zero, with every weight finite) is refused with one line naming the first
module whose output is NaN / inf, rather than reported as NaN rows: on the first batch, when the
attack returns NaN because of it, or at the end for a later batch (then naming the cells).
"""

from __future__ import annotations

import itertools
import math
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fspkit._version import __version__
from fspkit.capture import capture_cells
from fspkit.cells import AUTO, CellChoice, CellSpec, choose_cells, resolve_cells
from fspkit.fsp import fsp_pair_terms
from robnet.models.genotype import deep_cells
from robnet.utils import eval_mode, unwrap_model

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
_Batch = tuple[torch.Tensor, torch.Tensor]  # (x, y)

_NO_BATCHES = "no batches to score: the data iterable was empty"


@dataclass
class CellScore:
    """FSP distance statistics of one cell over the scored samples.

    ``fsp_mean``/``fsp_std``: mean and (population) standard deviation over samples of the raw
    distance || G(x) - G(x_adv) ||_F^2. ``fsp_rel_mean``/``fsp_rel_std``: the same for the
    relative distance || G(x) - G(x_adv) ||_F^2 / || G(x) ||_F^2 (per sample, then averaged; NaN
    if some sample's clean G is exactly zero). ``scale_mean``: mean of || G(x) ||_F^2 over the
    clean samples. ``fsp_strided_mean``: the raw distance when maps of different sizes are aligned by
    strided subsampling instead of average pooling (equal to ``fsp_mean`` when the sizes agree;
    docs/design.md §5).
    """

    name: str
    depth: int
    c_in: int
    c_out: int
    hw: tuple[int, int]
    fsp_mean: float
    fsp_std: float
    fsp_rel_mean: float
    fsp_rel_std: float
    scale_mean: float
    fsp_strided_mean: float = math.nan

    @property
    def fsp_mean_normalized(self) -> float:
        """L_l / (m n): comparable across cells of different widths."""
        return self.fsp_mean / (self.c_in * self.c_out)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "depth": self.depth, "c_in": self.c_in, "c_out": self.c_out,
                "hw": list(self.hw), "fsp_mean": self.fsp_mean, "fsp_std": self.fsp_std,
                "fsp_mean_normalized": self.fsp_mean_normalized, "fsp_rel_mean": self.fsp_rel_mean,
                "fsp_rel_std": self.fsp_rel_std, "scale_mean": self.scale_mean,
                "fsp_strided_mean": self.fsp_strided_mean}


@dataclass
class FSPReport:
    """Result of :func:`score`: per-cell FSP distances plus accuracies on the same samples."""

    cells: list[CellScore]
    clean_acc: float
    adv_acc: float
    n: int
    attack: dict[str, Any]
    device: str
    seed: int | None = None
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def deep_mean(self) -> float:
        """Mean FSP distance of the deep cells (Finding #3: :func:`robnet.models.genotype.deep_cells`,
        the last third of the scored cells)."""
        deep = [self.cells[i] for i in deep_cells(len(self.cells))]
        return sum(c.fsp_mean for c in deep) / len(deep)

    def fsp(self) -> list[float]:
        """Raw FSP distance L_l of every cell, in network order."""
        return [c.fsp_mean for c in self.cells]

    def fsp_rel(self) -> list[float]:
        """Mean relative FSP distance of every cell, in network order."""
        return [c.fsp_rel_mean for c in self.cells]

    def fsp_scale(self) -> list[float]:
        """Mean clean activation scale || G(x) ||_F^2 of every cell, in network order."""
        return [c.scale_mean for c in self.cells]

    def fsp_strided(self) -> list[float]:
        """Raw FSP distance of every cell with strided instead of average-pooled alignment."""
        return [c.fsp_strided_mean for c in self.cells]

    def to_dict(self) -> dict[str, Any]:
        return {"clean_acc": self.clean_acc, "adv_acc": self.adv_acc, "n": self.n, "attack": self.attack,
                "seed": self.seed, "device": self.device, "versions": self.versions,
                "fsp_deep_mean": self.deep_mean(), "cells": [c.to_dict() for c in self.cells], **self.extra}

    def table(self) -> str:
        """Readable per-cell table."""
        rows = [f"{'cell':<12} {'depth':>5} {'c_in':>5} {'c_out':>5} {'hw':>7} {'fsp_mean':>11} {'fsp_std':>11} "
                f"{'normalized':>11} {'relative':>11} {'scale':>11}"]
        for c in self.cells:
            hw = f"{c.hw[0]}x{c.hw[1]}"
            rows.append(f"{c.name:<12} {c.depth:>5} {c.c_in:>5} {c.c_out:>5} {hw:>7} {c.fsp_mean:>11.5g} "
                        f"{c.fsp_std:>11.5g} {c.fsp_mean_normalized:>11.5g} {c.fsp_rel_mean:>11.5g} "
                        f"{c.scale_mean:>11.5g}")
        return "\n".join(rows)

    def summary(self) -> str:
        k = len(deep_cells(len(self.cells)))
        return (f"n={self.n}  clean acc {100 * self.clean_acc:.2f}%  adv acc {100 * self.adv_acc:.2f}%  "
                f"mean FSP distance of the deepest {k} cells {self.deep_mean():.5g}")

    def csv_rows(self) -> list[dict[str, Any]]:
        return [{**c.to_dict(), "hw": f"{c.hw[0]}x{c.hw[1]}"} for c in self.cells]


class _Accumulator:
    """Per-cell running sums on the device, filled from inside the forward hooks."""

    def __init__(self, n_cells: int, device: torch.device) -> None:
        # (cells, [sum d, sum d^2, sum r, sum r^2, sum s, sum d']): raw distance d, relative r = d / s,
        # scale s, and d' the raw distance with strided alignment (reduction cells only; else d' = d)
        self.sums = torch.zeros(n_cells, 6, dtype=torch.float64, device=device)
        self.counts = [0] * n_cells  # samples accumulated per cell
        self.shapes: list[tuple[int, int, tuple[int, int]] | None] = [None] * n_cells
        self.split = 0

    def __call__(self, name: str, index: int, f_in: torch.Tensor, f_out: torch.Tensor) -> None:
        d, s = fsp_pair_terms(f_in, f_out, split=self.split)  # (N,), (N,)
        d, s = d.double(), s.double()
        r = d / s
        same = f_in.shape[2:] == f_out.shape[2:]
        strided = d if same else fsp_pair_terms(f_in, f_out, split=self.split, pooling="stride")[0].double()
        self.sums[index] += torch.stack([d.sum(), d.square().sum(), r.sum(), r.square().sum(), s.sum(),
                                         strided.sum()])
        self.counts[index] += d.numel()
        if self.shapes[index] is None:
            hw = (min(f_in.shape[2], f_out.shape[2]), min(f_in.shape[3], f_out.shape[3]))
            self.shapes[index] = (f_in.shape[1], f_out.shape[1], hw)


def _mean_std(total: float, total_sq: float, count: int) -> tuple[float, float]:
    """Mean and population std from running sums (NaN/inf propagate: a NaN sample stays visible)."""
    mean = total / count
    var = total_sq / count - mean * mean
    return mean, math.nan if math.isnan(var) else math.sqrt(max(var, 0.0))


def _outputs(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for t in value if isinstance(t, torch.Tensor)]
    return []


def _first_nonfinite(net: nn.Module, x: torch.Tensor) -> tuple[str, nn.Module] | None:
    """The first module, in the order forwards finish (innermost first), whose output holds NaN or
    inf on ``x``; one host sync per module: only for an error message."""
    found: list[nn.Module] = []

    def hook(mod: nn.Module, args: Any, output: Any) -> None:
        if not found and any(t.is_floating_point() and not bool(torch.isfinite(t).all()) for t in _outputs(output)):
            found.append(mod)

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        return None
    name = next((n for n, m in net.named_modules() if m is found[0]), "")
    return name or "<the model>", found[0]


def _module_detail(module: nn.Module) -> str:
    """Why a module's output may not be finite: negative BN variances, non-finite tensors."""
    var = getattr(module, "running_var", None)
    if isinstance(module, nn.modules.batchnorm._NormBase) and isinstance(var, torch.Tensor) and (var < 0).any():
        return (f", whose running_var has {int((var < 0).sum())} negative entries (min {float(var.min()):.3g}): "
                "the square root of a negative variance is NaN")
    bad = [n for n, t in [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return f", whose {bad[0]} holds NaN or inf" if bad else ""


def _nonfinite_model_error(net: nn.Module, x: torch.Tensor, *, batch: int, what: str) -> ValueError:
    where = _first_nonfinite(net, x)
    first = (f"; the first non-finite activation is the output of {where[0]!r} ({type(where[1]).__name__})"
             f"{_module_detail(where[1])}") if where is not None else ""
    return ValueError(f"the model gives non-finite values (NaN or inf) on the clean images of batch {batch}: {what}"
                      f"{first}. FSP distances would be NaN. Hint: the checkpoint is damaged or comes from a "
                      "diverged run (check its BatchNorm running statistics), or the inputs overflow the model")


def _check_pair(x: torch.Tensor, x_adv: torch.Tensor, *, batch: int, model: nn.Module | None = None) -> None:
    """Refuse an attack output that is not an image batch of x's shape in [0, 1] (NaN included),
    and clean images outside [0, 1]; one host sync. A NaN attack output from a model that is not
    finite on ``x`` names the model instead (checked only then)."""
    if not isinstance(x_adv, torch.Tensor):
        raise TypeError(f"the attack must return a tensor, got {type(x_adv).__name__} (batch {batch})")
    if x_adv.shape != x.shape:
        raise ValueError(f"attack returned shape {tuple(x_adv.shape)} for input {tuple(x.shape)}")
    if not x_adv.is_floating_point():
        raise TypeError(f"the attack returned dtype {x_adv.dtype} (batch {batch}); expected floating-point "
                        "images in [0, 1]")
    if x.numel() == 0:
        return
    lo, hi, adv_lo, adv_hi = torch.cat([torch.stack(torch.aminmax(t.detach())).float() for t in (x, x_adv)]).tolist()
    if not (lo >= 0.0 and hi <= 1.0):  # false for NaN too
        raise ValueError(f"batch {batch}: the images must lie in [0, 1] (pixel space), got values in "
                         f"[{lo:.6g}, {hi:.6g}]. Hint: mean/std normalization belongs inside the model")
    if not (adv_lo >= 0.0 and adv_hi <= 1.0):
        if model is not None and math.isnan(adv_lo + adv_hi):
            with torch.no_grad():
                finite = bool(torch.isfinite(model(x)).all())
            if not finite:
                raise _nonfinite_model_error(model, x, batch=batch, what="its logits are not finite, so the attack "
                                                                         "returned NaN")
        raise ValueError(f"batch {batch}: the attack returned values in [{adv_lo:.6g}, {adv_hi:.6g}]; adversarial "
                         "images must be finite and lie in [0, 1]. Hint: clamp the attack's output to [0, 1]; "
                         "NaN means its gradients were not finite")


@torch.no_grad()
def _forward_pair(model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
    return model(torch.cat([x, x_adv]))


# Columns of _Accumulator.sums that must be finite: raw distance, its square, scale (the relative
# distance may be NaN where a clean G is exactly zero, by definition).
_MUST_BE_FINITE = [0, 1, 4]


def _check_first_batch(net: nn.Module, x: torch.Tensor, logits: torch.Tensor, acc: _Accumulator,
                       names: list[str]) -> None:
    """Refuse a model that is not finite on the first batch: one host sync, once."""
    flags = torch.cat([torch.isfinite(logits).all().reshape(1), torch.isfinite(acc.sums[:, _MUST_BE_FINITE]).all(1)])
    ok = flags.tolist()
    if all(ok):
        return
    bad = [name for name, good in zip(names, ok[1:], strict=True) if not good]
    what = "its logits are not finite" if not ok[0] else ""
    if bad:
        what += (" and " if what else "") + f"the features of {_cells_text(bad)} are"
    raise _nonfinite_model_error(net, x, batch=0, what=what)


def _cells_text(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:3])
    return f"cell {shown}" if len(names) == 1 else f"cells {shown}" + (f" ... ({len(names)})" if len(names) > 3 else "")


def _check_totals(sums: torch.Tensor, logits_finite: bool, names: list[str]) -> None:
    """After the last batch (sums on the host): refuse non-finite logits or FSP sums."""
    bad = [name for name, row in zip(names, sums[:, _MUST_BE_FINITE].isfinite().all(1).tolist(), strict=True)
           if not row]
    if bad or not logits_finite:
        parts = ([] if logits_finite else ["its logits"]) + ([f"the features of {_cells_text(bad)}"] if bad else [])
        raise ValueError(f"the model gives non-finite values (NaN or inf) on a batch after the first: "
                         f"{' and '.join(parts)}. FSP distances would be NaN. Hint: the model overflows on some "
                         "inputs, or the checkpoint is damaged (check its BatchNorm running statistics)")


def _select_cells(net: nn.Module, cells: CellSpec,
                  batches: Iterable[_Batch]) -> tuple[list[str], Iterable[_Batch], CellChoice | None]:
    """The names of the cells to score, the batches to score them on, and what ``"auto"`` chose.

    ``"auto"`` probes the first batch's images (:func:`fspkit.cells.choose_cells`) and puts that
    batch back in front of the others; any other selection is resolved before a batch is drawn,
    so unknown names raise early (:func:`fspkit.cells.resolve_cells`).
    """
    if not (isinstance(cells, str) and cells == AUTO):
        return [name for name, _ in resolve_cells(net, cells)], batches, None
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        raise ValueError(_NO_BATCHES)
    choice = choose_cells(net, first[0])
    return list(choice.names), itertools.chain([first], iterator), choice


def _score_batches(net: nn.Module, batches: Iterable[_Batch], attack: Attack, acc: _Accumulator,
                   names: list[str]) -> tuple[torch.Tensor, int]:
    """Attack every batch, then run clean and adversarial images through the hooked cells in one forward.

    The FSP sums go to ``acc``; the model is in eval mode throughout, the attack included.

    Returns:
        ``(counts, n)``: counts (3,) on the device: clean hits, adversarial hits, batches with
        non-finite logits; n: the number of samples.
    """
    correct = torch.zeros(3, dtype=torch.long, device=acc.sums.device)
    n = n_batches = 0
    # Hooks only around the scoring forward (re-entered per batch), so the attack's own forwards
    # are not scored.
    cap = capture_cells(net, names, on_pair=acc)
    with eval_mode(net):
        for x, y in batches:
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"batch has {x.shape[0]} images but {y.shape[0]} labels")
            x_adv = attack(net, x, y)
            _check_pair(x, x_adv, batch=n_batches, model=net)
            x_adv = x_adv.detach()
            n_batches += 1
            acc.split = x.shape[0]
            with cap:
                logits = _forward_pair(net, x, x_adv)
            if n_batches == 1:
                _check_first_batch(net, x, logits, acc, names)
            correct[2] += ~torch.isfinite(logits).all()
            pred = logits.argmax(1)
            correct[0] += (pred[: x.shape[0]] == y).sum()
            correct[1] += (pred[x.shape[0]:] == y).sum()
            n += x.shape[0]
    if n == 0:
        raise ValueError(_NO_BATCHES)
    return correct, n


def _cell_scores(names: list[str], acc: _Accumulator, sums: torch.Tensor) -> list[CellScore]:
    """One :class:`CellScore` per cell, network order, from ``sums`` (``acc.sums`` on the host)."""
    results = []
    for i, name in enumerate(names):
        shape = acc.shapes[i]
        if shape is None:  # pragma: no cover - capture_cells raises first for a cell that never ran
            raise ValueError(f"cell {name!r} never ran")
        mean, std = _mean_std(float(sums[i, 0]), float(sums[i, 1]), acc.counts[i])
        rel_mean, rel_std = _mean_std(float(sums[i, 2]), float(sums[i, 3]), acc.counts[i])
        results.append(CellScore(name=name, depth=i, c_in=shape[0], c_out=shape[1], hw=shape[2], fsp_mean=mean,
                                 fsp_std=std, fsp_rel_mean=rel_mean, fsp_rel_std=rel_std,
                                 scale_mean=float(sums[i, 4]) / acc.counts[i],
                                 fsp_strided_mean=float(sums[i, 5]) / acc.counts[i]))
    return results


def score(model: nn.Module, batches: Iterable[_Batch], attack: Attack, *,
          cells: CellSpec = None, attack_settings: dict[str, Any] | None = None, seed: int | None = None,
          progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None) -> FSPReport:
    """Clean-vs-adversarial FSP distance of every selected cell, streamed over ``batches``.

    Args:
        model: the network; scored in eval mode (BN running statistics), the attack included;
            its train/eval flags are restored afterwards.
        batches: iterable of ``(x, y)`` on the model's device, x in [0, 1].
        attack: ``(model, x, y) -> x_adv`` (e.g. ``robnet.attacks.gradient.pgd`` with its settings bound).
        cells: which cells (None: every module flagged ``is_cell``; ``"auto"``: flagged cells,
            else the repeated blocks, chosen with the first batch and recorded as
            ``report.extra["cell_choice"]``; or globs / names).
        attack_settings: the attack's exact settings, recorded in the report.
        seed: recorded in the report.
        progress: optional wrapper for the batch iterable (e.g. ``tqdm``).

    Returns:
        An :class:`FSPReport` with per-cell mean/std of the distance, and clean/adversarial
        accuracy on the same samples.

    Raises:
        ValueError: an empty iterable, mismatched batches, attack outputs outside [0, 1] or NaN,
            a model whose logits or cell features are not finite (naming the first module whose
            output is NaN / inf when it shows on the first batch), cell selection errors.
    """
    net = unwrap_model(model)
    device = next(net.parameters()).device
    iterable: Iterable[_Batch] = progress(batches) if progress is not None else batches
    names, iterable, choice = _select_cells(net, cells, iterable)
    acc = _Accumulator(len(names), device)
    correct, n = _score_batches(net, iterable, attack, acc, names)
    sums = acc.sums.cpu()  # the one host sync
    hits = correct.cpu().tolist()
    _check_totals(sums, hits[2] == 0, names)
    versions = {"fspkit": __version__, "torch": torch.__version__, "python": platform.python_version()}
    extra: dict[str, Any] = {"cell_choice": choice.to_dict()} if choice is not None else {}
    return FSPReport(cells=_cell_scores(names, acc, sums), clean_acc=hits[0] / n, adv_acc=hits[1] / n, n=n,
                     attack=dict(attack_settings or {}), device=str(device), seed=seed, versions=versions, extra=extra)

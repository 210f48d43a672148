"""Which modules of a model are its *cells* (the units whose input and output FSP relates), and why.

A cell's FSP input is its positional argument at index ``getattr(cell, "fsp_input_index", 0)``
(:func:`cell_input`): RobNet cells (``forward(s0, s1)``) set it to 1 so the input is s1, the direct
predecessor (docs/design.md §5); generic blocks use their first argument. :mod:`fspkit.capture`
hooks the cells chosen here.

Which modules are cells (``cells=``):

* ``None``: the modules flagged ``is_cell = True`` (a class attribute), never found by type.
* a glob or a list of globs / names, matched against ``named_modules()`` names.
* ``"auto"`` (:func:`choose_cells`): the flagged cells when the model has any; otherwise its
  *repeated blocks*. A block is a module with submodules and its own ``forward`` that is a direct
  child of an ``nn.Sequential`` / ``nn.ModuleList`` / ``nn.ModuleDict`` (subclasses included);
  single layers (``Conv2d``, ``ReLU``) are not blocks. Blocks whose class occurs only once are
  dropped. Blocks nest (a ResNet stage holding residual blocks): a block's *level* is the number
  of blocks above it. One probe forward (no_grad, eval mode, then the flags are restored) on
  ``example`` (default: two random 32x32 images with the first ``Conv2d``'s input channels) records
  each block's input and output; the chosen level is the one with the most blocks whose input
  and output are 4-D, read as (N, C, H, W) (ties: the shallower level), and its 4-D blocks are
  the cells. FSP needs such maps: transformer blocks on (N, L, D) tokens give no FSP matrix, and
  a model whose only repeated blocks are like that is refused with that reason.
  :class:`CellChoice` says what was chosen and why, one line per group, as plain data.

How the zoo and common networks map to cells:

========================  ==============================================  ==================================
network                   flagged cells (``None``, and ``"auto"``)       ``"auto"`` without the flags
========================  ==============================================  ==================================
RobNets (``robnet_*``)    ``cells.0`` ... ``cells.<L-1>`` (input s1)      (always flagged)
resnet18 / resnet50       ``layer1.0`` ... ``layer4.<n>``: every          the same blocks
                          BasicBlock / Bottleneck
wrn28_10                  ``block1.0`` ... ``block3.3`` (WideBasicBlock)  the same blocks
densenet121               ``dense1`` ... ``dense4``: the four dense       the 58 dense layers
                          blocks (same resolution in and out)             ``dense1.0`` ... ``dense4.15``
torchvision-style ResNet  (no flags)                                      ``layer1.0`` ... ``layer4.<n>``:
                                                                          BasicBlock / Bottleneck
========================  ==============================================  ==================================

A model wrapped by :func:`robnet.models.normalize.with_normalization` keeps its cells under the
prefix ``model.`` (``model.layer1.0``); DDP / DataParallel / ``torch.compile`` wrappers are looked
through and add no prefix.

This module imports torch only.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from robnet.utils import eval_mode, unwrap_model

__all__ = ["AUTO", "CellChoice", "CellGroup", "CellSpec", "cell_input", "choose_cells", "find_cells", "resolve_cells"]

#: ``cells=``: ``None`` (the flagged cells), :data:`AUTO`, a glob, or a list of globs / names.
CellSpec = str | Sequence[str] | None

#: ``cells=AUTO``: the flagged cells, else the repeated blocks (:func:`choose_cells`).
AUTO = "auto"

_GLOB_CHARS = frozenset("*?[")


def _named(model: nn.Module) -> list[tuple[str, nn.Module]]:
    # The root ("") is never a cell: its input/output are the image and the logits.
    return [(name, m) for name, m in unwrap_model(model).named_modules() if name]


def find_cells(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every submodule flagged ``is_cell = True``, in ``named_modules()`` (network) order.

    RobNet cells and the zoo baselines' residual / dense blocks carry the flag. Wrappers
    (DDP, DataParallel) are unwrapped, so names have no ``module.`` prefix.

    Args:
        model: any module, possibly wrapped.

    Returns:
        ``(name, module)`` pairs; empty when nothing is flagged.
    """
    return [(name, m) for name, m in _named(model) if getattr(m, "is_cell", False) is True]


def _positional_name(module: nn.Module, index: int) -> str | None:
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional[index].name if index < len(positional) else None


def cell_input(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any | None:
    """The argument holding a cell's FSP input, from the arguments a forward hook receives.

    Args:
        module: the cell; its ``fsp_input_index`` (default 0) names the positional argument.
        args: the positional arguments of the call.
        kwargs: the keyword arguments of the call (an input passed by keyword is found through
            the signature of ``module.forward``).

    Returns:
        The argument (not necessarily a tensor), or None when the call did not pass it.
    """
    index = getattr(module, "fsp_input_index", 0)
    if index < len(args):
        return args[index]
    key = _positional_name(module, index)
    return kwargs.get(key) if key is not None else None


def _preview(names: list[str], k: int = 8) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f", ... ({len(names)} modules)" if len(names) > k else "")


# ----------------------------------------------------------------------------- cells="auto"

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_PROBE_HW = 32  # side of the default probe images


@dataclass(frozen=True, kw_only=True)
class CellGroup:
    """Cells of one class chosen together by :func:`choose_cells`.

    Attributes:
        kind: the class name (``"BasicBlock"``).
        names: the modules, network order.
        reason: one line: why these modules.
    """

    kind: str
    names: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "names": list(self.names), "reason": self.reason}


@dataclass(frozen=True, kw_only=True)
class CellChoice:
    """What ``cells="auto"`` chose and why (plain data through :meth:`to_dict`).

    Attributes:
        method: ``"is_cell"`` (the model's flagged cells) or ``"repeated"`` (repeated blocks).
        names: every chosen module, network order.
        groups: one :class:`CellGroup` per class.
        notes: one line each: the level chosen among the others, blocks left out and why.
    """

    method: Literal["is_cell", "repeated"]
    names: tuple[str, ...]
    groups: tuple[CellGroup, ...]
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """What a CLI prints: one line per group, then the notes."""
        return [group.reason for group in self.groups] + list(self.notes)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "names": list(self.names), "groups": [g.to_dict() for g in self.groups],
                "notes": list(self.notes)}


@dataclass(frozen=True)
class _Block:
    name: str
    module: nn.Module
    level: int


def _names_list(names: Sequence[str], k: int = 4) -> str:
    return ", ".join(names[:k]) + (f", ... {names[-1]}" if len(names) > k + 1 else
                                   f", {names[-1]}" if len(names) == k + 1 else "")


def _flagged_choice(found: list[tuple[str, nn.Module]]) -> CellChoice:
    kinds = Counter(type(m).__name__ for _, m in found)
    groups = []
    for kind in kinds:
        names = tuple(n for n, m in found if type(m).__name__ == kind)
        groups.append(CellGroup(kind=kind, names=names, reason=f"{len(names)} x {kind} ({_names_list(names)}): "
                                                               "flagged is_cell = True by the model's own class"))
    return CellChoice(method="is_cell", names=tuple(n for n, _ in found), groups=tuple(groups))


def _repeated_blocks(net: nn.Module) -> list[_Block]:
    """Composite children of containers whose class occurs at least twice, with their level."""
    modules = dict(net.named_modules())
    found = [(name, m) for name, m in modules.items()
             if name and isinstance(modules[name.rpartition(".")[0]], _CONTAINERS)
             and next(m.children(), None) is not None and type(m).forward is not nn.Module.forward]
    counts = Counter(type(m) for _, m in found)
    kept = [(name, m) for name, m in found if counts[type(m)] >= 2]
    names = {name for name, _ in kept}
    blocks = []
    for name, m in kept:
        parts = name.split(".")
        level = sum(".".join(parts[:i]) in names for i in range(1, len(parts)))
        blocks.append(_Block(name, m, level))
    return blocks


def _probe_input(net: nn.Module, example: torch.Tensor | None) -> torch.Tensor:
    if example is not None:
        if not isinstance(example, torch.Tensor):
            raise TypeError(f"example must be a Tensor batch of inputs, got {type(example).__name__}")
        return example[:2].detach()
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"cells='auto' runs one probe forward to see which blocks take (N, C, H, W) maps, but "
                         f"{type(net).__name__} has no Conv2d to guess its input channels from. Hint: pass "
                         "example=<a batch of inputs>")
    ref = next((t for t in [*net.parameters(), *net.buffers()] if t.is_floating_point()), None)
    x = torch.rand(2, conv.in_channels, _PROBE_HW, _PROBE_HW, generator=torch.Generator().manual_seed(0))
    return x if ref is None else x.to(device=ref.device, dtype=ref.dtype)


def _probe(net: nn.Module, blocks: list[_Block], example: torch.Tensor | None) -> dict[str, tuple[Any, Any]]:
    """Input and output shape (or the type name of a non-tensor) of each block's first call."""
    x = _probe_input(net, example)
    seen: dict[str, tuple[Any, Any]] = {}

    def describe(value: Any) -> Any:
        return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__

    def make_hook(name: str) -> Callable[..., None]:
        def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            if name not in seen:
                seen[name] = (describe(cell_input(mod, args, kwargs)), describe(output))
        return hook

    handles = []
    try:
        for block in blocks:
            handles.append(block.module.register_forward_hook(make_hook(block.name), with_kwargs=True))
        with torch.no_grad(), eval_mode(net):
            net(x)
    except Exception as e:
        raise ValueError(f"cells='auto': the probe forward of {type(net).__name__} on an input of shape "
                         f"{tuple(x.shape)} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
                         "Hint: pass example=<a batch of real inputs>, or cells=GLOB") from e
    finally:
        for handle in handles:
            handle.remove()
    return seen


def _is_map(shape: Any) -> bool:
    return isinstance(shape, tuple) and len(shape) == 4


def _why_not(shape_in: Any, shape_out: Any) -> str:
    if shape_in is None and shape_out is None:
        return "did not run in the probe forward"
    for what, shape in (("input", shape_in), ("output", shape_out)):
        if isinstance(shape, str):
            return f"its {what} is a {shape}, not a tensor"
        if len(shape) == 3:
            return f"its {what} is 3-D {shape}, e.g. (N, L, D) tokens, not an (N, C, H, W) map"
        if not _is_map(shape):
            return f"its {what} is {len(shape)}-D {shape}, not an (N, C, H, W) map"
    return "?"


def _group_reason(names: tuple[str, ...], kind: str, net: nn.Module, shapes: dict[str, tuple[Any, Any]]) -> str:
    parents = list(dict.fromkeys(n.rpartition(".")[0] or "<root>" for n in names))
    container = type(net.get_submodule(names[0].rpartition(".")[0])).__name__
    first_in, first_out = shapes[names[0]]
    return (f"{len(names)} x {kind} ({_names_list(names)}): repeated blocks in {container} "
            f"{_names_list(parents)}, each mapping (N, C, H, W) -> (N, C, H, W) (probe: {first_in} -> {first_out} "
            f"at {names[0]})")


def _no_maps_error(net: nn.Module, blocks: list[_Block], shapes: dict[str, tuple[Any, Any]]) -> ValueError:
    kinds = Counter(type(b.module).__name__ for b in blocks)
    first = blocks[0]
    why = _why_not(*shapes.get(first.name, (None, None)))
    listed = ", ".join(f"{n} x {k}" for k, n in kinds.items())
    return ValueError(f"cells='auto': no repeated block of {type(net).__name__} takes and returns (N, C, H, W) "
                      f"feature maps ({listed}; {first.name}: {why}). FSP matrices (docs/design.md §5) need 4-D "
                      "maps, so these blocks cannot be scored; transformer blocks on (N, L, D) tokens are like "
                      "this. Hint: pass cells=GLOB naming modules with 4-D outputs, if the model has any")


def choose_cells(model: nn.Module, example: torch.Tensor | None = None) -> CellChoice:
    """The cells of any network: its flagged cells, else its repeated blocks (module docstring).

    Args:
        model: any module, possibly wrapped in DDP / DataParallel / ``torch.compile``.
        example: a batch of inputs for the probe forward (its first two samples are used); None:
            two random 32x32 images with the first ``Conv2d``'s input channels. Not needed when
            the model has flagged cells.

    Returns:
        A :class:`CellChoice`: the names, one reason line per group, notes.

    Raises:
        ValueError: no repeated block (single layers do not count); repeated blocks that all
            take or return something other than 4-D maps (e.g. (N, L, D) tokens); a probe
            forward that fails (hint: pass ``example``).
    """
    net = unwrap_model(model)
    flagged = find_cells(net)
    if flagged:
        return _flagged_choice(flagged)
    blocks = _repeated_blocks(net)
    if not blocks:
        raise ValueError(f"cells='auto' found no repeated block in {type(net).__name__}: no nn.Sequential / "
                         "ModuleList / ModuleDict holds two or more sub-networks of one class (single layers "
                         "such as Conv2d do not count). Hint: pass cells=GLOB (modules include "
                         f"{_preview([n for n, _ in _named(net)])}) or set is_cell = True on your block class")
    shapes = _probe(net, blocks, example)
    valid = {b.name for b in blocks if b.name in shapes and _is_map(shapes[b.name][0]) and _is_map(shapes[b.name][1])}
    counts = Counter(b.level for b in blocks if b.name in valid)
    if not counts:
        raise _no_maps_error(net, blocks, shapes)
    level = max(counts, key=lambda lv: (counts[lv], -lv))
    chosen = [b for b in blocks if b.level == level and b.name in valid]
    kinds = list(dict.fromkeys(type(b.module).__name__ for b in chosen))
    groups = []
    for kind in kinds:
        names = tuple(b.name for b in chosen if type(b.module).__name__ == kind)
        groups.append(CellGroup(kind=kind, names=names, reason=_group_reason(names, kind, net, shapes)))
    others = ", ".join(f"level {lv}: {n}" for lv, n in sorted(counts.items()) if lv != level)
    notes = [f"nesting level {level} has the most such blocks ({len(chosen)}"
             + (f"; {others})" if others else ")")]
    left_out = [b for b in blocks if b.level == level and b.name not in valid]
    if left_out:
        notes.append(f"left out {len(left_out)} block(s) at that level ({_names_list([b.name for b in left_out])}): "
                     f"{left_out[0].name} {_why_not(*shapes.get(left_out[0].name, (None, None)))}")
    return CellChoice(method="repeated", names=tuple(b.name for b in chosen), groups=tuple(groups), notes=tuple(notes))


def resolve_cells(model: nn.Module, cells: CellSpec = None, *,
                  example: torch.Tensor | None = None) -> list[tuple[str, nn.Module]]:
    """The modules to capture: flagged cells by default, else those matching names / globs.

    Args:
        model: any module, possibly wrapped in DDP / DataParallel (names are the unwrapped ones).
        cells: ``None`` for :func:`find_cells`; ``"auto"`` for :func:`choose_cells` (flagged cells,
            else the repeated blocks); a glob (``"cells.1[0-9]"``, fnmatch syntax) or a list of
            globs / exact names, matched against ``named_modules()`` names. As in :mod:`fnmatch`,
            ``*`` also matches dots (``"cells.*"`` reaches submodules of the cells); use ``?`` /
            ``[...]`` for one level (``"cells.?"``, ``"cells.1[0-9]"``).
        example: ``"auto"`` only: inputs for its probe forward (see :func:`choose_cells`).

    Returns:
        ``(name, module)`` pairs in network order, without duplicates.

    Raises:
        ValueError: no flagged cell and no ``cells`` given; a name / glob that matches nothing
            (with close-match suggestions); an empty list; see :func:`choose_cells` for ``"auto"``.
        TypeError: ``cells`` is not a string or a sequence of strings.
    """
    named = _named(model)
    all_names = [n for n, _ in named]
    if isinstance(cells, str) and cells == AUTO:
        chosen = set(choose_cells(model, example).names)
        return [(n, m) for n, m in named if n in chosen]
    if cells is None:
        found = find_cells(model)
        if not found:
            raise ValueError(
                f"no cell found in {type(unwrap_model(model)).__name__}: no submodule has is_cell = True. "
                f"Hint: pass cells=GLOB (e.g. cells='layer?.?') or cells='auto' (the repeated blocks); modules "
                f"include {_preview(all_names)}")
        return found
    patterns: list[str]
    if isinstance(cells, str):
        patterns = [cells]
    elif isinstance(cells, Sequence) and all(isinstance(p, str) for p in cells):
        patterns = list(cells)
    else:
        raise TypeError(f"cells must be None, a glob string or a list of names/globs, got {cells!r}")
    if not patterns:
        raise ValueError("cells is an empty list. Hint: pass None to capture every flagged cell.")
    selected: set[str] = set()
    for pat in patterns:
        if _GLOB_CHARS & set(pat):
            hits = [n for n in all_names if fnmatch.fnmatchcase(n, pat)]
        else:
            hits = [n for n in all_names if n == pat]
        if not hits:
            close = difflib.get_close_matches(pat, all_names, n=5, cutoff=0.6)
            hint = (f"did you mean {', '.join(map(repr, close))}?" if close
                    else f"modules include {_preview(all_names)}")
            owner = type(unwrap_model(model)).__name__
            raise ValueError(f"cells {pat!r} matches no module of {owner}; {hint} "
                             "Hint: names are those of named_modules() without any 'module.' prefix.")
        selected.update(hits)
    return [(n, m) for n, m in named if n in selected]

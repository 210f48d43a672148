"""Capture the input and output of chosen cells with hooks, inside a context manager.

::

    with capture_cells(model) as cap:          # every module flagged ``is_cell = True``
        model(x)
    for name, f_in, f_out in cap.features:     # network order, detached clones
        ...

A forward pre-hook records the cell's input and a forward hook its output; both are removed on
every exit path, exceptions included. The input is the cell's FSP input
(:func:`fspkit.cells.cell_input`: the positional argument at ``fsp_input_index``, 0 unless the class
says otherwise; docs/design.md §5). Extra non-tensor arguments (the supernet's
``cell(s0, s1, genotype_cell)``) are ignored. Which modules are cells (flagged, globs / names,
``"auto"``) is decided by :mod:`fspkit.cells`; a capture resolves them when it is built, so naming
errors raise before any forward.

This module imports torch only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from fspkit.cells import AUTO, CellChoice, CellSpec, cell_input, choose_cells, resolve_cells

__all__ = ["CellCapture", "OnPair", "capture_cells"]

logger = logging.getLogger(__name__)

#: ``on_pair(name, index, f_in, f_out)``: called inside the forward hook; ``index`` is the
#: position of ``name`` in :attr:`CellCapture.names`. The tensors are detached but not cloned:
#: use them before returning and do not keep references.
OnPair = Callable[[str, int, torch.Tensor, torch.Tensor], None]


class CellCapture:
    """Hooks on selected cells, active inside ``with``; build it with :func:`capture_cells`.

    Attributes:
        names: selected module names, network order.
        choice: for ``cells="auto"``, the :class:`fspkit.cells.CellChoice` (what was chosen and why); else None.
        modules: the selected modules, same order.
        features: storing mode: ``(name, input, output)`` per call, in call order, detached clones.
            Always empty in callback mode.
        counts: number of calls per name during the last ``with`` block.
    """

    def __init__(self, model: nn.Module, cells: CellSpec = None, *, on_pair: OnPair | None = None,
                 check_fired: bool = True, example: torch.Tensor | None = None) -> None:
        if on_pair is not None and not callable(on_pair):
            raise TypeError(f"on_pair must be callable (name, index, f_in, f_out) -> None, got {on_pair!r}")
        self.choice: CellChoice | None = None
        if isinstance(cells, str) and cells == AUTO:
            self.choice = choose_cells(model, example)
            cells = list(self.choice.names)
        selected = resolve_cells(model, cells)
        self.model = model
        self.names: list[str] = [n for n, _ in selected]
        self.modules: list[nn.Module] = [m for _, m in selected]
        self.on_pair = on_pair
        self.check_fired = check_fired
        self.features: list[tuple[str, torch.Tensor, torch.Tensor]] = []
        self.counts: dict[str, int] = dict.fromkeys(self.names, 0)
        self._handles: list[RemovableHandle] = []
        # Inputs waiting for their forward hook, a stack per module (re-entrant calls nest).
        self._pending: dict[int, list[tuple[torch.Tensor, int | None]]] = {}
        self._active = False

    def _input_of(self, name: str, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        index = getattr(module, "fsp_input_index", 0)
        x = cell_input(module, args, kwargs)
        if x is not None or index < len(args):
            return x
        raise ValueError(f"cell {name!r} ({type(module).__name__}) was called with {len(args)} positional "
                         f"argument(s) but its FSP input is argument {index} (fsp_input_index); "
                         "Hint: call it positionally or set fsp_input_index on its class.")

    def _make_hooks(self, name: str, index: int, module: nn.Module) -> tuple[
            Callable[..., None], Callable[..., None]]:
        key = id(module)
        callback = self.on_pair
        store = callback is None

        def pre_hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            x = self._input_of(name, mod, args, kwargs)
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"cell {name!r} ({type(mod).__name__}): FSP input argument "
                                f"{getattr(mod, 'fsp_input_index', 0)} is {type(x).__name__}, expected a "
                                "Tensor. Hint: set fsp_input_index on the class to the position of its "
                                "feature-map input.")
            x = x.detach()
            if store:
                # Clone now: the cell itself may modify its input in place.
                self._pending.setdefault(key, []).append((x.clone(), None))
            else:
                version = None if x.is_inference() else x._version
                self._pending.setdefault(key, []).append((x, version))

        def hook(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            x, version = self._pending[key].pop()
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"cell {name!r} ({type(mod).__name__}) returned {type(output).__name__}, "
                                "expected a Tensor. Hint: select a module whose output is one feature map.")
            self.counts[name] += 1
            y = output.detach()
            if callback is None:
                # Clone: a later in-place op (ReLU(inplace=True)) would rewrite the stored map.
                self.features.append((name, x, y.clone()))
                return
            if version is not None and x._version != version:
                raise ValueError(f"cell {name!r} ({type(mod).__name__}) modified its input in place, so the "
                                 "captured input is no longer the one it received. Hint: use storing mode "
                                 "(on_pair=None), which clones the input before the cell runs.")
            callback(name, index, x, y)

        return pre_hook, hook

    def __enter__(self) -> CellCapture:
        if self._active:
            raise RuntimeError("this capture is already active; a CellCapture cannot be nested in itself")
        self.features = []
        self.counts = dict.fromkeys(self.names, 0)
        self._pending = {}
        try:
            for index, (name, module) in enumerate(zip(self.names, self.modules, strict=True)):
                pre_hook, hook = self._make_hooks(name, index, module)
                self._handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
                self._handles.append(module.register_forward_hook(hook, with_kwargs=True))
        except BaseException:
            self._remove()
            raise
        self._active = True
        return self

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._pending = {}
        self._active = False

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._remove()
        if exc_type is not None or not self.check_fired:
            return
        silent = [n for n in self.names if self.counts[n] == 0]
        if silent:
            more = f" (nor did {', '.join(map(repr, silent[1:]))})" if len(silent) > 1 else ""
            raise ValueError(f"cell {silent[0]!r} never ran during the capture{more}: the model's forward "
                             "did not call it. Hint: select modules the forward uses, or pass "
                             "check_fired=False.")
        logger.debug("captured %d calls over %d cells", sum(self.counts.values()), len(self.names))


def capture_cells(model: nn.Module, cells: CellSpec = None, *, on_pair: OnPair | None = None,
                  check_fired: bool = True, example: torch.Tensor | None = None) -> CellCapture:
    """Capture the (input, output) feature maps of cells while the model runs.

    Use as ``with capture_cells(model, cells=...) as cap: model(x)``. Cells are resolved when
    this is called (so naming errors raise before any forward) and hooked on ``__enter__``.

    Storing mode (default): ``cap.features`` holds ``(name, input, output)`` per cell call,
    detached and cloned, in call order (network order for a plain forward). Callback mode
    (``on_pair``): ``on_pair(name, index, f_in, f_out)`` runs inside the forward hook with
    detached, uncloned maps and nothing is stored, so each map can be reduced (e.g. with
    :func:`fspkit.fsp.fsp_pair_distance`) and dropped at once. Under autocast the maps keep the
    forward's dtype (bf16); the FSP functions cast them to float32. The model's train/eval mode
    is never changed.

    Args:
        model: any module; ``DistributedDataParallel`` / ``DataParallel`` wrappers are unwrapped
            for discovery and names carry no ``module.`` prefix.
        cells: ``None`` (modules flagged ``is_cell = True``), ``"auto"`` (flagged cells, else
            the repeated blocks: :func:`fspkit.cells.choose_cells`; the reasons are in ``cap.choice``), a glob,
            or a list of globs / names (see :func:`fspkit.cells.resolve_cells`).
        on_pair: callback for streaming; ``index`` is the cell's position in ``cap.names``.
        check_fired: on normal exit, raise when a selected cell never ran.
        example: ``"auto"`` only: inputs for its probe forward.

    Returns:
        A :class:`CellCapture` context manager.

    Raises:
        ValueError: see :func:`fspkit.cells.resolve_cells`; on normal exit of the ``with`` block, a selected
            cell that never ran (``check_fired``); in callback mode, a cell that modified its
            input in place.
        TypeError: a selected module whose FSP input or output is not a tensor (raised from the
            forward).
    """
    return CellCapture(model, cells, on_pair=on_pair, check_fired=check_fired, example=example)

"""Context managers that set a model's mode or freeze its parameters and restore them exactly.

``model.eval()`` followed by ``model.train()`` is not a restore: a model whose BN layers were
deliberately left in eval mode inside a training model (frozen BN, a frozen backbone) would come
back all-training. These context managers record the ``training`` flag of every submodule (and
the ``requires_grad`` flag of every parameter) on entry and put each one back on exit, on every
exit path, exceptions included.

Attacks in :mod:`robnet.attacks` never change the mode themselves: the caller decides. The
official RobNets code crafts the training attack with the model in train mode (BN uses batch
statistics and updates its running averages during the attack); evaluation attacks the model in
eval mode::

    with eval_mode(model):
        x_adv = pgd(model, x, y, eps=8 / 255, step_size=2 / 255, steps=20)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from torch import nn

__all__ = ["eval_mode", "frozen_params", "train_mode"]


@contextmanager
def _mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    saved = [(module, module.training) for module in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for module, flag in saved:
            module.training = flag


def eval_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Put ``model`` (all submodules) in eval mode; restore every submodule's own flag on exit.

    Args:
        model: the module.

    Yields:
        the same module.
    """
    return _mode(model, False)


def train_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """Put ``model`` (all submodules) in train mode; restore every submodule's own flag on exit.

    Args:
        model: the module.

    Yields:
        the same module.
    """
    return _mode(model, True)


@contextmanager
def frozen_params(model: nn.Module) -> Iterator[nn.Module]:
    """Set ``requires_grad=False`` on every parameter; restore each parameter's own flag on exit.

    Inside, a backward pass through the model computes no parameter gradient at all, so an attack
    that asks ``torch.autograd.grad(loss, x_adv)`` for the input gradient does less work and never
    touches ``param.grad``. Parameters shared between submodules are visited once.

    Args:
        model: the module.

    Yields:
        the same module.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield model
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


"""Attacks in [0, 1] pixel space and robust evaluation.

* Stateless attack functions ``attack(model, x, y, *, settings) -> x_adv``: :func:`fgsm`,
  :func:`pgd` (L-inf), :func:`pgd_l2`, :func:`mifgsm`, :func:`deepfool`.
* The attack-spec language both command-line tools share (``pgd20:eps=4/255``):
  :class:`AttackConfig`, :func:`parse_attack`, :func:`make_attack` (:mod:`~robnet.attacks.spec`).
* :func:`evaluate`: the paper's Table 1 row for any model, with gradient-masking checks
  (:mod:`~robnet.attacks.evaluation`).

Settings, threat model and decisions: docs/design.md §3.
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

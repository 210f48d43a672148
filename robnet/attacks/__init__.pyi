"""Attacks in [0, 1] pixel space and robust evaluation.

* Stateless attack functions ``attack(model, x, y, *, settings) -> x_adv``: :func:`fgsm`,
  :func:`pgd` (L-inf), :func:`pgd_l2`, :func:`mifgsm`, :func:`deepfool`.
* The attack-spec language both command-line tools share (``pgd20:eps=4/255``):
  :class:`AttackConfig`, :func:`parse_attack`, :func:`make_attack` (:mod:`~robnet.attacks.spec`).
* :func:`evaluate`: the paper's Table 1 row for any model, with gradient-masking checks
  (:mod:`~robnet.attacks.evaluation`).

Settings, threat model and decisions: docs/design.md §3.
"""

from .evaluation import AttackResult, EvalReport, evaluate, gradient_masking_checks, wilson_interval
from .gradient import AttackFn, deepfool, fgsm, mifgsm, no_attack, pgd, pgd_l2
from .spec import (
    ATTACK_NAMES,
    AttackConfig,
    attack_record,
    format_attack,
    make_attack,
    parse_attack,
    parse_attack_list,
    parse_fraction,
)

__all__ = [
    "ATTACK_NAMES", "AttackConfig", "AttackFn", "AttackResult", "EvalReport", "attack_record", "deepfool",
    "evaluate", "fgsm", "format_attack", "gradient_masking_checks", "make_attack", "mifgsm", "no_attack",
    "parse_attack", "parse_attack_list", "parse_fraction", "pgd", "pgd_l2", "wilson_interval",
]

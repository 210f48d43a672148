"""Attacks in [0, 1] pixel space and robust evaluation.

* Stateless attack functions ``attack(model, x, y, *, settings) -> x_adv``, all keeping one
  contract (:mod:`~robnet.attacks.contract`; :data:`AttackFn` is one with its settings bound):
  :func:`fgsm`, :func:`pgd` (L-inf), :func:`pgd_l2`, :func:`mifgsm`
  (:mod:`~robnet.attacks.gradient`), :func:`deepfool` (:mod:`~robnet.attacks.deepfool`), and
  AutoAttack's parts :func:`apgd` (APGD-CE / APGD-T), :func:`fab_t`, :func:`square`.
* :func:`autoattack` (Croce & Hein 2020): the worst-case batch of APGD-CE, APGD-T, FAB-T and
  Square; :func:`autoattack_result` keeps the per-attack breakdown (:class:`AutoAttackResult`).
* An attack's configuration: :class:`AttackConfig`, bound to its function by :func:`make_attack`
  (:mod:`~robnet.attacks.config`).
* The attack-spec language both command-line tools share (``pgd20:eps=4/255``, ``autoattack``):
  :func:`parse_attack`, :func:`normalize_spec`, :func:`format_attack`, :func:`attack_record`
  (:mod:`~robnet.attacks.spec`).
* :func:`evaluate`: the paper's Table 1 row for any model (:mod:`~robnet.attacks.evaluation`),
  with gradient-masking checks (:func:`gradient_masking_report`, :mod:`~robnet.attacks.masking`);
  its results are an :class:`EvalReport` of :class:`AttackResult` (:mod:`~robnet.attacks.report`),
  after the model/data refusals of :mod:`~robnet.attacks.preflight`.

Settings, threat model and decisions: docs/design.md §3.
"""

from .apgd import apgd
from .autoattack import AUTOATTACK_ATTACKS, AutoAttackResult, autoattack, autoattack_result
from .config import ATTACK_NAMES, AttackConfig, make_attack, make_autoattack
from .contract import AttackFn
from .deepfool import deepfool
from .evaluation import evaluate
from .fab import fab_t
from .gradient import fgsm, mifgsm, no_attack, pgd, pgd_l2
from .masking import MaskingReport, gradient_masking_checks, gradient_masking_report
from .report import AttackResult, EvalReport, wilson_interval
from .spec import attack_record, format_attack, normalize_spec, parse_attack, parse_attack_list, parse_fraction
from .square import square

__all__ = [
    "ATTACK_NAMES", "AUTOATTACK_ATTACKS", "AttackConfig", "AttackFn", "AttackResult", "AutoAttackResult",
    "EvalReport", "MaskingReport", "apgd", "attack_record", "autoattack", "autoattack_result", "deepfool",
    "evaluate", "fab_t", "fgsm", "format_attack", "gradient_masking_checks", "gradient_masking_report",
    "make_attack", "make_autoattack", "mifgsm", "no_attack", "normalize_spec", "parse_attack", "parse_attack_list",
    "parse_fraction", "pgd", "pgd_l2", "square", "wilson_interval",
]

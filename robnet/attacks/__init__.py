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

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

"""An attack's configuration (robnet.attacks.config): AttackConfig's validation, make_attack's
name -> function table (every binder against a direct call of its attack), make_autoattack."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from robnet.attacks.apgd import apgd
from robnet.attacks.autoattack import autoattack, autoattack_result
from robnet.attacks.config import ATTACK_NAMES, AttackConfig, make_attack, make_autoattack
from robnet.attacks.deepfool import deepfool
from robnet.attacks.fab import fab_t
from robnet.attacks.gradient import fgsm, mifgsm, pgd, pgd_l2
from robnet.attacks.spec import parse_attack
from robnet.attacks.square import square
from tests.robnet.attacks._tiny import EPS, STEP, batch, tiny_cnn, warmed


def test_attack_config_validation() -> None:
    with pytest.raises(ValueError, match=r"unknown attack name 'pdg'.*Did you mean 'pgd'"):
        AttackConfig(name="pdg")
    with pytest.raises(ValueError, match="eps must be a non-negative number, got -1"):
        AttackConfig(name="pgd", eps=-1)
    with pytest.raises(ValueError, match="step_size must be a finite non-negative number, got -1"):
        AttackConfig(name="pgd", step_size=-1)
    with pytest.raises(ValueError, match="steps must be >= 0, got -2"):
        AttackConfig(name="pgd", steps=-2)
    with pytest.raises(TypeError, match="random_start must be a bool, got int"):
        AttackConfig(name="pgd", random_start=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_candidates must be >= 2, got 1"):
        AttackConfig(name="deepfool", num_candidates=1)
    with pytest.raises(ValueError, match="norm must be 'inf' or '2', got 'l1'"):
        AttackConfig(name="deepfool", norm="l1")
    with pytest.raises(ValueError, match="pgd_l2 is an L2 attack, so norm must be '2', got 'inf'"):
        AttackConfig(name="pgd_l2")
    with pytest.raises(ValueError, match="pgd is an L-inf attack, so norm must be 'inf', got '2'"):
        AttackConfig(name="pgd", norm="2")
    with pytest.raises(ValueError, match="pgd_l2 needs a finite eps"):
        AttackConfig(name="pgd_l2", norm="2", eps=math.inf)
    with pytest.raises(TypeError, match="steps must be an int, got float"):
        AttackConfig(name="pgd", steps=2.5)  # type: ignore[arg-type]
    assert set(ATTACK_NAMES) == {"none", "fgsm", "pgd", "pgd_l2", "mifgsm", "deepfool", "apgd", "fab_t", "square",
                                 "autoattack"}


def test_linf_eps_above_one_is_refused() -> None:
    """`--eps 8` (meaning 8/255) was accepted and attacked the whole pixel range."""
    for spec in ("pgd20:eps=8", "fgsm:eps=2", "mifgsm:eps=1.5", "deepfool:eps=3"):
        name = spec.split(":")[0].rstrip("0123456789")
        with pytest.raises(ValueError, match=rf"AttackConfig\({name}\): eps \d(\.5)?\.?\d* is above 1, larger than "
                                             r"the whole \[0, 1\] pixel range\. Hint: L-inf radii are in pixel "
                                             r"units, e\.g\. eps=8/255"):
            parse_attack(spec)
    assert parse_attack("pgd20:eps=1").eps == 1.0
    assert parse_attack("pgd20:eps=inf").eps == math.inf  # an explicit unbounded attack stays allowed
    assert parse_attack("pgd20_l2:eps=2").eps == 2.0  # L2 radii may exceed 1


def test_make_attack_binds_the_settings() -> None:
    model = warmed(tiny_cnn()).eval()
    x, y = batch()
    g = lambda: torch.Generator().manual_seed(21)  # noqa: E731
    cases: list[tuple[str, Callable[[], Tensor]]] = [
        ("fgsm", lambda: fgsm(model, x, y, eps=EPS)),
        ("pgd7", lambda: pgd(model, x, y, eps=EPS, step_size=STEP, steps=7, generator=g())),
        ("pgd7:random_start=false",
         lambda: pgd(model, x, y, eps=EPS, step_size=STEP, steps=7, random_start=False)),
        ("pgd4_l2", lambda: pgd_l2(model, x, y, eps=0.5, step_size=2.5 * 0.5 / 4, steps=4, generator=g())),
        ("mifgsm:steps=5", lambda: mifgsm(model, x, y, eps=EPS, step_size=STEP, steps=5)),
        ("deepfool", lambda: deepfool(model, x, y, eps=EPS)),
        ("deepfool:eps=inf", lambda: deepfool(model, x, y)),
        ("deepfool_l2", lambda: deepfool(model, x, y, norm="2", eps=0.5)),
    ]
    for spec, direct in cases:
        assert torch.equal(make_attack(parse_attack(spec), generator=g())(model, x, y), direct()), spec
    with pytest.raises(TypeError, match=re.escape("expected an AttackConfig, got str. Hint: parse_attack")):
        make_attack("pgd20")  # type: ignore[arg-type]


def test_none_attack_returns_a_copy() -> None:
    model = tiny_cnn().eval()
    x, y = batch()
    out = make_attack(parse_attack("clean"))(model, x, y)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert parse_attack("none") == parse_attack("clean")


def test_the_table_covers_every_attack_name() -> None:
    model = warmed(tiny_cnn()).eval()
    x, y = batch(4)
    for name in ATTACK_NAMES:
        cfg = AttackConfig(name=name, norm="2" if name == "pgd_l2" else "inf", steps=2, eps=0.1, queries=3)
        out = make_attack(cfg, generator=torch.Generator().manual_seed(0))(model, x, y)
        assert out.shape == x.shape, name


def test_make_attack_binds_the_autoattack_family() -> None:
    """The binders call the attack functions with the config's settings and the given generator."""
    model = warmed(tiny_cnn()).eval()
    x, y = batch()
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    cases: list[tuple[str, Callable[[], Tensor]]] = [
        ("apgd-ce:steps=5", lambda: apgd(model, x, y, eps=EPS, steps=5, generator=g())),
        ("apgd-t:steps=4,n_target_classes=2", lambda: apgd(model, x, y, eps=EPS, loss="dlr-targeted", steps=4,
                                                            n_target_classes=2, generator=g())),
        ("apgd-dlr_l2:steps=3,restarts=2", lambda: apgd(model, x, y, eps=0.5, norm="l2", loss="dlr", steps=3,
                                                         restarts=2, generator=g())),
        ("fab-t:steps=3,n_target_classes=2", lambda: fab_t(model, x, y, eps=EPS, steps=3, n_target_classes=2,
                                                            generator=g())),
        ("square:queries=20,p_init=0.3", lambda: square(model, x, y, eps=EPS, queries=20, p_init=0.3,
                                                         generator=g())),
    ]
    for spec, direct in cases:
        assert torch.equal(make_attack(parse_attack(spec), generator=g())(model, x, y), direct()), spec


def test_make_autoattack_draws_a_fresh_seed_per_call_from_the_generator() -> None:
    model = warmed(tiny_cnn()).eval()
    x, y = batch()
    cfg = parse_attack("autoattack:steps=3,queries=10,n_target_classes=2")
    gen = torch.Generator().manual_seed(11)
    # one draw per call from the generator: the first call uses the first draw, the second the next
    seeds = [int(torch.randint(2**62, (1,), generator=g)) for g in [torch.Generator().manual_seed(11)] for _ in (0, 1)]
    assert seeds[0] != seeds[1]
    run = make_autoattack(cfg, generator=gen)
    first, second = run(model, x, y), run(model, x, y)
    for res, seed in ((first, seeds[0]), (second, seeds[1])):
        direct = autoattack_result(model, x, y, eps=EPS, seed=seed, steps=3, queries=10, n_target_classes=2)
        assert torch.equal(res.x_adv, direct.x_adv)
        assert res.counts() == direct.counts()
    again = make_attack(cfg, generator=torch.Generator().manual_seed(11))(model, x, y)
    assert torch.equal(again, first.x_adv)
    assert torch.equal(again, autoattack(model, x, y, eps=EPS, seed=seeds[0], steps=3, queries=10,
                                         n_target_classes=2))
    with pytest.raises(ValueError, match=r"make_autoattack: expected an autoattack config, got 'pgd'"):
        make_autoattack(parse_attack("pgd20"))
    with pytest.raises(TypeError, match="make_autoattack: expected an AttackConfig, got str"):
        make_autoattack("autoattack")  # type: ignore[arg-type]

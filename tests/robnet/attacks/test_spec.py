"""The attack language both CLIs share (robnet.attacks.spec): AttackConfig, parse_attack,
parse_attack_list, format_attack, make_attack's name -> function table, attack_record."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict

import pytest
import torch
from torch import Tensor, nn

from robnet.attacks.apgd import apgd
from robnet.attacks.autoattack import autoattack, autoattack_result
from robnet.attacks.deepfool import deepfool
from robnet.attacks.fab import fab_t
from robnet.attacks.gradient import fgsm, mifgsm, pgd, pgd_l2
from robnet.attacks.spec import (
    ATTACK_NAMES,
    AttackConfig,
    attack_record,
    format_attack,
    make_attack,
    make_autoattack,
    normalize_spec,
    parse_attack,
    parse_attack_list,
    parse_fraction,
)
from robnet.attacks.square import square
from robnet.utils import train_mode

EPS = 8 / 255
STEP = 2 / 255


def tiny_cnn(seed: int = 0, classes: int = 10) -> nn.Sequential:
    """conv(3->8) + BN + ReLU + maxpool + linear, for 3x16x16 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, classes),
    )


def batch(n: int = 8, seed: int = 1) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


def warmed(model: nn.Sequential) -> nn.Sequential:
    """Give BN non-trivial running statistics, so eval and train mode really differ."""
    with torch.no_grad(), train_mode(model):
        for s in range(3):
            model(batch(16, seed=100 + s)[0])
    return model


def test_parse_attack_gives_the_paper_settings() -> None:
    assert parse_attack("clean") == AttackConfig(name="none", eps=0.0, step_size=0.0, steps=0,
                                                 random_start=False)
    assert parse_attack("fgsm") == AttackConfig(name="fgsm", eps=8 / 255, step_size=8 / 255, steps=1,
                                                random_start=False)
    for n in (7, 20, 100):
        assert parse_attack(f"pgd{n}") == AttackConfig(name="pgd", eps=8 / 255, step_size=2 / 255, steps=n,
                                                        random_start=True)
    assert parse_attack("pgd") == parse_attack("pgd20") == parse_attack(" PGD-20 ")
    assert parse_attack("mifgsm") == AttackConfig(name="mifgsm", eps=8 / 255, step_size=2 / 255, steps=20,
                                                  random_start=False, decay=1.0)
    assert parse_attack("MI-FGSM") == parse_attack("mifgsm")
    assert parse_attack("deepfool") == AttackConfig(name="deepfool", eps=8 / 255, steps=50, overshoot=0.02,
                                                    num_candidates=10, norm="inf", random_start=False)
    assert parse_attack("deepfool_l2") == AttackConfig(name="deepfool", eps=0.5, steps=50, norm="2",
                                                       random_start=False)
    assert parse_attack("pgd10_l2") == AttackConfig(name="pgd_l2", norm="2", eps=0.5, steps=10,
                                                    step_size=0.125)


def test_parse_attack_overrides() -> None:
    c = parse_attack("pgd20:eps=4/255, random_start=false,step_size=1/255")
    assert (c.eps, c.step_size, c.random_start, c.steps) == (4 / 255, 1 / 255, False, 20)
    assert parse_attack("fgsm:eps=4/255").step_size == 4 / 255  # FGSM's step follows its eps
    assert parse_attack("pgd10_l2:eps=1").step_size == 0.25
    assert parse_attack("deepfool:eps=inf,num_candidates=3").num_candidates == 3
    assert parse_attack("pgd7:steps=9").steps == 9


@pytest.mark.parametrize("spec", ["clean", "fgsm", "pgd7", "pgd20", "pgd100", "mifgsm", "deepfool",
                                  "deepfool_l2", "pgd20_l2", "pgd20:eps=4/255", "fgsm:eps=0.1",
                                  "pgd5_l2:eps=1.0",
                                  "mifgsm:decay=0.5,steps=10", "deepfool:eps=inf,overshoot=0.05"])
def test_format_parse_round_trip(spec: str) -> None:
    c = parse_attack(spec)
    assert parse_attack(format_attack(c)) == c
    assert AttackConfig(**asdict(c)) == c


@pytest.mark.parametrize("cfg", [
    AttackConfig(name="fgsm"), AttackConfig(name="pgd", steps=3, step_size=0.1, random_start=False),
    AttackConfig(name="pgd_l2", norm="2", eps=0.25, step_size=0.3, steps=4),
    AttackConfig(name="none"), AttackConfig(name="mifgsm", eps=0.1), AttackConfig(name="deepfool", norm="2"),
])
def test_format_round_trip_of_arbitrary_configs(cfg: AttackConfig) -> None:
    assert parse_attack(format_attack(cfg)) == cfg


def test_format_is_short_for_paper_settings() -> None:
    assert format_attack(parse_attack("pgd100")) == "pgd100"
    assert format_attack(parse_attack("pgd20:eps=4/255")) == f"pgd20:eps={4 / 255!r}"


def test_parse_attack_errors() -> None:
    with pytest.raises(ValueError, match=r"parse_attack: unknown attack 'pgdx'\. .*expected clean, fgsm, "):
        parse_attack("pgdx")
    with pytest.raises(ValueError, match=re.escape("unknown attack 'deepfol'. Did you mean 'deepfool'")):
        parse_attack("deepfol")
    with pytest.raises(ValueError, match=r"setting 'step' in 'pgd20:step=1/255'\. Did you mean 'steps'"):
        parse_attack("pgd20:step=1/255")
    with pytest.raises(ValueError, match="override 'eps' in 'pgd20:eps' is not key=value"):
        parse_attack("pgd20:eps")
    with pytest.raises(ValueError, match="cannot parse 'abc' as a number"):
        parse_attack("pgd20:eps=abc")
    with pytest.raises(ValueError, match=re.escape("steps='1.5' in 'pgd20:steps=1.5' is not an integer")):
        parse_attack("pgd20:steps=1.5")
    with pytest.raises(ValueError, match=r"random_start='maybe' .* is not a boolean\. Hint: true or false"):
        parse_attack("pgd20:random_start=maybe")
    with pytest.raises(ValueError, match=r"AttackConfig\(pgd\): eps must be a non-negative number, got -0.1"):
        parse_attack("pgd20:eps=-0.1")
    with pytest.raises(TypeError, match="parse_attack: expected a string, got int"):
        parse_attack(20)  # type: ignore[arg-type]


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


def test_parse_fraction() -> None:
    assert parse_fraction("8/255") == 8 / 255
    assert parse_fraction("8/255.") == 8 / 255
    assert parse_fraction(" 8 / 255 ") == 8 / 255
    assert parse_fraction("0.03137") == 0.03137
    assert parse_fraction("2") == 2.0
    assert parse_fraction("inf") == math.inf
    for bad, msg in [("abc", "cannot parse 'abc' as a number. Hint: write a decimal or a fraction, e.g. '8/"),
                     ("", "cannot parse '' as a number"),
                     ("8/", "cannot parse '8/' as a number"),
                     ("1/0", "cannot parse '1/0': division by zero"),
                     ("1/2/3", "cannot parse '1/2/3' as a number: more than one '/'"),
                     ("nan", "cannot parse 'nan': not a number")]:
        with pytest.raises(ValueError, match=re.escape(msg)):
            parse_fraction(bad)
    with pytest.raises(TypeError, match="parse_fraction: expected a string, got float"):
        parse_fraction(0.5)  # type: ignore[arg-type]


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


def test_attack_record_is_asdict_plus_the_canonical_spec() -> None:
    cfg = parse_attack("pgd5:eps=0.1")
    rec = attack_record(cfg)
    assert rec == {**asdict(cfg), "spec": "pgd5:eps=0.1"}
    assert parse_attack(rec["spec"]) == cfg
    assert AttackConfig(**{k: v for k, v in rec.items() if k != "spec"}) == cfg
    assert attack_record(parse_attack(" PGD-20 "))["spec"] == "pgd20"
    with pytest.raises(TypeError, match="attack_record: expected an AttackConfig, got str"):
        attack_record("pgd20")  # type: ignore[arg-type]


def test_parse_attack_list() -> None:
    pairs = parse_attack_list("clean, fgsm:eps=0.1,pgd20:eps=4/255,step_size=1/255,random_start=false,pgd100")
    assert [s for s, _ in pairs] == ["clean", "fgsm:eps=0.1", "pgd20:eps=4/255,step_size=1/255,random_start=false",
                                     "pgd100"]
    assert pairs[2][1] == AttackConfig(name="pgd", eps=4 / 255, step_size=1 / 255, random_start=False)
    assert [c for _, c in pairs] == [parse_attack(s) for s, _ in pairs]
    hint = "Hint: e.g. --attacks clean,fgsm,pgd20"
    for bad in (",", "", " ", "pgd20,,fgsm", "fgsm,"):
        with pytest.raises(ValueError, match=rf"attack list {re.escape(repr(bad))} has an empty item\. {hint}"):
            parse_attack_list(bad)
    with pytest.raises(ValueError, match=r"names 'fgsm' twice; each result needs its own name"):
        parse_attack_list("fgsm,pgd20,fgsm")
    with pytest.raises(ValueError, match=r"parse_attack: unknown setting 'eps' in 'clean:eps=1'|unknown attack"):
        parse_attack_list("eps=1")
    with pytest.raises(TypeError, match="parse_attack_list: expected a string, got list"):
        parse_attack_list(["pgd20"])  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- AutoAttack's specs


def test_autoattack_family_specs_give_the_papers_settings() -> None:
    """Croce & Hein 2020: APGD 100 steps, APGD-T/FAB-T 9 targets, Square 5000 queries, eps 8/255 (L2: 0.5)."""
    apgd_ce = AttackConfig(name="apgd", loss="ce", steps=100, step_size=0.0)
    for spec in ("apgd-ce", "apgd_ce", "APGD-CE", "apgd", "apgd-ce:steps=100"):
        assert parse_attack(spec) == apgd_ce, spec
    assert parse_attack("apgd-t") == parse_attack("apgd_t") == AttackConfig(
        name="apgd", loss="dlr-targeted", steps=100, step_size=0.0, n_target_classes=9)
    assert parse_attack("apgd-dlr").loss == "dlr"
    assert parse_attack("apgd-ce_l2") == AttackConfig(name="apgd", norm="2", eps=0.5, steps=100, step_size=0.0)
    assert parse_attack("fab-t") == parse_attack("fab_t") == AttackConfig(
        name="fab_t", steps=100, step_size=0.0, random_start=False)
    assert parse_attack("fab-t_l2").norm == "2" and parse_attack("fab-t_l2").eps == 0.5
    assert parse_attack("square") == AttackConfig(name="square", steps=0, step_size=0.0, queries=5000, p_init=0.8)
    aa = parse_attack("autoattack")
    assert aa == AttackConfig(name="autoattack", eps=8 / 255, steps=100, step_size=0.0, queries=5000, restarts=1,
                              n_target_classes=9)
    assert parse_attack("Auto-Attack") == aa
    assert parse_attack("autoattack:eps=4/255").eps == 4 / 255
    assert parse_attack("autoattack:steps=10,queries=100") == AttackConfig(
        name="autoattack", steps=10, step_size=0.0, queries=100)


@pytest.mark.parametrize("spec", ["apgd-ce", "apgd-t", "apgd-dlr", "apgd-ce_l2", "apgd-t_l2:eps=1.0", "fab-t",
                                  "fab-t_l2", "square", "square:queries=100,p_init=0.5", "autoattack",
                                  "autoattack:eps=4/255", "autoattack:steps=10,queries=100,n_target_classes=3",
                                  "apgd-ce:restarts=5", "apgd-t:n_target_classes=3"])
def test_autoattack_family_round_trip(spec: str) -> None:
    c = parse_attack(spec)
    assert parse_attack(format_attack(c)) == c
    assert AttackConfig(**asdict(c)) == c
    assert normalize_spec(format_attack(c)) == format_attack(c)


def test_format_names_the_autoattack_family_by_its_heads() -> None:
    assert [format_attack(parse_attack(s)) for s in ("apgd_ce", "APGD-T", "apgd-dlr", "fab_t", "square",
                                                      "auto-attack")] == [
        "apgd-ce", "apgd-t", "apgd-dlr", "fab-t", "square", "autoattack"]
    assert format_attack(parse_attack("apgd-ce:norm=l2,eps=0.5")) == "apgd-ce_l2"
    assert format_attack(AttackConfig(name="apgd", loss="dlr-targeted", steps=100, step_size=0.0, eps=0.1)) == \
        "apgd-t:eps=0.1"


def test_autoattack_family_validation() -> None:
    with pytest.raises(ValueError, match=r"AttackConfig\(apgd\): loss must be one of 'ce', 'dlr', 'dlr-targeted', "
                                         r"got 'hinge'"):
        parse_attack("apgd-ce:loss=hinge")
    with pytest.raises(ValueError, match=r"AttackConfig\(square\): square is an L-inf attack, so norm must be 'inf', "
                                         r"got '2'"):
        parse_attack("square:norm=2")
    with pytest.raises(ValueError, match=r"AttackConfig\(autoattack\): autoattack is an L-inf attack"):
        AttackConfig(name="autoattack", norm="l2")
    with pytest.raises(ValueError, match=r"AttackConfig\(autoattack\): eps 8\.0 is above 1, larger than the whole"):
        parse_attack("autoattack:eps=8")
    with pytest.raises(ValueError, match=r"AttackConfig\(apgd\): apgd needs a finite eps, got inf"):
        parse_attack("apgd-ce:eps=inf")
    for field, bad, msg in [("queries", 0, "queries must be >= 1, got 0"), ("restarts", 0, "restarts must be >= 1"),
                            ("n_target_classes", 0, "n_target_classes must be >= 1"),
                            ("p_init", 1.5, r"p_init must lie in \(0, 1\] \(a fraction of the image\), got 1.5"),
                            ("p_init", 0.0, r"p_init must lie in \(0, 1\]")]:
        with pytest.raises(ValueError, match=msg):
            AttackConfig(name="square", **{field: bad})
    with pytest.raises(TypeError, match="queries must be an int, got float"):
        AttackConfig(name="square", queries=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown attack 'apgd-x'.*expected .*apgd-ce, apgd-t"):
        parse_attack("apgd-x")
    with pytest.raises(ValueError, match=r"unknown attack 'autoatack'\. Did you mean 'autoattack'"):
        parse_attack("autoatack")


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


# ----------------------------------------------------------------------------- one spec, one meaning


def test_a_key_given_twice_is_refused_naming_the_key() -> None:
    """Before: `pgd5:eps=0.1,eps=0.2` silently attacked at 0.2, the last value."""
    with pytest.raises(ValueError, match=re.escape("parse_attack: 'pgd5:eps=0.1,eps=0.2' sets 'eps' twice; a spec "
                                                   "says each setting once. Hint: keep one eps=...")):
        parse_attack("pgd5:eps=0.1,eps=0.2")
    with pytest.raises(ValueError, match="sets 'steps' twice"):
        parse_attack("autoattack:steps=10,queries=5,steps=10")  # even with the same value
    with pytest.raises(ValueError, match="sets 'random_start' twice"):
        parse_attack_list("clean,pgd20:random_start=false,eps=0.1,random_start=true")


def test_equal_specs_written_differently_compare_equal() -> None:
    a, b = parse_attack("pgd7:eps=1/10,step_size=1/40"), parse_attack("pgd7:eps=0.1,step_size=0.025")
    assert a == b and hash(a) == hash(b) and attack_record(a) == attack_record(b)
    forms = ["pgd7:eps=1/10,step_size=1/40", "pgd7:eps=0.1,step_size=0.025", "PGD-7: step_size = 0.025 , eps=.1",
             "pgd20:steps=7,eps=0.1,step_size=1/40", "pgd:steps=7,step_size=0.025,eps=0.1"]
    assert {normalize_spec(f) for f in forms} == {"pgd7:eps=0.1,step_size=0.025"}
    assert normalize_spec("pgd20:steps=20,eps=8/255") == "pgd20"  # the defaults written out
    assert normalize_spec("autoattack:eps=8/255,queries=5000") == "autoattack"
    assert normalize_spec("apgd-ce:norm=l2,eps=0.5") == normalize_spec("apgd-ce_l2") == "apgd-ce_l2"
    assert normalize_spec("deepfool:norm=2,eps=0.5") == "deepfool_l2"
    # numbers are stored as floats and norms in one spelling: 1 and 1.0 record alike
    one, one_f = AttackConfig(name="pgd", eps=1, step_size=0), AttackConfig(name="pgd", eps=1.0, step_size=0.0)
    assert one == one_f and asdict(one) == asdict(one_f) and isinstance(one.eps, float)
    assert format_attack(one) == format_attack(one_f) == "pgd20:eps=1.0,step_size=0.0"
    assert AttackConfig(name="apgd", norm="L2").norm == "2" and AttackConfig(name="apgd", norm="linf").norm == "inf"
    assert parse_attack("pgd7:eps=0.1") != parse_attack("pgd7:eps=0.1000001")
    with pytest.raises(TypeError, match="parse_attack: expected a string, got NoneType"):
        normalize_spec(None)  # type: ignore[arg-type]

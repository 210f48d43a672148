"""The attack language both CLIs share (robnet.attacks.spec): parse_attack, parse_attack_list,
format_attack, normalize_spec, parse_fraction, attack_record. The configs they produce and their
binding to the attack functions are tested in test_config.py."""

from __future__ import annotations

import math
import re
from dataclasses import asdict

import pytest

from robnet.attacks.config import AttackConfig
from robnet.attacks.spec import (
    attack_record,
    format_attack,
    normalize_spec,
    parse_attack,
    parse_attack_list,
    parse_fraction,
)


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

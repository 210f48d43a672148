import itertools
import re

import pytest
import torch
from torch import nn

from robnet.attacks.evaluation import evaluate
from robnet.attacks.masking import gradient_masking_checks
from robnet.attacks.report import wilson_interval
from robnet.attacks.spec import parse_attack
from robnet.data.datasets import load_dataset
from tests.robnet.attacks._tiny import Overflow, digits_robnet


def test_evaluate_counts_match_a_manual_loop():
    model = digits_robnet().eval()
    data = load_dataset("digits", split="test").subset(range(50))
    attacks = [("clean", parse_attack("clean")), ("fgsm", parse_attack("fgsm:eps=0.1"))]
    report = evaluate(model, data, attacks, batch_size=16, progress=False, masking_checks=False)
    x = data.images.float() / 255
    with torch.no_grad():
        clean = int((model(x).argmax(1) == data.labels).sum())
    from robnet.attacks.gradient import fgsm

    x_adv = fgsm(model, x, data.labels, eps=0.1)
    with torch.no_grad():
        adv = int((model(x_adv).argmax(1) == data.labels).sum())
    assert [r.correct for r in report.results] == [clean, adv]
    assert report.n == 50 and [r.n for r in report.results] == [50, 50]
    assert report.results[1].config["eps"] == pytest.approx(0.1)


def test_evaluate_restores_mode_and_transfer_with_self_equals_white_box():
    model = digits_robnet()
    model.train()
    data = load_dataset("digits", split="test").subset(range(30))
    attacks = [("fgsm", parse_attack("fgsm:eps=0.1"))]
    white = evaluate(model, data, attacks, batch_size=30, progress=False, masking_checks=False)
    assert model.training
    other = digits_robnet(seed=1)
    transfer = evaluate(model, data, attacks, batch_size=30, progress=False, source=model, transfer_from="self")
    assert transfer.results[0].correct == white.results[0].correct
    black = evaluate(model, data, attacks, batch_size=30, progress=False, source=other, transfer_from="other")
    assert black.transfer_from == "other" and black.to_dict()["transfer_from"] == "other"


class SoftmaxOut(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x) * 50, dim=1)


class Quantized(nn.Module):
    """Rounds its input: zero gradient almost everywhere (a classic masking defence)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 4) / 4)


def test_gradient_masking_checks_flag_known_cases():
    data = load_dataset("digits", split="test").subset(range(32))
    x, y = data.images.float() / 255, data.labels
    base = digits_robnet().eval()
    probs = gradient_masking_checks(SoftmaxOut(base), x, y, eps=None)  # the checks that need no attack
    assert any("look like probabilities" in w for w in probs)
    zero = gradient_masking_checks(Quantized(base), x, y, eps=None)
    assert any("exactly zero input gradient" in w for w in zero)


def test_consistency_warning_only_beyond_the_margin():
    from robnet.attacks.evaluation import _consistency_warnings
    from robnet.attacks.report import AttackResult

    def res(name, correct):
        return AttackResult(name=name, config={}, correct=correct, n=1000, seconds=0.0)

    assert _consistency_warnings([res("fgsm", 500), res("pgd20", 505), res("pgd100", 503)]) == []
    warns = _consistency_warnings([res("fgsm", 500), res("pgd20", 530)])
    assert len(warns) == 1 and "pgd20 accuracy (0.5300) is more than 1% above fgsm (0.5000)" in warns[0]


# ----------------------------------------------------------------------------- transfer (was attacks.transfer)


def test_transfer_crafts_on_source_and_scores_on_target():
    """The transfer semantics once tested on robnet.attacks.gradient.transfer (removed: evaluate(source=...) is
    the one transfer path): examples are crafted on the source only and scored on the target."""
    from robnet.attacks.config import make_attack

    source, target = digits_robnet(seed=0).eval(), digits_robnet(seed=1).eval()
    data = load_dataset("digits", split="test").subset(range(32))
    x, y = data.images.float() / 255, data.labels
    cfg = parse_attack("pgd5:eps=0.1,random_start=false")
    report = evaluate(target, data, [("pgd", cfg)], batch_size=32, progress=False, source=source,
                      transfer_from="src")
    x_adv = make_attack(cfg)(source, x, y)
    with torch.no_grad():
        expected = int((target(x_adv).argmax(1) == y).sum())
        white_box = int((source(x_adv).argmax(1) == y).sum())
    assert report.results[0].correct == expected
    # white-box (source == target) is at least as strong as the transfer
    self_report = evaluate(source, data, [("pgd", cfg)], batch_size=32, progress=False, source=source)
    assert self_report.results[0].correct == white_box <= expected
    assert report.masking == {"ran": False, "eps": 0.1, "step_size": cfg.step_size}


def test_empty_data_and_bad_attack_lists_are_refused():
    data = load_dataset("digits", split="test").subset(range(8))
    model = digits_robnet()
    with pytest.raises(ValueError, match="the dataset is empty"):
        evaluate(model, data.subset([]), [("clean", parse_attack("clean"))], progress=False)
    with pytest.raises(ValueError, match="evaluate: no attacks given"):
        evaluate(model, data, [], progress=False)
    with pytest.raises(TypeError, match=r"evaluate: attacks must be \(name, AttackConfig\) pairs, got 'pgd20'"):
        evaluate(model, data, ["pgd20"], progress=False)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="evaluate: batch_size must be an int >= 1, got 0"):
        evaluate(model, data, [("clean", parse_attack("clean"))], batch_size=0, progress=False)


# ----------------------------------------------------------------------------- masking checks and precision


def test_non_finite_logits_are_a_masking_signature():
    data = load_dataset("digits", split="test").subset(range(16))
    x, y = data.images.float() / 255, data.labels
    warns = gradient_masking_checks(Overflow(digits_robnet().eval()), x, y)
    assert warns == ["16 of 16 samples have non-finite logits (NaN or inf): gradients are meaningless there, a "
                     "gradient-masking signature; accuracies on this model are not valid"]


def test_masking_checks_use_the_radius_of_the_attacks(monkeypatch):
    """Before: the checks always ran at 8/255, whatever eps the attacks used."""
    import robnet.attacks.evaluation as ev
    from robnet.attacks.masking import masking_settings

    cfgs = [parse_attack(s) for s in ("clean", "fgsm:eps=0.1", "pgd5:eps=0.2,step_size=0.05", "pgd3:eps=0.3")]
    assert masking_settings(cfgs) == (0.2, 0.05)  # the PGD with the most steps
    assert masking_settings(cfgs[:2]) == (0.1, 0.025)  # FGSM only: step eps/4
    assert masking_settings([parse_attack("clean"), parse_attack("pgd20_l2")]) is None
    assert masking_settings([parse_attack("pgd20:eps=inf")]) is None
    assert masking_settings([parse_attack("clean"), parse_attack("autoattack:eps=0.1")]) == (0.1, 0.025)
    assert masking_settings([parse_attack("apgd-ce_l2"), parse_attack("square:eps=0.2")]) == (0.2, 0.05)
    seen = []
    real = ev.gradient_masking_report

    def spy(model, x, y, **kw):
        seen.append((kw["eps"], kw["step_size"]))
        return real(model, x, y, **kw)

    monkeypatch.setattr(ev, "gradient_masking_report", spy)
    data = load_dataset("digits", split="test").subset(range(8))
    report = evaluate(digits_robnet(), data, [("fgsm", cfgs[1]), ("pgd", cfgs[2])], batch_size=8, progress=False)
    assert seen == [(0.2, 0.05)]
    assert {k: report.masking[k] for k in ("ran", "eps", "step_size")} == {"ran": True, "eps": 0.2, "step_size": 0.05}
    assert report.masking["first_batch"] == 8 and report.masking["square_queries"] == 100
    evaluate(digits_robnet(), data, [("clean", cfgs[0])], batch_size=8, progress=False)
    assert seen[-1] == (None, 0.0)  # no L-inf attack: only the attack-free checks


def test_amp_is_opt_in_recorded_and_warned(caplog):
    data = load_dataset("digits", split="test").subset(range(8))
    attacks = [("fgsm", parse_attack("fgsm:eps=0.1"))]
    plain = evaluate(digits_robnet(), data, attacks, batch_size=8, progress=False, masking_checks=False)
    assert plain.amp is False and plain.to_dict()["precision"] == "float32" and plain.warnings == []
    with caplog.at_level("WARNING", logger="robnet.attacks.evaluation"):
        amp = evaluate(digits_robnet(), data, attacks, batch_size=8, progress=False, masking_checks=False, amp=True)
    record = amp.to_dict()
    assert record["amp"] is True and record["precision"] == "bfloat16" and record["settings"]["amp"] is True
    assert amp.warnings[0].startswith("attacks ran under bf16 autocast (amp): bf16 can mask gradients")
    assert any("bf16 autocast" in r.getMessage() for r in caplog.records)


def test_report_record_has_the_provenance_block_and_attack_schema():
    from dataclasses import asdict

    from robnet.io.results import dumps

    data = load_dataset("digits", split="test").subset(range(8))
    cfg = parse_attack("pgd2:eps=0.1")
    rec = evaluate(digits_robnet(), data, [("p", cfg)], batch_size=8, progress=False, seed=3).to_dict()
    assert {"versions", "device", "seed", "deterministic", "created", "settings"} <= set(rec)
    assert rec["seed"] == 3 and rec["settings"]["attacks"] == ["p"] and rec["settings"]["batch_size"] == 8
    assert rec["results"][0]["attack"] == {**asdict(cfg), "spec": "pgd2:eps=0.1"}
    assert "NaN" not in dumps(rec)


# ----------------------------------------------------------------------------- the masking report (numbers, verdicts)


def test_masking_report_numbers_and_verdicts():
    """A healthy adversarially trained model passes every check; a quantizing front end (zero gradients) is caught
    by the new protocol checks: black-box Square beats white-box PGD-20, and PGD-20 at eps 0.5 leaves points
    standing."""
    from robnet.attacks.masking import MASKING_SQUARE_QUERIES, gradient_masking_report
    from tests.robnet.attacks._robust_digits import robust_digits

    model, x, y = robust_digits()
    x, y = x[:128], y[:128]
    gen = torch.Generator().manual_seed(0)
    healthy = gradient_masking_report(model, x, y, eps=0.1, step_size=0.025, generator=gen)
    assert healthy.warnings == []
    names = ["finite_logits", "logits_not_probabilities", "nonzero_gradients", "pgd_beats_fgsm", "pgd_steps_monotone",
             "square_vs_white_box", "large_eps"]
    assert list(healthy.checks) == names and {c["verdict"] for c in healthy.checks.values()} == {"pass"}
    sq, big = healthy.checks["square_vs_white_box"], healthy.checks["large_eps"]
    assert sq["queries"] == MASKING_SQUARE_QUERIES == 100 and sq["slack"] == 1.5 / 128
    assert sq["white_box"] == healthy.checks["pgd_beats_fgsm"]["pgd20"] == big["accuracy"][0]
    assert sq["square"] >= sq["white_box"] - sq["slack"]
    assert big["eps"] == [0.1, 0.5] and big["steps"] == [20, 10] and big["accuracy"][1] == 0.0  # nothing at 0.5
    steps = healthy.checks["pgd_steps_monotone"]
    assert steps["steps"] == [1, 5, 20] and steps["accuracy"] == sorted(steps["accuracy"], reverse=True)

    masked = gradient_masking_report(Quantized(model), x, y, eps=0.1, step_size=0.025, generator=gen)
    verdicts = {k: c["verdict"] for k, c in masked.checks.items()}
    # (PGD's random start alone crosses some rounding steps, so pgd_steps_monotone may flag too)
    assert {k: verdicts[k] for k in ("nonzero_gradients", "square_vs_white_box", "large_eps")} == dict.fromkeys(
        ("nonzero_gradients", "square_vs_white_box", "large_eps"), "flag")
    assert {k: verdicts[k] for k in names[:2] + names[3:4]} == dict.fromkeys(names[:2] + names[3:4], "pass")
    sq, big = masked.checks["square_vs_white_box"], masked.checks["large_eps"]
    assert sq["square"] < sq["white_box"] - sq["slack"] and big["accuracy"][1] > big["slack"]
    assert len(masked.warnings) == list(verdicts.values()).count("flag")
    assert f"the black-box Square attack (100 queries) beats white-box PGD-20 on the first batch ({sq['square']:.3f} " \
           f"vs {sq['white_box']:.3f}, eps 0.1)" in " ".join(masked.warnings)
    assert re.match(r"PGD accuracy does not fall to 0 as eps grows \(PGD-20: [01]\.\d{3} at eps 0\.1; PGD-10: "
                    rf"{big['accuracy'][1]:.3f} at eps 0\.5\); at eps 0\.5 every image can be turned grey",
                    masked.warnings[-1])
    skipped = gradient_masking_report(model, x, y, eps=None)
    assert skipped.checks["large_eps"] == {"verdict": "skipped",
                                           "reason": "no L-inf attack with a finite positive radius is evaluated"}
    nan = gradient_masking_report(Overflow(model), x, y)
    assert nan.checks["finite_logits"] == {"verdict": "flag", "nonfinite": 128, "n": 128}
    assert nan.checks["square_vs_white_box"] == {"verdict": "skipped", "reason": "non-finite logits"}


def test_evaluate_records_the_masking_checks_and_prints_their_warnings(caplog):
    from robnet.io.results import dumps
    from tests.robnet.attacks._robust_digits import robust_digits

    model, _, _ = robust_digits()
    data = load_dataset("digits", split="test").subset(range(64))
    attacks = [("clean", parse_attack("clean")), ("pgd20", parse_attack("pgd20:eps=0.1,step_size=0.025"))]
    with caplog.at_level("WARNING", logger="robnet.attacks.evaluation"):
        report = evaluate(Quantized(model), data, attacks, batch_size=64, progress=False)
    rec = report.to_dict()
    checks = rec["masking_checks"]["checks"]
    assert rec["masking_checks"]["first_batch"] == 64 and checks["square_vs_white_box"]["verdict"] == "flag"
    square_line = "the black-box Square attack (100 queries) beats white-box PGD-20"
    assert any(w.startswith(square_line) for w in rec["warnings"])
    assert any("gradient masking check: the black-box Square attack" in r.getMessage() for r in caplog.records)
    assert "NaN" not in dumps(rec)


# ----------------------------------------------------------------------------- AutoAttack in the evaluation


def test_evaluate_reports_autoattacks_breakdown():
    """robnet eval --attacks clean,pgd20,autoattack: the worst case as the column, each attack's accuracy below it,
    the same numbers as autoattack_result batch by batch with the evaluation's generator."""
    from robnet.attacks.config import make_autoattack
    from tests.robnet.attacks._robust_digits import robust_digits

    model, x, y = robust_digits()
    x, y = x[:48], y[:48]
    data = load_dataset("digits", split="test").subset(range(48))
    aa = parse_attack("autoattack:eps=0.1,steps=10,queries=100")
    report = evaluate(model, data, [("clean", parse_attack("clean")), ("autoattack", aa)], batch_size=24,
                      progress=False, masking_checks=False, seed=0)
    runner = make_autoattack(aa, generator=torch.Generator().manual_seed(0))  # evaluate's: seed * 1_000_003 + rank
    parts = [runner(model, x[:24], y[:24]), runner(model, x[24:], y[24:])]
    expected = {k: parts[0].counts()[k] + parts[1].counts()[k] for k in parts[0].counts()}
    result = report.results[1]
    assert result.breakdown == expected and result.correct == expected["square"]
    assert expected["clean"] == report.results[0].correct and expected["apgd-ce"] < expected["clean"]
    rec = report.to_dict()["results"][1]
    assert rec["attack"]["spec"] == "autoattack:eps=0.1,steps=10,queries=100"
    stages = rec["autoattack"]["stages"]
    assert [s["after"] for s in stages] == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert [s["correct"] for s in stages] == list(expected.values()) and rec["autoattack"]["robust"] == rec["correct"]
    assert stages[0].keys() == {"after", "correct", "accuracy", "ci95"}
    assert [s["fooled"] for s in stages[1:]] == [a["correct"] - b["correct"] for a, b in itertools.pairwise(stages)]
    assert stages[2]["accuracy"] == expected["apgd-t"] / 48 and stages[2]["ci95"] == list(
        wilson_interval(expected["apgd-t"], 48))
    assert all(s["seconds"] >= 0 for s in stages[1:])
    line = report.table().splitlines()[2]
    assert line == "autoattack breakdown (accuracy %): " + " -> ".join(
        f"{k} {100 * v / 48:.2f}" for k, v in expected.items())
    assert "autoattack" not in report.to_dict()["results"][0]
    # transfer: AutoAttack's flags describe the source, so no breakdown
    other = digits_robnet()
    transfer = evaluate(other, data, [("autoattack", aa)], batch_size=48, progress=False, source=model)
    assert transfer.results[0].breakdown is None and "autoattack" not in transfer.to_dict()["results"][0]


def test_autoattack_above_pgd20_is_flagged():
    from robnet.attacks.evaluation import _consistency_warnings
    from robnet.attacks.report import AttackResult

    def res(name, correct):
        return AttackResult(name=name, config={}, correct=correct, n=1000, seconds=0.0)

    assert _consistency_warnings([res("pgd20", 500), res("autoattack", 470)]) == []
    warns = _consistency_warnings([res("pgd20", 500), res("autoattack", 530)])
    assert warns == ["autoattack accuracy (0.5300) is more than 1% above pgd20 (0.5000): the stronger attack did "
                     "worse, a sign of gradient masking"]

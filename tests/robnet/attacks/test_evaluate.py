import pytest
import torch
from torch import nn

import robnet
from robnet.attacks.evaluation import evaluate, gradient_masking_checks, wilson_interval
from robnet.attacks.spec import parse_attack
from robnet.data.datasets import load_dataset


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _digits_model(seed=0):
    torch.manual_seed(seed)
    return robnet.build_model("robnet_large", C=4, layers=3, in_channels=1)


def test_evaluate_counts_match_a_manual_loop():
    model = _digits_model().eval()
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
    model = _digits_model()
    model.train()
    data = load_dataset("digits", split="test").subset(range(30))
    attacks = [("fgsm", parse_attack("fgsm:eps=0.1"))]
    white = evaluate(model, data, attacks, batch_size=30, progress=False, masking_checks=False)
    assert model.training
    other = _digits_model(seed=1)
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
    base = _digits_model().eval()
    probs = gradient_masking_checks(SoftmaxOut(base), x, y)
    assert any("look like probabilities" in w for w in probs)
    zero = gradient_masking_checks(Quantized(base), x, y)
    assert any("exactly zero input gradient" in w for w in zero)


def test_consistency_warning_only_beyond_the_margin():
    from robnet.attacks.evaluation import AttackResult, _consistency_warnings

    def res(name, correct):
        return AttackResult(name=name, config={}, correct=correct, n=1000, seconds=0.0)

    assert _consistency_warnings([res("fgsm", 500), res("pgd20", 505), res("pgd100", 503)]) == []
    warns = _consistency_warnings([res("fgsm", 500), res("pgd20", 530)])
    assert len(warns) == 1 and "pgd20 accuracy (0.5300) is more than 1% above fgsm (0.5000)" in warns[0]


# ----------------------------------------------------------------------------- transfer (was attacks.transfer)


def test_transfer_crafts_on_source_and_scores_on_target():
    """The transfer semantics once tested on robnet.attacks.gradient.transfer (removed: evaluate(source=...) is
    the one transfer path): examples are crafted on the source only and scored on the target."""
    from robnet.attacks.spec import make_attack

    source, target = _digits_model(seed=0).eval(), _digits_model(seed=1).eval()
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


# ----------------------------------------------------------------------------- refusals before compute


def test_nan_weights_are_refused_before_any_attack():
    model = _digits_model()
    with torch.no_grad():
        model.stem[0].weight[0, 0, 0, 0] = float("inf")
    data = load_dataset("digits", split="test").subset(range(8))
    with pytest.raises(ValueError, match=r"^model has non-finite weights: 1 of \d+ tensors hold NaN or inf "
                                         r"\(first: stem\.0\.weight\)\. Hint: the checkpoint comes from a diverged "
                                         r"run"):
        evaluate(model, data, [("clean", parse_attack("clean"))], progress=False)
    from robnet.attacks.evaluation import check_finite_weights

    with pytest.raises(ValueError, match="transfer source has non-finite weights"):
        evaluate(_digits_model(), data, [("clean", parse_attack("clean"))], progress=False, source=model)
    check_finite_weights(_digits_model())  # a healthy model passes


def test_class_count_and_channel_checks():
    from robnet.attacks.evaluation import check_model_data

    data = load_dataset("digits", split="test").subset(range(8))
    assert check_model_data(_digits_model(), data) == 10
    torch.manual_seed(0)
    wide = robnet.build_model("robnet_large", C=4, layers=3, in_channels=1, num_classes=100)
    with pytest.raises(ValueError, match=r"^model has 100 outputs but digits has 10 classes: wrong --data for this "
                                         r"checkpoint\? Hint: --allow-more-classes \(allow_more_classes=True\)"):
        check_model_data(wide, data)
    assert check_model_data(wide, data, allow_more_classes=True) == 100
    narrow = robnet.build_model("robnet_large", C=4, layers=3, in_channels=1, num_classes=5)
    for allow in (False, True):
        with pytest.raises(ValueError, match=r"^ckpt\.pt has 5 outputs but digits has 10 classes: labels 5\.\.9 "
                                             r"can never be predicted"):
            check_model_data(narrow, data, allow_more_classes=allow, what="ckpt.pt")
    rgb = robnet.build_model("robnet_large", C=4, layers=3, num_classes=10)
    with pytest.raises(ValueError, match=r"^model expects 3-channel images but digits has 1: wrong --data"):
        check_model_data(rgb, data)
    with pytest.raises(ValueError, match="the dataset is empty: nothing to evaluate"):
        check_model_data(_digits_model(), data.subset([]))
    # through a torch Subset (streamed folder sets are cut that way)
    assert check_model_data(wide, torch.utils.data.Subset(data, range(3)), allow_more_classes=True) == 100
    # evaluate() refuses the mismatch itself (Python API), before its first attack
    with pytest.raises(ValueError, match="100 outputs but digits has 10 classes"):
        evaluate(wide, data, [("clean", parse_attack("clean"))], progress=False)


def test_empty_data_and_bad_attack_lists_are_refused():
    data = load_dataset("digits", split="test").subset(range(8))
    model = _digits_model()
    with pytest.raises(ValueError, match="the dataset is empty"):
        evaluate(model, data.subset([]), [("clean", parse_attack("clean"))], progress=False)
    with pytest.raises(ValueError, match="evaluate: no attacks given"):
        evaluate(model, data, [], progress=False)
    with pytest.raises(TypeError, match=r"evaluate: attacks must be \(name, AttackConfig\) pairs, got 'pgd20'"):
        evaluate(model, data, ["pgd20"], progress=False)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="evaluate: batch_size must be an int >= 1, got 0"):
        evaluate(model, data, [("clean", parse_attack("clean"))], batch_size=0, progress=False)


def test_no_samples_gives_null_accuracy_with_a_reason():
    from robnet.attacks.evaluation import AttackResult
    from robnet.io.results import dumps

    empty = AttackResult(name="pgd20", config={}, correct=0, n=0, seconds=0.0).to_dict()
    assert empty["accuracy"] is None and empty["ci95"] is None
    assert empty["accuracy_missing"] == "no samples were evaluated"
    assert "NaN" not in dumps(empty)


# ----------------------------------------------------------------------------- masking checks and precision


class Overflow(nn.Module):
    """Finite weights, non-finite logits: the masking checks must say so, not stay silent."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * torch.tensor(float("inf"))


def test_non_finite_logits_are_a_masking_signature():
    data = load_dataset("digits", split="test").subset(range(16))
    x, y = data.images.float() / 255, data.labels
    warns = gradient_masking_checks(Overflow(_digits_model().eval()), x, y)
    assert warns == ["16 of 16 samples have non-finite logits (NaN or inf): gradients are meaningless there, a "
                     "gradient-masking signature; accuracies on this model are not valid"]
    report = evaluate(Overflow(_digits_model()), data, [("clean", parse_attack("clean"))], batch_size=16,
                      progress=False)
    assert report.warnings[0].startswith("16 of 16 samples have non-finite logits")
    assert report.warnings[-1] == ("16 of 16 scored rows had non-finite logits (NaN or inf): the model overflows; "
                                   "these accuracies are not valid")


def test_masking_checks_use_the_radius_of_the_attacks(monkeypatch):
    """Before: the checks always ran at 8/255, whatever eps the attacks used."""
    import robnet.attacks.evaluation as ev
    from robnet.attacks.evaluation import masking_settings

    cfgs = [parse_attack(s) for s in ("clean", "fgsm:eps=0.1", "pgd5:eps=0.2,step_size=0.05", "pgd3:eps=0.3")]
    assert masking_settings(cfgs) == (0.2, 0.05)  # the PGD with the most steps
    assert masking_settings(cfgs[:2]) == (0.1, 0.025)  # FGSM only: step eps/4
    assert masking_settings([parse_attack("clean"), parse_attack("pgd20_l2")]) is None
    assert masking_settings([parse_attack("pgd20:eps=inf")]) is None
    seen = []
    real = ev.gradient_masking_checks

    def spy(model, x, y, **kw):
        seen.append((kw["eps"], kw["step_size"]))
        return real(model, x, y, **kw)

    monkeypatch.setattr(ev, "gradient_masking_checks", spy)
    data = load_dataset("digits", split="test").subset(range(8))
    report = evaluate(_digits_model(), data, [("fgsm", cfgs[1]), ("pgd", cfgs[2])], batch_size=8, progress=False)
    assert seen == [(0.2, 0.05)] and report.masking == {"ran": True, "eps": 0.2, "step_size": 0.05}
    evaluate(_digits_model(), data, [("clean", cfgs[0])], batch_size=8, progress=False)
    assert seen[-1] == (None, 0.0)  # no L-inf attack: only the attack-free checks


def test_amp_is_opt_in_recorded_and_warned(caplog):
    data = load_dataset("digits", split="test").subset(range(8))
    attacks = [("fgsm", parse_attack("fgsm:eps=0.1"))]
    plain = evaluate(_digits_model(), data, attacks, batch_size=8, progress=False, masking_checks=False)
    assert plain.amp is False and plain.to_dict()["precision"] == "float32" and plain.warnings == []
    with caplog.at_level("WARNING", logger="robnet.attacks.evaluation"):
        amp = evaluate(_digits_model(), data, attacks, batch_size=8, progress=False, masking_checks=False, amp=True)
    record = amp.to_dict()
    assert record["amp"] is True and record["precision"] == "bfloat16" and record["settings"]["amp"] is True
    assert amp.warnings[0].startswith("attacks ran under bf16 autocast (amp): bf16 can mask gradients")
    assert any("bf16 autocast" in r.getMessage() for r in caplog.records)


def test_report_record_has_the_provenance_block_and_attack_schema():
    from dataclasses import asdict

    from robnet.io.results import dumps

    data = load_dataset("digits", split="test").subset(range(8))
    cfg = parse_attack("pgd2:eps=0.1")
    rec = evaluate(_digits_model(), data, [("p", cfg)], batch_size=8, progress=False, seed=3).to_dict()
    assert {"versions", "device", "seed", "deterministic", "created", "settings"} <= set(rec)
    assert rec["seed"] == 3 and rec["settings"]["attacks"] == ["p"] and rec["settings"]["batch_size"] == 8
    assert rec["results"][0]["attack"] == {**asdict(cfg), "spec": "pgd2:eps=0.1"}
    assert "NaN" not in dumps(rec)

"""What an evaluation returns (robnet.attacks.report): the Wilson interval, and a result with no samples
recorded as null with its reason (strict JSON). The records evaluate() writes are tested in test_evaluate.py."""

import pytest

from robnet.attacks.report import AttackResult, wilson_interval


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_no_samples_gives_null_accuracy_with_a_reason():
    from robnet.io.results import dumps

    empty = AttackResult(name="pgd20", config={}, correct=0, n=0, seconds=0.0).to_dict()
    assert empty["accuracy"] is None and empty["ci95"] is None
    assert empty["accuracy_missing"] == "no samples were evaluated"
    assert "NaN" not in dumps(empty)

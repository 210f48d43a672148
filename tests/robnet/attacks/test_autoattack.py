"""AutoAttack (robnet.attacks.autoattack): the protocol (each attack only on the points still robust), the
result's breakdown, invariants, errors, and torchattacks' AutoAttack as an independent implementation."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from robnet.attacks.autoattack import AUTOATTACK_ATTACKS, AutoAttackResult, autoattack, autoattack_result
from robnet.attacks.gradient import pgd
from robnet.utils import train_mode
from tests.robnet.attacks._robust_digits import DIGITS_EPS, TORCHATTACKS_SKIP, batch, correct, robust_digits, tiny_cnn

EPS = 8 / 255
QUICK: dict[str, Any] = {"steps": 5, "queries": 20, "n_target_classes": 3}
aa_module = importlib.import_module("robnet.attacks.autoattack")  # the package face's `autoattack` is the function


def predicted(model: nn.Module, x: Tensor) -> Tensor:
    with torch.no_grad():
        return model(x).argmax(1)


def test_result_breakdown_is_cumulative_and_matches_a_fresh_forward() -> None:
    model = tiny_cnn().eval()
    x, _ = batch(16)
    y = predicted(model, x)
    y[:3] = (y[:3] + 1) % 10  # misclassified before any attack
    x_copy = x.clone()
    res = autoattack_result(model, x, y, eps=0.004, **QUICK)
    assert isinstance(res, AutoAttackResult) and list(res.robust) == list(AUTOATTACK_ATTACKS)
    assert list(res.seconds) == list(AUTOATTACK_ATTACKS) and all(s >= 0 for s in res.seconds.values())
    assert res.clean.tolist() == [False] * 3 + [True] * 13
    counts = res.counts()
    assert list(counts) == ["clean", *AUTOATTACK_ATTACKS] and counts["clean"] == 13
    assert list(counts.values()) == sorted(counts.values(), reverse=True)  # an attack only removes points
    prev = res.clean
    for flags in res.robust.values():
        assert not bool((flags & ~prev).any())  # robust after an attack => robust before it
        prev = flags
    assert torch.equal(res.final, res.robust["square"])
    # the flags are the model's verdict on the worst-case batch
    assert torch.equal(res.final, predicted(model, res.x_adv) == y)
    assert 0 < counts["square"] < 13, counts  # a radius at which some points fall and some stand
    assert torch.equal(x, x_copy) and torch.equal(res.x_adv[:3], x[:3])
    assert float((res.x_adv - x).abs().max()) <= 0.004 + 1e-7
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1 and not res.x_adv.requires_grad


def test_each_attack_runs_only_on_the_points_still_robust(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_cnn().eval()
    x, _ = batch(16)
    y = predicted(model, x)
    seen: list[tuple[str, int]] = []

    def spy(name: str, real: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def run(m: nn.Module, xs: Tensor, ys: Tensor, **kw: Any) -> Tensor:
            seen.append((kw.get("loss", name), xs.shape[0]))
            return real(m, xs, ys, **kw)
        return run

    for name in ("apgd", "fab_t", "square"):
        monkeypatch.setattr(aa_module, name, spy(name, getattr(aa_module, name)))
    res = autoattack_result(model, x, y, eps=0.004, **QUICK)
    counts = res.counts()
    expected = [("ce", counts["clean"]), ("dlr-targeted", counts["apgd-ce"]), ("fab_t", counts["apgd-t"]),
                ("square", counts["fab-t"])]
    assert seen == [e for e in expected if e[1] > 0]


def test_nothing_left_to_attack() -> None:
    model = tiny_cnn().eval()
    x, _ = batch(6)
    y = (predicted(model, x) + 1) % 10
    res = autoattack_result(model, x, y, eps=EPS, **QUICK)
    assert res.counts() == dict.fromkeys(["clean", *AUTOATTACK_ATTACKS], 0)
    assert torch.equal(res.x_adv, x)
    empty = autoattack_result(model, x[:0], y[:0], eps=EPS, **QUICK)
    assert empty.x_adv.shape == (0, 3, 16, 16) and empty.counts()["square"] == 0


def test_seed_makes_it_reproducible_and_the_model_mode_is_kept() -> None:
    model = tiny_cnn()
    x, _ = batch(8)
    y = predicted(model.eval(), x)
    a = autoattack(model, x, y, eps=0.01, seed=3, **QUICK)
    assert torch.equal(a, autoattack(model, x, y, eps=0.01, seed=3, **QUICK))
    assert not torch.equal(a, autoattack(model, x, y, eps=0.01, seed=4, **QUICK))
    assert torch.equal(a, autoattack_result(model, x, y, eps=0.01, seed=3, **QUICK).x_adv)
    with train_mode(model):
        model[1].eval()
        flags = [m.training for m in model.modules()]
        autoattack(model, x, y, eps=0.01, **QUICK)
        assert [m.training for m in model.modules()] == flags
    assert all(p.grad is None and p.requires_grad for p in model.parameters())


def test_errors_say_what_and_how_to_fix() -> None:
    model = tiny_cnn().eval()
    x, y = batch(4)
    with pytest.raises(ValueError, match=r"autoattack: only the L-inf version is implemented, got norm='l2'\. Hint: "
                                         r"its L2 version needs Square-L2"):
        autoattack(model, x, y, eps=0.5, norm="l2")
    with pytest.raises(ValueError, match=r"autoattack: version must be 'standard', got 'plus'\. Hint: 'plus' and "
                                         r"'rand' are not implemented"):
        autoattack(model, x, y, eps=EPS, version="plus")
    with pytest.raises(ValueError, match=r"autoattack: eps 8 is above 1, larger than the whole \[0, 1\] pixel range"):
        autoattack(model, x, y, eps=8)
    with pytest.raises(ValueError, match=r"autoattack: seed must be >= 0, got -1"):
        autoattack(model, x, y, eps=EPS, seed=-1)
    with pytest.raises(TypeError, match=r"autoattack: queries must be an int, got float"):
        autoattack(model, x, y, eps=EPS, queries=5e3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"autoattack: the model has 3 classes, but APGD-T's targeted DLR loss needs "
                                         r"at least 4\. Hint: use apgd\(\.\.\., loss='ce'\) and square\(\.\.\.\)"):
        autoattack(tiny_cnn(classes=3).eval(), x, y % 3, eps=EPS)
    with pytest.raises(ValueError, match=r"autoattack: x must lie in \[0, 1\] \(pixel space\)"):
        autoattack(model, x + 1, y, eps=EPS)
    with pytest.raises(ValueError, match=r"autoattack: x must be a batch of images \(N, C, H, W\), "
                                         r"got shape \(4, 768\)"):
        autoattack(nn.Sequential(nn.Linear(768, 10)), x.flatten(1), y, eps=EPS)


# ----------------------------------------------------------------------------- independent implementation


@pytest.mark.slow
def test_close_to_torchattacks_autoattack_and_below_pgd20() -> None:
    """The standard version (APGD-CE, APGD-T, FAB-T 100 steps each, 9 targets, Square 5000 queries) vs
    torchattacks 3.5.1's MultiAttack of the same four attacks at the same budget, on the same model, the 360 test
    digits and eps 0.1. (torchattacks.AutoAttack itself runs its APGD and FAB for only 10 steps: reported in the
    benchmark, not compared here; it left 298-299 standing.) Measured at seeds 0-4: 298 of 356 clean-correct
    left standing by both at every seed (ours: 301-304 after APGD-CE, 298 after APGD-T, nothing more for FAB-T and
    Square); random starts differ (their global RNG, our generator), so allow 3 samples of 360 (0.8 points). Our
    AutoAttack accuracy must never exceed our PGD-20 accuracy (302-304; a weaker ensemble would be a bug)."""
    torchattacks = pytest.importorskip("torchattacks", reason=TORCHATTACKS_SKIP)
    model, x, y = robust_digits()
    res = autoattack_result(model, x, y, eps=DIGITS_EPS, seed=0)
    ours = res.counts()["square"]
    with torch.random.fork_rng():
        eps = DIGITS_EPS
        multi = torchattacks.MultiAttack([
            torchattacks.APGD(model, eps=eps, steps=100, seed=0), torchattacks.APGDT(model, eps=eps, steps=100, seed=0),
            torchattacks.FAB(model, eps=eps, steps=100, seed=0, multi_targeted=True),
            torchattacks.Square(model, eps=eps, n_queries=5000, seed=0)])
        theirs = correct(model, multi(x, y), y)
    assert abs(ours - theirs) <= 3, (ours, theirs)
    assert ours == correct(model, res.x_adv, y)
    pgd20 = correct(model, pgd(model, x, y, eps=DIGITS_EPS, step_size=DIGITS_EPS / 4, steps=20,
                               generator=torch.Generator().manual_seed(0)), y)
    assert ours <= pgd20, (ours, pgd20)
    assert float((res.x_adv - x).abs().max()) <= DIGITS_EPS + 1e-7

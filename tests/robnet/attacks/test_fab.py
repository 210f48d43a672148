"""FAB-T (robnet.attacks.fab): the exact box-constrained projection (vs scipy's solvers), invariants, errors, and
torchattacks' FAB as an independent implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog, minimize

from robnet.attacks.fab import fab_t, project_onto_hyperplane
from robnet.utils import train_mode
from tests.robnet.attacks._robust_digits import DIGITS_EPS, TORCHATTACKS_SKIP, batch, correct, robust_digits, tiny_cnn

EPS = 8 / 255


def _lp_linf(p: np.ndarray, w: np.ndarray, c: float) -> float | None:
    """min ||d||_inf s.t. w . d = c, 0 <= p + d <= 1, by linear programming (None: infeasible)."""
    d = len(p)
    cost = np.r_[np.zeros(d), 1.0]
    a_ub = np.block([[np.eye(d), -np.ones((d, 1))], [-np.eye(d), -np.ones((d, 1))]])
    res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(2 * d), A_eq=np.r_[w, 0.0][None], b_eq=[c],
                  bounds=[(-v, 1 - v) for v in p] + [(0, None)])
    return float(res.fun) if res.status == 0 else None


def _qp_l2(p: np.ndarray, w: np.ndarray, c: float) -> float:
    """min ||d||_2 s.t. w . d = c, 0 <= p + d <= 1, by SLSQP."""
    res = minimize(lambda v: v @ v, np.zeros(len(p)), jac=lambda v: 2 * v, method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda v: w @ v - c, "jac": lambda v: w}],
                   bounds=[(-v, 1 - v) for v in p], options={"ftol": 1e-15, "maxiter": 1000})
    assert res.success and abs(w @ res.x - c) < 1e-9
    return float(np.sqrt(res.fun))


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_projection_is_the_minimal_norm_step_inside_the_box(norm: str) -> None:
    g = torch.Generator().manual_seed(0)
    p = torch.rand(12, 9, generator=g, dtype=torch.float64)
    w = torch.randn(12, 9, generator=g, dtype=torch.float64)
    c = torch.randn(12, generator=g, dtype=torch.float64) * 0.6
    w[0, :4] = 0.0  # coordinates that cannot help
    c[1] = 0.0  # already on the hyperplane
    d = project_onto_hyperplane(p, w, c, norm)
    assert bool(((p + d) >= 0).all() and ((p + d) <= 1).all())
    assert float(d[1].abs().max()) == 0.0 and bool((d[0, :4] == 0).all())
    for i in range(12):
        pi, wi, ci = p[i].numpy(), w[i].numpy(), float(c[i])
        ref = _lp_linf(pi, wi, ci) if norm == "inf" else _qp_l2(pi, wi, ci)
        assert ref is not None
        got = float(d[i].abs().max()) if norm == "inf" else float(d[i].norm())
        assert got == pytest.approx(ref, abs=1e-7), i
        assert float(w[i] @ d[i]) == pytest.approx(ci, abs=1e-9)


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_projection_onto_an_unreachable_hyperplane_goes_to_the_nearest_vertex(norm: str) -> None:
    p = torch.tensor([[0.2, 0.7, 0.5]])
    w = torch.tensor([[1.0, -2.0, 0.0]])
    # w . d can grow by at most 0.8 * 1 + 0.7 * 2 = 2.2 inside the box
    d = project_onto_hyperplane(p, w, torch.tensor([5.0]), norm)
    torch.testing.assert_close(d, torch.tensor([[0.8, -0.7, 0.0]]))
    d = project_onto_hyperplane(p, w, torch.tensor([-5.0]), norm)
    torch.testing.assert_close(d, torch.tensor([[-0.2, 0.3, 0.0]]))


def test_invariants_ball_box_input_mode_determinism() -> None:
    model = tiny_cnn()
    x, _ = batch(8)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    y[:2] = (y[:2] + 1) % 10  # misclassified before the attack: returned as they are
    x_copy = x.clone()
    with train_mode(model):
        model[1].eval()
        flags = [m.training for m in model.modules()]
        fab_t(model, x, y, eps=EPS, steps=3, n_target_classes=2)
        assert [m.training for m in model.modules()] == flags
    model.eval()
    out = fab_t(model, x, y, eps=EPS, steps=10, n_target_classes=3)
    assert torch.equal(x, x_copy) and out.dtype == x.dtype and not out.requires_grad
    assert torch.equal(out[:2], x[:2])
    assert float((out - x).abs().max()) <= EPS + 1e-7 and float(out.min()) >= 0 and float(out.max()) <= 1
    with torch.no_grad():
        fooled = model(out).argmax(1) != y
    # a row FAB-T fooled within eps is returned fooled, the others as x
    changed = (out != x).flatten(1).any(1)
    assert torch.equal(changed[2:], fooled[2:]) and bool(fooled[2:].any())
    # one restart starts at x: no randomness at all
    assert torch.equal(out, fab_t(model, x, y, eps=EPS, steps=10, n_target_classes=3))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(fab_t(model, x, y, eps=EPS, steps=4, restarts=2, generator=g()),
                       fab_t(model, x, y, eps=EPS, steps=4, restarts=2, generator=g()))


def test_l2_stays_in_the_l2_ball() -> None:
    model = tiny_cnn().eval()
    x, _ = batch(6)
    with torch.no_grad():
        y = model(x).argmax(1)
    out = fab_t(model, x, y, eps=0.3, norm="l2", steps=15, n_target_classes=2)
    assert float((out - x).flatten(1).norm(dim=1).max()) <= 0.3 * (1 + 1e-5)


def test_errors_say_what_and_how_to_fix() -> None:
    model = tiny_cnn().eval()
    x, y = batch(4)
    with pytest.raises(ValueError, match=r"fab_t: eps 3 is above 1, larger than the whole \[0, 1\] pixel range"):
        fab_t(model, x, y, eps=3)
    with pytest.raises(ValueError, match=r"fab_t: alpha_max must lie in \[0, 1\], got 2"):
        fab_t(model, x, y, eps=EPS, alpha_max=2)
    with pytest.raises(ValueError, match=r"fab_t: norm must be 'linf' or 'l2' \(also 'inf' or '2'\), got 'l0'"):
        fab_t(model, x, y, eps=EPS, norm="l0")
    with pytest.raises(ValueError, match=r"fab_t: steps must be >= 0, got -1"):
        fab_t(model, x, y, eps=EPS, steps=-1)
    with pytest.raises(ValueError, match=r"fab_t: the model must return logits of shape \(N, classes >= 2\), "
                                         r"got \(4, 1\)"):
        fab_t(tiny_cnn(classes=1).eval(), x, y * 0, eps=EPS)


@pytest.mark.slow
def test_close_to_torchattacks_fab_t() -> None:
    """torchattacks 3.5.1's FAB with multi_targeted=True (the authors' FAB-T) on the same model, samples, eps 0.1
    and budget (100 steps, 9 targets, 1 restart: no randomness in either). Measured on the 360 test digits: equal
    robust counts (301 and 301, also at seeds 1-4); allow 2 samples for floating-point ties at the boundary."""
    torchattacks = pytest.importorskip("torchattacks", reason=TORCHATTACKS_SKIP)
    model, x, y = robust_digits()
    ours = correct(model, fab_t(model, x, y, eps=DIGITS_EPS), y)
    with torch.random.fork_rng():
        theirs = correct(model, torchattacks.FAB(model, eps=DIGITS_EPS, steps=100, multi_targeted=True,
                                                 n_classes=10, seed=0)(x, y), y)
    assert abs(ours - theirs) <= 2, (ours, theirs)

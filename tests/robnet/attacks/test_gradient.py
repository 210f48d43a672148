"""The gradient attacks (robnet.attacks.gradient): FGSM, PGD (L-inf and L2), MI-FGSM, the clean "attack".

Checks: the L2 step length, the random start (reproducible, uniform, explicit ``noise``), the FGSM
optimum of a linear model, bit-level agreement with IBM ART (FGSM, PGD without random start,
MI-FGSM), no host sync inside the PGD loop, and the errors of their own settings. The contract
they share with every attack is tested in test_contract.py, the spec language in test_spec.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from robnet.attacks.gradient import fgsm, mifgsm, no_attack, pgd, pgd_l2
from tests.robnet.attacks._tiny import (
    EPS,
    STEP,
    art_classifier,
    batch,
    l2,
    linf,
    model_xy,
    tiny_cnn,
    unit_noise,
    warmed,
)

# ----------------------------------------------------------------------------- the clean attack and autocast


def test_no_attack_returns_a_checked_copy() -> None:
    model = tiny_cnn().eval()
    x, y = batch()
    out = no_attack(model, x, y)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    with pytest.raises(ValueError, match=r"none: x must lie in \[0, 1\]"):
        no_attack(model, x + 1, y)


def test_pgd_under_cpu_autocast_keeps_dtype_and_ball() -> None:
    model = warmed(tiny_cnn()).eval()
    x, y = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = pgd(model, x, y, eps=EPS, step_size=STEP, steps=3, random_start=False)
    assert x_adv.dtype == torch.float32
    assert float(linf(x_adv, x).max()) <= EPS + 1e-7
    assert float(linf(x_adv, x).max()) > 0


# ----------------------------------------------------------------------------- L2 steps and random start


def test_l2_step_has_exactly_step_size_length() -> None:
    model = warmed(tiny_cnn()).double().eval()
    x, y = batch(5, dtype=torch.float64)
    x = 0.25 + 0.5 * x  # far from the [0, 1] edges: no clipping
    out = pgd_l2(model, x, y, eps=1.0, step_size=0.1, steps=1, random_start=False)
    torch.testing.assert_close(l2(out, x), torch.full((5,), 0.1, dtype=torch.float64))
    two = pgd_l2(model, x, y, eps=0.15, step_size=0.1, steps=2, random_start=False)
    torch.testing.assert_close(l2(two, x), torch.full((5,), 0.15, dtype=torch.float64))


def test_random_start_is_reproducible_uniform_and_seed_dependent() -> None:
    model = tiny_cnn().eval()
    x = torch.full((64, 3, 16, 16), 0.5)
    y = torch.zeros(64, dtype=torch.long)
    a = pgd(model, x, y, eps=EPS, step_size=STEP, steps=0, generator=torch.Generator().manual_seed(5))
    b = pgd(model, x, y, eps=EPS, step_size=STEP, steps=0, generator=torch.Generator().manual_seed(5))
    c = pgd(model, x, y, eps=EPS, step_size=STEP, steps=0, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = (a - x).flatten()
    # U(-eps, eps): mean 0, max |d| -> eps, variance eps^2 / 3.
    assert float(d.abs().max()) <= EPS + 1e-7
    assert float(d.abs().max()) > 0.99 * EPS
    assert abs(float(d.mean())) < 0.01 * EPS
    assert float(d.var()) == pytest.approx(EPS**2 / 3, rel=0.02)
    # The start is x + eps * (2u - 1) with u drawn from the generator in one call of x's shape.
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, (x + EPS * (2 * u - 1)).clamp(0, 1), rtol=0, atol=1e-7)


def test_explicit_noise_start_and_clamping() -> None:
    model = tiny_cnn().eval()
    x, y = batch()
    noise = unit_noise(x, "inf")
    out = pgd(model, x, y, eps=EPS, step_size=STEP, steps=0, noise=noise)
    torch.testing.assert_close(out, (x + EPS * noise).clamp(0, 1), rtol=0, atol=1e-7)
    no_start = pgd(model, x, y, eps=EPS, step_size=STEP, steps=0, random_start=False)
    assert torch.equal(no_start, x)


def test_l2_random_start_inside_ball() -> None:
    model = tiny_cnn().eval()
    x = torch.full((32, 3, 16, 16), 0.5)
    y = torch.zeros(32, dtype=torch.long)
    out = pgd_l2(model, x, y, eps=0.5, step_size=0.1, steps=0, generator=torch.Generator().manual_seed(0))
    norms = l2(out, x)
    # Uniform in a 768-dimensional ball: the radius concentrates just below eps.
    assert float(norms.max()) <= 0.5 * (1 + 1e-6)
    assert float(norms.min()) > 0.49


@pytest.mark.gpu
def test_cpu_generator_with_cuda_input_draws_on_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: checks that a CPU generator's draw is moved to the CUDA input")
    model = tiny_cnn().eval().cuda()
    x, y = batch()
    cpu = pgd(model.cpu(), x, y, eps=EPS, step_size=STEP, steps=0, generator=torch.Generator().manual_seed(1))
    gpu = pgd(model.cuda(), x.cuda(), y.cuda(), eps=EPS, step_size=STEP, steps=0,
              generator=torch.Generator().manual_seed(1))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=0)


# ----------------------------------------------------------------------------- no host sync in the loop


class _CountScalarReads(TorchDispatchMode):
    """Counts device-to-host scalar reads (.item(), .tolist(), bool(t), Python branching on t)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("attack", ["pgd", "pgd_l2", "mifgsm"])
def test_no_host_sync_inside_the_loop(attack: str) -> None:
    model = tiny_cnn().eval()
    x, y = batch(4)
    fns: dict[str, Callable[..., Tensor]] = {"pgd": pgd, "pgd_l2": pgd_l2, "mifgsm": mifgsm}
    fn = fns[attack]
    counts = []
    for steps in (1, 6):
        kwargs: dict[str, Any] = {"eps": EPS, "step_size": STEP, "steps": steps}
        if attack != "mifgsm":
            kwargs["generator"] = torch.Generator().manual_seed(0)
        with _CountScalarReads() as counter:
            fn(model, x, y, **kwargs)
        counts.append(counter.count)
    assert counts[0] == counts[1]  # only the one-off input range check, whatever the number of steps
    assert counts[0] <= 2


# ----------------------------------------------------------------------------- exact / analytic values


@pytest.mark.parametrize("y_true", [0, 1])
def test_fgsm_on_linear_two_class_model_hits_the_analytic_optimum(y_true: int) -> None:
    """For logits W x + b with two classes, grad_x CE = p_other * (w_other - w_y): the FGSM step
    is x + eps * sign(w_other - w_y), which also maximises the linear margin over the eps-box ∩ [0,1]."""
    d = 3 * 4 * 4
    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, d, generator=g)
    linear = nn.Linear(d, 2)
    with torch.no_grad():
        linear.weight.copy_(w)
        linear.bias.copy_(torch.tensor([0.3, -0.2]))
    model = nn.Sequential(nn.Flatten(), linear)
    x = torch.rand(5, 3, 4, 4, generator=g)
    x[0] = 0.0
    x[1] = 1.0  # rows at the box edges exercise the [0, 1] clip
    y = torch.full((5,), y_true)
    eps = 0.1
    out = fgsm(model, x, y, eps=eps)
    direction = torch.sign(w[1 - y_true] - w[y_true]).view(1, 3, 4, 4)
    expected = (x + eps * direction).clamp(0, 1)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    margin = lambda t: (t.flatten(1) @ (w[1 - y_true] - w[y_true]))  # noqa: E731
    # No corner of the feasible box beats it (random feasible points).
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    for s in range(20):
        r = torch.rand(x.shape, generator=torch.Generator().manual_seed(s))
        assert bool((margin(lo + r * (hi - lo)) <= margin(out) + 1e-5).all())


def test_pgd_zero_step_size_and_zero_eps_return_x() -> None:
    model = tiny_cnn().eval()
    x, y = batch()
    assert torch.equal(pgd(model, x, y, eps=EPS, step_size=0.0, steps=3, random_start=False), x)
    assert torch.equal(pgd(model, x, y, eps=0.0, step_size=STEP, steps=3), x)
    assert torch.equal(fgsm(model, x, y, eps=0.0), x)


# ----------------------------------------------------------------------------- against IBM ART


def test_fgsm_matches_art(one_blas_thread: None) -> None:
    model = warmed(tiny_cnn()).eval()
    clf = art_classifier(model)
    from art.attacks.evasion import FastGradientMethod

    x, y = batch(16)
    ref = FastGradientMethod(clf, norm=np.inf, eps=EPS).generate(x.numpy(), y=y.numpy())
    torch.testing.assert_close(fgsm(model, x, y, eps=EPS), torch.from_numpy(ref), rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 20])
def test_pgd_without_random_start_matches_art(steps: int, one_blas_thread: None) -> None:
    model = warmed(tiny_cnn()).eval()
    clf = art_classifier(model)
    from art.attacks.evasion import ProjectedGradientDescentPyTorch

    x, y = batch(16)
    art = ProjectedGradientDescentPyTorch(clf, norm=np.inf, eps=EPS, eps_step=STEP, max_iter=steps,
                                          num_random_init=0, batch_size=16, verbose=False)
    ref = torch.from_numpy(art.generate(x.numpy(), y=y.numpy()))
    ours = pgd(model, x, y, eps=EPS, step_size=STEP, steps=steps, random_start=False)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    assert float(linf(ours, x).max()) == pytest.approx(EPS if steps > 1 else STEP, abs=1e-6)


def test_mifgsm_matches_art(one_blas_thread: None) -> None:
    """ART's MomentumIterativeMethod: g = decay * g + grad / ||grad||_1 (L1 *sum* per sample, as
    Dong et al. Eq. 6), sign step, clip, project. Ours is the same update, so 20 steps agree."""
    model = warmed(tiny_cnn()).eval()
    clf = art_classifier(model)
    from art.attacks.evasion import MomentumIterativeMethod

    x, y = batch(16)
    for decay, steps in ((0.5, 20), (1.0, 20)):
        art = MomentumIterativeMethod(clf, norm=np.inf, eps=EPS, eps_step=STEP, max_iter=steps, decay=decay,
                                      batch_size=16, verbose=False)
        ref = torch.from_numpy(art.generate(x.numpy(), y=y.numpy()))
        ours = mifgsm(model, x, y, eps=EPS, step_size=STEP, steps=steps, decay=decay)
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    # And momentum matters: it is not PGD without random start.
    plain = pgd(model, x, y, eps=EPS, step_size=STEP, steps=20, random_start=False)
    assert not torch.allclose(ours, plain)


# ----------------------------------------------------------------------------- errors


def test_setting_specific_errors() -> None:
    model, x, y = model_xy()
    with pytest.raises(ValueError, match="mifgsm: decay must be a finite non-negative number, got -1"):
        mifgsm(model, x, y, eps=EPS, step_size=STEP, steps=2, decay=-1.0)
    with pytest.raises(ValueError, match="pgd_l2: eps must be a finite non-negative number, got inf"):
        pgd_l2(model, x, y, eps=math.inf, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match=re.escape("pgd: noise was given but random_start=False. Hint")):
        pgd(model, x, y, eps=EPS, step_size=STEP, steps=1, random_start=False, noise=torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"pgd_l2: noise must be a tensor of x's shape \(8, 3, 16, 16\), "
                                         r"got \(1, 3, 16, 16\)"):
        pgd_l2(model, x, y, eps=0.5, step_size=0.1, steps=1, noise=torch.zeros_like(x[:1]))


@pytest.mark.parametrize(("fn", "norm"), [(pgd, "inf"), (pgd_l2, "2")])
def test_explicit_noise_must_be_finite_and_inside_the_unit_ball(fn: Callable[..., Tensor], norm: str) -> None:
    model, x, y = model_xy()
    eps, step = (EPS, STEP) if norm == "inf" else (0.5, 0.1)
    name = fn.__name__
    ok = unit_noise(x, norm)
    fn(model, x, y, eps=eps, step_size=step, steps=1, noise=ok)  # accepted
    nan = ok.clone()
    nan[2, 0, 0, 0] = float("nan")
    what = "max |noise|" if norm == "inf" else "the largest per-row L2 norm of noise"
    with pytest.raises(ValueError, match=rf"{name}: noise is the random start in units of eps and must be finite "
                                         rf".* got {re.escape(what)} = nan\. Hint"):
        fn(model, x, y, eps=eps, step_size=step, steps=1, noise=nan)
    big = ok * 3  # |noise| up to 3: a start 3 eps away, silently clamped before
    with pytest.raises(ValueError, match=rf"{name}: noise is the random start .* got {re.escape(what)} = 2\.\d+"):
        fn(model, x, y, eps=eps, step_size=step, steps=1, noise=big)
    with pytest.raises(TypeError, match=rf"{name}: noise must be a floating-point tensor, got dtype torch.int64"):
        fn(model, x, y, eps=eps, step_size=step, steps=1, noise=torch.zeros_like(x, dtype=torch.long))


def test_infinite_eps_pgd_only_keeps_pixels_in_range() -> None:
    model, x, y = model_xy()
    out = pgd(model, x, y, eps=math.inf, step_size=0.1, steps=3, generator=torch.Generator().manual_seed(0))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(linf(out, x).max()) > 0.3

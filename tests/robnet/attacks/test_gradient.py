"""Attacks (robnet.attacks.gradient) and mode/parameter context managers (robnet.utils).

Checks: the attack contract (eps-ball, [0, 1], x untouched, mode/flags/param grads untouched,
detached result), batch consistency, the FGSM optimum of a linear model, bit-level agreement with
IBM ART (FGSM, PGD without random start, MI-FGSM), DeepFool against an independent per-sample
reference and against ART, no host sync inside the PGD loop, and every documented error (labels
outside the model's classes and explicit starts outside the eps-ball included). The spec
language (AttackConfig, parse_attack, make_attack) is tested in test_attack_spec.py.
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

from robnet.attacks.deepfool import deepfool
from robnet.attacks.gradient import fgsm, mifgsm, no_attack, pgd, pgd_l2
from robnet.utils import eval_mode, train_mode

EPS = 8 / 255
STEP = 2 / 255
Setup = tuple[nn.Module, Tensor, Tensor]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Any:
    """The tiny models here are far too small for intra-op parallelism; on 2 shared cores torch's
    OpenMP workers spin against other processes (this file: 5 s with one thread, 60 s with two
    under load). Restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_cnn(seed: int = 0, classes: int = 10) -> nn.Sequential:
    """conv(3->8) + BN + ReLU + maxpool + linear, for 3x16x16 inputs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 8 * 8, classes),
    )


def batch(n: int = 8, seed: int = 1, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 16, 16, generator=g, dtype=dtype)
    y = torch.randint(0, 10, (n,), generator=g)
    return x, y


def warmed(model: nn.Sequential) -> nn.Sequential:
    """Give BN non-trivial running statistics, so eval and train mode really differ."""
    with torch.no_grad(), train_mode(model):
        for s in range(3):
            model(batch(16, seed=100 + s)[0])
    return model


def linf(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).abs().amax(dim=1)


def l2(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).flatten(1).norm(dim=1)


# name -> (attack(model, x, y), norm, eps)
ATTACKS: dict[str, tuple[Callable[[nn.Module, Tensor, Tensor], Tensor], str, float]] = {
    "fgsm": (lambda m, x, y: fgsm(m, x, y, eps=EPS), "inf", EPS),
    "pgd": (lambda m, x, y: pgd(m, x, y, eps=EPS, step_size=STEP, steps=5, random_start=False), "inf", EPS),
    "pgd_rand": (lambda m, x, y: pgd(m, x, y, eps=EPS, step_size=STEP, steps=5,
                                     generator=torch.Generator().manual_seed(3)), "inf", EPS),
    "pgd_l2": (lambda m, x, y: pgd_l2(m, x, y, eps=0.5, step_size=0.2, steps=5,
                                      generator=torch.Generator().manual_seed(3)), "2", 0.5),
    "mifgsm": (lambda m, x, y: mifgsm(m, x, y, eps=EPS, step_size=STEP, steps=5), "inf", EPS),
    "deepfool_inf": (lambda m, x, y: deepfool(m, x, y, steps=10, eps=EPS), "inf", EPS),
    "deepfool_l2": (lambda m, x, y: deepfool(m, x, y, steps=10, norm="2", eps=0.1), "2", 0.1),
}


# ----------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("mode", ["eval", "mixed_train"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_contract(name: str, mode: str) -> None:
    attack, norm, eps = ATTACKS[name]
    model = warmed(tiny_cnn())
    if mode == "eval":
        model.eval()
    else:  # train mode with BN deliberately frozen: must come back exactly like this
        model.train()
        model[1].eval()
    model[0].bias.requires_grad_(False)
    head = model[5]
    assert isinstance(head, nn.Linear)
    head.weight.grad = torch.full_like(head.weight, 7.0)
    flags = [m.training for m in model.modules()]
    req = [p.requires_grad for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, _ = batch()
    with torch.no_grad(), eval_mode(model):
        y = model(x).argmax(dim=1)  # correctly classified, so that DeepFool has work to do
    x0 = x.clone()

    x_adv = attack(model, x, y)

    assert torch.equal(x, x0)  # input untouched
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert not x_adv.requires_grad and x_adv.grad_fn is None
    assert x_adv.data_ptr() != x.data_ptr()
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    dist = linf(x_adv, x) if norm == "inf" else l2(x_adv, x)
    assert float(dist.max()) <= eps * (1 + 1e-5) + 1e-7
    assert float(dist.max()) > 0.0  # it did attack
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == req
    assert model[0].weight.grad is None and model[0].bias.grad is None and model[1].weight.grad is None
    assert head.weight.grad is not None and torch.equal(head.weight.grad, torch.full_like(head.weight, 7.0))
    assert head.bias.grad is None
    if mode == "eval":  # nothing in the model changed
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("name", list(ATTACKS))
def test_attacks_run_under_no_grad_with_same_result(name: str) -> None:
    attack = ATTACKS[name][0]
    model = warmed(tiny_cnn()).eval()
    x, y = batch()
    with torch.no_grad():
        inside = attack(model, x, y)
    assert torch.equal(inside, attack(model, x, y))


def test_pgd_under_cpu_autocast_keeps_dtype_and_ball() -> None:
    model = warmed(tiny_cnn()).eval()
    x, y = batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = pgd(model, x, y, eps=EPS, step_size=STEP, steps=3, random_start=False)
    assert x_adv.dtype == torch.float32
    assert float(linf(x_adv, x).max()) <= EPS + 1e-7
    assert float(linf(x_adv, x).max()) > 0


@pytest.mark.parametrize("name", list(ATTACKS))
def test_empty_batch_gives_empty_result(name: str) -> None:
    model = tiny_cnn().eval()
    x = torch.rand(0, 3, 16, 16)
    out = ATTACKS[name][0](model, x, torch.zeros(0, dtype=torch.long))
    assert out.shape == x.shape and out.dtype == x.dtype


def test_no_attack_returns_a_checked_copy() -> None:
    model = tiny_cnn().eval()
    x, y = batch()
    out = no_attack(model, x, y)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    with pytest.raises(ValueError, match=r"none: x must lie in \[0, 1\]"):
        no_attack(model, x + 1, y)


# ----------------------------------------------------------------------------- batch consistency


def _noise(x: Tensor, kind: str) -> Tensor:
    g = torch.Generator().manual_seed(11)
    if kind == "inf":
        return torch.rand(x.shape, generator=g, dtype=x.dtype) * 2 - 1
    z = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return z / z.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * 0.9


BATCH_CASES: dict[str, Callable[[nn.Module, Tensor, Tensor, Tensor | None], Tensor]] = {
    "fgsm": lambda m, x, y, n: fgsm(m, x, y, eps=EPS),
    "pgd_no_start": lambda m, x, y, n: pgd(m, x, y, eps=EPS, step_size=STEP, steps=4, random_start=False),
    "pgd_noise": lambda m, x, y, n: pgd(m, x, y, eps=EPS, step_size=STEP, steps=4, noise=n),
    "pgd_l2_noise": lambda m, x, y, n: pgd_l2(m, x, y, eps=0.5, step_size=0.1, steps=4, noise=n),
    "mifgsm": lambda m, x, y, n: mifgsm(m, x, y, eps=EPS, step_size=STEP, steps=4),
    "deepfool_inf": lambda m, x, y, n: deepfool(m, x, y, steps=20),
    "deepfool_l2": lambda m, x, y, n: deepfool(m, x, y, steps=20, norm="2", eps=0.2),
}


@pytest.mark.parametrize("name", list(BATCH_CASES))
def test_batch_equals_rows_attacked_one_by_one(name: str) -> None:
    """Eval mode, float64 (so that batched and single-row kernels agree far below a sign flip).

    PGD's random start is made batch-independent by passing the start explicitly (``noise``):
    a single generator draw of the whole batch is not batch-consistent by design.
    """
    run = BATCH_CASES[name]
    model = warmed(tiny_cnn()).double().eval()
    x, y = batch(4, dtype=torch.float64)
    noise = _noise(x, "2" if "l2" in name else "inf")
    whole = run(model, x, y, noise)
    rows = torch.cat([run(model, x[i:i + 1], y[i:i + 1], noise[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(whole, rows, rtol=0, atol=1e-12)
    assert float(linf(whole, x).max()) > 0


def test_l2_step_has_exactly_step_size_length() -> None:
    model = warmed(tiny_cnn()).double().eval()
    x, y = batch(5, dtype=torch.float64)
    x = 0.25 + 0.5 * x  # far from the [0, 1] edges: no clipping
    out = pgd_l2(model, x, y, eps=1.0, step_size=0.1, steps=1, random_start=False)
    torch.testing.assert_close(l2(out, x), torch.full((5,), 0.1, dtype=torch.float64))
    two = pgd_l2(model, x, y, eps=0.15, step_size=0.1, steps=2, random_start=False)
    torch.testing.assert_close(l2(two, x), torch.full((5,), 0.15, dtype=torch.float64))


# ----------------------------------------------------------------------------- random start


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
    noise = _noise(x, "inf")
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


@pytest.fixture
def one_blas_thread() -> Any:
    """ART does part of its work in numpy: OpenBLAS's worker threads and torch's OpenMP threads then
    fight over the 2 cores (one DeepFool comparison went from 4 s to 100 s)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def _art_classifier(model: nn.Module, classes: int = 10) -> Any:
    pytest.importorskip("art", reason="adversarial-robustness-toolbox is in the 'test' extra")
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(3, 16, 16), nb_classes=classes,
                             clip_values=(0.0, 1.0))


def test_fgsm_matches_art(one_blas_thread: None) -> None:
    model = warmed(tiny_cnn()).eval()
    clf = _art_classifier(model)
    from art.attacks.evasion import FastGradientMethod

    x, y = batch(16)
    ref = FastGradientMethod(clf, norm=np.inf, eps=EPS).generate(x.numpy(), y=y.numpy())
    torch.testing.assert_close(fgsm(model, x, y, eps=EPS), torch.from_numpy(ref), rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 20])
def test_pgd_without_random_start_matches_art(steps: int, one_blas_thread: None) -> None:
    model = warmed(tiny_cnn()).eval()
    clf = _art_classifier(model)
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
    clf = _art_classifier(model)
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


# ----------------------------------------------------------------------------- DeepFool


def reference_deepfool(model: nn.Module, x: Tensor, y: Tensor, *, steps: int, overshoot: float,
                       num_candidates: int, norm: str) -> Tensor:
    """Straightforward DeepFool: one sample at a time, one class at a time (Moosavi-Dezfooli et al.
    2016, Alg. 2 with the L-inf variant of Sec. 3.3), clipping each iterate to [0, 1]."""
    out = []
    for i in range(x.shape[0]):
        x0, label = x[i], int(y[i])
        with torch.no_grad():
            f0 = model(x0[None])[0]
        classes = [k for k in torch.argsort(f0, descending=True).tolist() if k != label][: num_candidates - 1]
        r = torch.zeros_like(x0)
        cur = x0.clone()
        for _ in range(steps):
            xi = cur.clone().requires_grad_(True)
            f = model(xi[None])[0]
            if int(f.argmax()) != label:
                break
            g_label = torch.autograd.grad(f[label], xi, retain_graph=True)[0]
            best, best_w, best_norm = math.inf, torch.zeros_like(x0), 1.0
            for k in classes:
                w_k = torch.autograd.grad(f[k], xi, retain_graph=True)[0] - g_label
                f_k = float((f[k] - f[label]).detach())
                n_k = float(w_k.abs().sum()) if norm == "inf" else float(w_k.norm())
                if n_k > 0 and abs(f_k) / n_k < best:
                    best, best_w, best_norm = abs(f_k) / n_k, w_k, n_k
            if norm == "inf":
                r = r + (best + 1e-4) * best_w.sign()
            else:
                r = r + (best + 1e-4) * best_w / best_norm
            cur = (x0 + (1 + overshoot) * r).clamp(0, 1)
        out.append(cur)
    return torch.stack(out)


@pytest.fixture(scope="module")
def df_setup() -> Setup:
    model = warmed(tiny_cnn(seed=4)).eval()
    x, _ = batch(16, seed=9)
    with torch.no_grad():
        y = model(x).argmax(dim=1)  # all rows start correctly classified
    return model, x, y


@pytest.mark.parametrize("norm", ["inf", "2"])
def test_deepfool_agrees_with_per_sample_reference(df_setup: Setup, norm: str) -> None:
    model, x, y = df_setup
    ours = deepfool(model, x, y, steps=50, overshoot=0.02, num_candidates=10, norm=norm)
    ref = reference_deepfool(model, x, y, steps=50, overshoot=0.02, num_candidates=10, norm=norm)
    dist = linf if norm == "inf" else l2
    with torch.no_grad():
        ok_ours = model(ours).argmax(1) != y
        ok_ref = model(ref).argmax(1) != y
    assert float(ok_ours.float().mean()) >= float(ok_ref.float().mean()) - 1 / 16
    assert float(ok_ours.float().mean()) >= 0.9
    med_ours, med_ref = float(dist(ours, x).median()), float(dist(ref, x).median())
    assert med_ours == pytest.approx(med_ref, rel=0.03)
    # Same algorithm, batched vs looped: row by row the perturbations agree closely.
    torch.testing.assert_close(dist(ours, x), dist(ref, x), rtol=0.05, atol=1e-4)


def test_deepfool_l2_close_to_art(df_setup: Setup, one_blas_thread: None) -> None:
    """ART's DeepFool is L2 and applies the overshoot once at the end (ours, like the original, at
    every iterate), so the two are compared on success rate and median L2 norm, not element-wise."""
    model, x, y = df_setup
    clf = _art_classifier(model)
    from art.attacks.evasion import DeepFool

    ref = torch.from_numpy(DeepFool(clf, max_iter=50, epsilon=0.02, nb_grads=10, batch_size=1,
                                    verbose=False).generate(x.numpy()))
    ours = deepfool(model, x, y, steps=50, overshoot=0.02, num_candidates=10, norm="2")
    with torch.no_grad():
        rate_ours = float((model(ours).argmax(1) != y).float().mean())
        rate_art = float((model(ref).argmax(1) != y).float().mean())
    assert rate_ours >= rate_art - 1 / 16
    assert float(l2(ours, x).median()) == pytest.approx(float(l2(ref, x).median()), rel=0.05)


def test_deepfool_leaves_misclassified_rows_alone_and_projects(df_setup: Setup) -> None:
    model, x, y = df_setup
    wrong = (y + 1) % 10
    assert torch.equal(deepfool(model, x, wrong), x)
    free = deepfool(model, x, y, steps=50)
    eps = 0.5 * float(linf(free, x).median())
    projected = deepfool(model, x, y, steps=50, eps=eps)
    torch.testing.assert_close(projected, free.clamp(x - eps, x + eps).clamp(0, 1), rtol=0, atol=0)
    free2 = deepfool(model, x, y, steps=50, norm="2")
    eps2 = 0.5 * float(l2(free2, x).median())
    projected2 = deepfool(model, x, y, steps=50, norm="2", eps=eps2)
    scale = (eps2 / l2(free2, x)).clamp(max=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(projected2, x + scale * (free2 - x), rtol=0, atol=1e-6)
    # Projection lowers the success rate: that is the SPEC's "DeepFool accuracy" measurement.
    with torch.no_grad():
        acc_free = float((model(free).argmax(1) == y).float().mean())
        acc_proj = float((model(projected).argmax(1) == y).float().mean())
    assert acc_free <= 1 / 16 < acc_proj


def test_deepfool_zero_steps_and_two_candidates() -> None:
    model = tiny_cnn().eval()
    x, _ = batch()
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(dim=1)
    assert torch.equal(deepfool(model, x, y, steps=0), x)
    two = deepfool(model, x, y, steps=50, num_candidates=2)
    with torch.no_grad():
        pred = model(two).argmax(dim=1)
    # With two candidates DeepFool is the binary attack against the runner-up class.
    assert torch.equal(pred, logits.topk(2, dim=1).indices[:, 1])


# ----------------------------------------------------------------------------- errors


def _model_xy() -> tuple[nn.Module, Tensor, Tensor]:
    x, y = batch()
    return tiny_cnn().eval(), x, y


ALL_FNS: dict[str, Callable[..., Tensor]] = {
    "fgsm": lambda m, x, y, **k: fgsm(m, x, y, eps=k.get("eps", EPS)),
    "pgd": lambda m, x, y, **k: pgd(m, x, y, eps=k.get("eps", EPS), step_size=k.get("step_size", STEP),
                                    steps=k.get("steps", 2)),
    "pgd_l2": lambda m, x, y, **k: pgd_l2(m, x, y, eps=k.get("eps", 0.5), step_size=k.get("step_size", 0.1),
                                          steps=k.get("steps", 2)),
    "mifgsm": lambda m, x, y, **k: mifgsm(m, x, y, eps=k.get("eps", EPS), step_size=k.get("step_size", STEP),
                                          steps=k.get("steps", 2)),
    "deepfool": lambda m, x, y, **k: deepfool(m, x, y, eps=k.get("eps", EPS), steps=k.get("steps", 2)),
}


def _with_extremes(x: Tensor, lo: float, hi: float) -> Tensor:
    out = x.clone()
    out[0, 0, 0, 0], out[-1, -1, -1, -1] = lo, hi
    return out


@pytest.mark.parametrize("name", list(ALL_FNS))
def test_input_errors(name: str) -> None:
    fn = ALL_FNS[name]
    model, x, y = _model_xy()
    with pytest.raises(ValueError, match=rf"{name}: x must lie in \[0, 1\] \(pixel space\), got values in "
                                         r"\[-0\.5, 1\]\. Hint: mean/std normalization belongs inside "
                                         r"the model"):
        fn(model, _with_extremes(x, -0.5, 1.0), y)
    with pytest.raises(ValueError, match=r"got values in \[0, 1\.5\]"):
        fn(model, _with_extremes(x, 0.0, 1.5), y)
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x must lie in \[0, 1\]"):
        fn(model, bad, y)
    with pytest.raises(ValueError, match=rf"{name}: batch size mismatch: x has 8 rows, y has 7 labels"):
        fn(model, x, y[:7])
    with pytest.raises(TypeError, match=r"x must be a floating-point tensor of images in \[0, 1\], got dtype "
                                        r"torch.uint8\. Hint: convert uint8 images"):
        fn(model, (x * 255).to(torch.uint8), y)
    with pytest.raises(TypeError, match=re.escape("integer class indices, got dtype torch.float32")):
        fn(model, x, y.float())
    with pytest.raises(ValueError, match=r"y must be 1-D \(one class index per row\), got shape \(8, 1\)"):
        fn(model, x, y[:, None])
    with pytest.raises(ValueError, match=r"x must have a batch dimension, got shape \(768,\)"):
        fn(model, x[0].flatten(), y)
    with pytest.raises(TypeError, match=re.escape("model must be a torch.nn.Module, got function")):
        fn(lambda t: t, x, y)
    with pytest.raises(ValueError, match=r"cannot compute input gradients inside torch\.inference_mode"), \
            torch.inference_mode():
        fn(model, x, y)
    with pytest.raises(ValueError, match=rf"{name}: eps must be a (finite )?non-negative number, got -0.1"):
        fn(model, x, y, eps=-0.1)
    with pytest.raises(TypeError, match="eps must be a number, got str"):
        fn(model, x, y, eps="8/255")
    if name not in ("fgsm",):
        with pytest.raises(ValueError, match=rf"{name}: steps must be >= 0, got -1"):
            fn(model, x, y, steps=-1)
        with pytest.raises(TypeError, match="steps must be an int, got float"):
            fn(model, x, y, steps=2.0)
    if name not in ("fgsm", "deepfool"):
        with pytest.raises(ValueError, match=rf"{name}: step_size must be a finite non-negative number, "
                                             r"got -0\.01"):
            fn(model, x, y, step_size=-0.01)


def test_setting_specific_errors() -> None:
    model, x, y = _model_xy()
    with pytest.raises(ValueError, match="mifgsm: decay must be a finite non-negative number, got -1"):
        mifgsm(model, x, y, eps=EPS, step_size=STEP, steps=2, decay=-1.0)
    with pytest.raises(ValueError, match=r"overshoot must be a finite non-negative number, got -0\.1"):
        deepfool(model, x, y, overshoot=-0.1)
    with pytest.raises(ValueError, match=r"deepfool: num_candidates must be >= 2 \(y and at least one other"):
        deepfool(model, x, y, num_candidates=1)
    with pytest.raises(TypeError, match="deepfool: num_candidates must be an int, got float"):
        deepfool(model, x, y, num_candidates=3.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deepfool: norm must be 'inf' or '2', got 'l2'"):
        deepfool(model, x, y, norm="l2")
    one_class = nn.Sequential(nn.Flatten(), nn.Linear(768, 1))
    with pytest.raises(ValueError, match=r"deepfool: the model must return logits of shape "
                                         r"\(N, classes >= 2\), got \(8, 1\)"):
        deepfool(one_class, x, torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="pgd_l2: eps must be a finite non-negative number, got inf"):
        pgd_l2(model, x, y, eps=math.inf, step_size=0.1, steps=1)
    with pytest.raises(ValueError, match=re.escape("pgd: noise was given but random_start=False. Hint")):
        pgd(model, x, y, eps=EPS, step_size=STEP, steps=1, random_start=False, noise=torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"pgd_l2: noise must be a tensor of x's shape \(8, 3, 16, 16\), "
                                         r"got \(1, 3, 16, 16\)"):
        pgd_l2(model, x, y, eps=0.5, step_size=0.1, steps=1, noise=torch.zeros_like(x[:1]))


@pytest.mark.parametrize("name", list(ALL_FNS))
def test_labels_outside_the_model_classes_are_refused(name: str) -> None:
    """-100 is cross-entropy's ignore_index: the row got a zero gradient and was silently left alone."""
    fn = ALL_FNS[name]
    model, x, y = _model_xy()
    ignored = y.clone()
    ignored[3] = -100
    with pytest.raises(ValueError, match=rf"{name}: y must hold class indices in \[0, num_classes\), got a label "
                                         r"-100\. Hint: -100 is cross-entropy's ignore_index"):
        fn(model, x, ignored)
    too_big = y.clone()
    too_big[5] = 10
    with pytest.raises(ValueError, match=rf"{name}: y must hold class indices in \[0, num_classes\), got a label "
                                         r"10 but the model has 10 classes"):
        fn(model, x, too_big)
    five = tiny_cnn(classes=5).eval()  # a 5-class model on 10-class labels: IndexError before
    with pytest.raises(ValueError, match=r"got a label \d but the model has 5 classes\. Hint: the model and "
                                         r"the data disagree"):
        fn(five, x, torch.arange(8) % 10)


def _ignored_row_reproduction() -> tuple[Tensor, Tensor]:
    """What the attack did before labels were checked: the -100 row came back unchanged."""
    model, x, y = _model_xy()
    y = y.clone()
    y[0] = -100
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    return grad[0], grad[1]


def test_ignore_index_really_gives_a_zero_gradient() -> None:
    ignored_row, other_row = _ignored_row_reproduction()
    assert float(ignored_row.abs().max()) == 0.0 and float(other_row.abs().max()) > 0.0


@pytest.mark.parametrize(("fn", "norm"), [(pgd, "inf"), (pgd_l2, "2")])
def test_explicit_noise_must_be_finite_and_inside_the_unit_ball(fn: Callable[..., Tensor], norm: str) -> None:
    model, x, y = _model_xy()
    eps, step = (EPS, STEP) if norm == "inf" else (0.5, 0.1)
    name = fn.__name__
    ok = _noise(x, norm)
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
    model, x, y = _model_xy()
    out = pgd(model, x, y, eps=math.inf, step_size=0.1, steps=3, generator=torch.Generator().manual_seed(0))
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float(linf(out, x).max()) > 0.3

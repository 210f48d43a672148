"""The contract every attack keeps (robnet.attacks.contract), checked on each of them.

Checks: eps-ball, [0, 1], x untouched, mode/flags/param grads untouched, detached result, the
same result under ``torch.no_grad()``, empty batches, batch consistency (a batch equals its rows
attacked one by one), and every documented input error (labels outside the model's classes
included). Each attack's own behaviour is tested in its own file (test_gradient.py,
test_deepfool.py, test_apgd.py, ...).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from robnet.attacks.deepfool import deepfool
from robnet.attacks.gradient import fgsm, mifgsm, pgd, pgd_l2
from robnet.utils import eval_mode
from tests.robnet.attacks._tiny import EPS, STEP, batch, l2, linf, model_xy, tiny_cnn, unit_noise, warmed

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


@pytest.mark.parametrize("name", list(ATTACKS))
def test_empty_batch_gives_empty_result(name: str) -> None:
    model = tiny_cnn().eval()
    x = torch.rand(0, 3, 16, 16)
    out = ATTACKS[name][0](model, x, torch.zeros(0, dtype=torch.long))
    assert out.shape == x.shape and out.dtype == x.dtype


# ----------------------------------------------------------------------------- batch consistency


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
    noise = unit_noise(x, "2" if "l2" in name else "inf")
    whole = run(model, x, y, noise)
    rows = torch.cat([run(model, x[i:i + 1], y[i:i + 1], noise[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(whole, rows, rtol=0, atol=1e-12)
    assert float(linf(whole, x).max()) > 0


# ----------------------------------------------------------------------------- errors


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
    model, x, y = model_xy()
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


@pytest.mark.parametrize("name", list(ALL_FNS))
def test_labels_outside_the_model_classes_are_refused(name: str) -> None:
    """-100 is cross-entropy's ignore_index: the row got a zero gradient and was silently left alone."""
    fn = ALL_FNS[name]
    model, x, y = model_xy()
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
    model, x, y = model_xy()
    y = y.clone()
    y[0] = -100
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x_req), y, reduction="sum"), x_req)
    return grad[0], grad[1]


def test_ignore_index_really_gives_a_zero_gradient() -> None:
    ignored_row, other_row = _ignored_row_reproduction()
    assert float(ignored_row.abs().max()) == 0.0 and float(other_row.abs().max()) > 0.0

"""DeepFool (robnet.attacks.deepfool): against an independent per-sample reference and against IBM ART,
rows already misclassified left alone, the final projection into the eps-ball, and its setting errors.
The contract it shares with every attack is tested in test_contract.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from robnet.attacks.deepfool import deepfool
from tests.robnet.attacks._tiny import Setup, art_classifier, batch, l2, linf, model_xy, tiny_cnn, warmed


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
    clf = art_classifier(model)
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
    # Projection lowers the success rate: that is the "DeepFool accuracy" of docs/design.md §3.
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


def test_deepfool_setting_errors() -> None:
    model, x, y = model_xy()
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

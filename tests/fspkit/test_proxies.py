"""Zero-cost proxies: hand-computed values on a 2-layer net, independent paths on a tiny RobNet,
the model left exactly as it was, non-finite handling, every documented error."""

import contextlib
import copy
import logging
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from fspkit.proxies import (
    NONFINITE_REASONS,
    PROXIES,
    ProxyConfig,
    compute_proxies,
    grad_norm,
    naswot,
    proxy_record,
    synflow,
)
from robnet import ROBNET_LARGE, build_robnet

W1 = [[1.0, -1.0, 0.0], [0.5, 2.0, -1.0]]
W2 = [[1.0, 2.0], [-1.0, 1.0]]


def hand_net(*, bias: bool = False, bn: bool = False, inplace: bool = False) -> nn.Sequential:
    """x (3) -> fc1 (W1) [-> BN] -> ReLU -> fc2 (W2 [+ b2]) -> 2 logits."""
    layers: list[nn.Module] = [nn.Linear(3, 2, bias=False)]
    if bn:
        norm = nn.BatchNorm1d(2)
        with torch.no_grad():  # running statistics and an affine map the SynFlow copy must ignore
            norm.running_mean.copy_(torch.tensor([5.0, -3.0]))
            norm.running_var.copy_(torch.tensor([0.25, 4.0]))
            norm.weight.copy_(torch.tensor([-2.0, 0.5]))
            norm.bias.copy_(torch.tensor([1.0, -7.0]))
        layers.append(norm)
    layers += [nn.ReLU(inplace=inplace), nn.Linear(2, 2, bias=bias)]
    net = nn.Sequential(*layers)
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W1))
        net[-1].weight.copy_(torch.tensor(W2))
        if bias:
            net[-1].bias.copy_(torch.tensor([0.5, -1.0]))
    return net


def tiny(seed: int = 0, **kw) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_robnet(ROBNET_LARGE, C=4, layers=3, in_channels=1, **kw)


def batch(n: int = 8, hw: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, hw, hw, generator=g), torch.randint(0, 10, (n,), generator=g)


def warm(model: nn.Module) -> nn.Module:
    """Non-trivial BN running statistics, so batch and running BN modes differ."""
    model.train()
    with torch.no_grad():
        for seed in (11, 12):
            model(batch(seed=seed)[0] * 3)
    return model


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def conv_linear_weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]


# ----------------------------------------------------------------------------- hand-checkable values
def test_grad_norm_hand_network_equals_numpy_backprop():
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [-1.0, 3.0, 1.0], [2.0, 2.0, -1.0]])
    y = torch.tensor([0, 1, 1, 0])
    # numpy reference: h = relu(x W1^T), z = h W2^T + b2, dL/dz = (softmax(z) - onehot) / N
    xn, w1, w2, b2 = x.double().numpy(), np.array(W1), np.array(W2), np.array([0.5, -1.0])
    pre = xn @ w1.T
    h = np.maximum(pre, 0)
    z = h @ w2.T + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(2)[y.numpy()]) / len(xn)
    dw2 = dz.T @ h
    dw1 = ((dz @ w2) * (pre > 0)).T @ xn
    expected = np.linalg.norm(dw1) + np.linalg.norm(dw2)  # the bias b2 is not a scored tensor
    assert grad_norm(hand_net(bias=True), x, y) == pytest.approx(expected, rel=1e-6)


def test_synflow_hand_network_is_29():
    # |W1| = [[1,1,0],[.5,2,1]], |W2| = [[1,2],[1,1]]; input ones: h = |W1| 1 = (2, 3.5),
    # R = sum |W2| h = 9 + 5.5 = 14.5. R is linear in each layer, so sum W (.) dR/dW = R per layer:
    # 14.5 (fc2) + 14.5 (fc1) = 29. A bias changes R but not the two weight terms (dR/dh stays the
    # column sums (2, 3) of |W2|: 2 * 2 + 3 * 3.5 = 14.5); BN is removed, whatever its statistics.
    assert synflow(hand_net(), (1, 3)) == 29.0
    assert synflow(hand_net(bias=True), (5, 3)) == 29.0
    assert synflow(hand_net(bn=True), torch.Size([4, 3])) == 29.0
    bn_net = hand_net(bn=True).train()
    assert synflow(bn_net, (1, 3)) == 29.0  # batch statistics would zero a single sample: still removed
    assert bn_net.training and bn_net[0].weight.dtype == torch.float32


def test_naswot_hand_network_is_log_4():
    # codes of fc1 pre-activations (x W1^T > 0): e1 -> (1, .5) -> [1, 1]; e2 -> (-1, 2) -> [0, 1];
    # e3 -> (0, -1) -> [0, 0]. K_ij = 2 - Hamming = [[2,1,0],[1,2,1],[0,1,2]], det = 4.
    for inplace in (False, True):
        assert naswot(hand_net(inplace=inplace), torch.eye(3)) == pytest.approx(math.log(4.0), abs=1e-12)


def test_naswot_kernel_equals_explicit_codes_on_two_relus():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(inplace=True), nn.Linear(6, 3))
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h1 = net[0](x)
        h2 = net[2](torch.relu(h1))
    c = torch.cat([h1 > 0, h2 > 0], dim=1).double().numpy()  # (N, N_A) binary codes
    k = c @ c.T + (1 - c) @ (1 - c).T
    assert np.allclose(np.diag(k), 13)  # every sample agrees with itself on all 7 + 6 units
    expected = np.linalg.slogdet(k)[1]
    assert naswot(net, x) == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- tiny RobNet, independent paths
def test_grad_norm_on_robnet_equals_backward_on_a_copy():
    model = warm(tiny())
    x, y = batch()
    for bn, train in (("batch", True), ("running", False)):
        ref = copy.deepcopy(model).train(train)
        nn.functional.cross_entropy(ref(x), y).backward()
        expected = sum(float(w.grad.double().norm()) for w in conv_linear_weights(ref))
        assert grad_norm(model, x, y, bn=bn) == pytest.approx(expected, rel=1e-6)
    assert grad_norm(model, x, y, bn="batch") != pytest.approx(grad_norm(model, x, y, bn="running"), rel=1e-3)
    # the wrapper is unwrapped; DataParallel moves its module to cuda:0 when CUDA exists, so wrap a copy
    wrapped = nn.DataParallel(copy.deepcopy(model))
    dev = next(wrapped.parameters()).device
    expected = grad_norm(model, x, y)
    with _no_tf32():
        got = grad_norm(wrapped, x.to(dev), y.to(dev))
    assert got == (expected if dev.type == "cpu" else pytest.approx(expected, rel=1e-4))


# torch's forward-mode AD loads its decompositions through torch.jit.script (deprecated inside torch)
@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_synflow_on_robnet_equals_forward_mode_euler_derivative():
    # sum_W W (.) dR/dW (reverse mode) = d/da R(a W)|_{a=1} (forward mode along the weights themselves)
    model = warm(tiny())
    x, _ = batch()
    ref = copy.deepcopy(model).double().eval()
    for parent in list(ref.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
    params = {k: v.detach().abs() for k, v in ref.named_parameters()}
    scored = {k for k, m in ref.named_modules() if isinstance(m, nn.Conv2d | nn.Linear) for k in [f"{k}.weight"]}
    assert len(scored) == len(conv_linear_weights(ref))
    ones = torch.ones(1, 1, 16, 16, dtype=torch.float64)

    def r_of(a: torch.Tensor) -> torch.Tensor:
        scaled = {k: v * a if k in scored else v for k, v in params.items()}
        return torch.func.functional_call(ref, scaled, (ones,)).sum()

    _, euler = torch.func.jvp(r_of, (torch.ones((), dtype=torch.float64),), (torch.ones((), dtype=torch.float64),))
    score = synflow(model, x.shape)
    assert score == pytest.approx(float(euler), rel=1e-10)
    assert score > 0 and math.isfinite(score)


def test_naswot_on_robnet_equals_explicit_codes():
    model = warm(tiny())
    x, _ = batch()
    for bn, train in (("batch", True), ("running", False)):
        ref = copy.deepcopy(model).train(train)
        codes: list[torch.Tensor] = []

        def keep(mod: nn.Module, inp: object, out: torch.Tensor, codes: list[torch.Tensor] = codes) -> None:
            codes.append((out.flatten(1) > 0).double())

        for m in ref.modules():
            if isinstance(m, nn.ReLU):
                m.register_forward_hook(keep)
        with torch.no_grad():
            ref(x)
        c = torch.cat(codes, dim=1)
        k = c @ c.T + (1 - c) @ (1 - c).T
        assert naswot(model, x, bn=bn) == pytest.approx(float(torch.linalg.slogdet(k).logabsdet), rel=1e-12)


def test_model_left_exactly_as_it_was_and_deterministic():
    model = warm(tiny())
    model.train()
    model.cells[1].eval()  # mixed flags must come back per module, not as model.train()
    model.stem[0].weight.requires_grad_(False)
    x, y = batch()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    grads_flags = [p.requires_grad for p in model.parameters()]
    first = compute_proxies(model, x, y)
    second = compute_proxies(model, x, y)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k  # weights, BN running statistics, num_batches_tracked
        assert v.dtype == state[k].dtype
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads_flags
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert {k: v for k, v in first.items() if k.startswith("proxy_")} == {
        k: v for k, v in second.items() if k.startswith("proxy_")}


def test_compute_proxies_keys_values_and_config():
    model = warm(tiny())
    x, y = batch()
    out = compute_proxies(model, x, y)
    assert list(out) == ["proxy_grad_norm", "seconds_grad_norm", "proxy_synflow", "seconds_synflow",
                         "proxy_naswot", "seconds_naswot"]
    assert out["proxy_grad_norm"] == grad_norm(model, x, y)
    assert out["proxy_synflow"] == synflow(model, x.shape)
    assert out["proxy_naswot"] == naswot(model, x)
    assert all(out[f"seconds_{p}"] >= 0 for p in PROXIES)
    running = compute_proxies(model, x, y, config=ProxyConfig(proxies=("naswot", "grad_norm"), bn="running"))
    assert list(running) == ["proxy_grad_norm", "seconds_grad_norm", "proxy_naswot", "seconds_naswot"]
    assert running["proxy_naswot"] == naswot(model, x, bn="running")
    assert running["proxy_naswot"] != out["proxy_naswot"]
    assert proxy_record(out) == out  # all finite: copied unchanged


# ----------------------------------------------------------------------------- non-finite scores
def test_non_finite_scores_are_nan_with_a_reason(caplog):
    x = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    y = torch.tensor([0, 1])
    broken = hand_net()
    with torch.no_grad():
        broken[-1].weight[0, 0] = math.inf
    with caplog.at_level(logging.WARNING, logger="fspkit.proxies"):
        assert math.isnan(grad_norm(broken, x, y))
    assert "grad_norm proxy is not finite" in caplog.text
    deep = nn.Sequential(*[nn.Linear(3, 3, bias=False) for _ in range(40)])
    with torch.no_grad():
        for layer in deep:
            layer.weight.fill_(1e8)  # R = 3 * (3e8)^40 ~ 1e340 overflows float64
    assert math.isnan(synflow(deep, (1, 3)))
    twins = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # equal codes: det K = 0
    assert math.isnan(naswot(hand_net(), twins))
    assert "naswot proxy is not finite (-inf)" in caplog.text
    record = proxy_record({"proxy_grad_norm": math.nan, "seconds_grad_norm": 0.5, "proxy_naswot": 1.25})
    assert record == {"proxy_grad_norm": None, "proxy_grad_norm_missing": NONFINITE_REASONS["grad_norm"],
                      "seconds_grad_norm": 0.5, "proxy_naswot": 1.25}


# ----------------------------------------------------------------------------- errors
def test_errors():
    net = hand_net()
    x, y = torch.eye(3), torch.tensor([0, 1, 0])
    with pytest.raises(TypeError, match=r"grad_norm: model must be a torch.nn.Module, got str"):
        grad_norm("net", x, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="synflow: the model has no parameters"):
        synflow(nn.ReLU(), (1, 3))
    with pytest.raises(ValueError, match="grad_norm: the model has no Conv1d/Conv2d/Conv3d/Linear weights"):
        grad_norm(nn.Sequential(nn.BatchNorm1d(3)), x, y)
    with pytest.raises(ValueError, match="bn must be one of 'batch', 'running', got 'train'"):
        grad_norm(net, x, y, bn="train")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"grad_norm: y must be an int64 tensor of class labels, got torch.float32"):
        grad_norm(net, x, y.float())
    with pytest.raises(ValueError, match=r"grad_norm: y must have shape \(3,\) to match x, got \(2,\)"):
        grad_norm(net, x, y[:2])
    with pytest.raises(TypeError, match=r"naswot: x must be a torch.Tensor batch, got list"):
        naswot(net, [[1.0, 2.0, 3.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"naswot: x must be a floating-point batch .* got dtype torch.int64"):
        naswot(net, x.long())
    with pytest.raises(ValueError, match="naswot needs a batch of at least 2 samples, got 1"):
        naswot(net, x[:1])
    with pytest.raises(ValueError, match=r"naswot: Sequential has no nn.ReLU module"):
        naswot(nn.Sequential(nn.Linear(3, 2)), x)
    with pytest.raises(ValueError, match=r"naswot: none of the 1 nn.ReLU modules of _Unused ran"):
        naswot(_Unused(), x)
    with pytest.raises(TypeError, match="synflow: x_shape must be a batch shape of ints"):
        synflow(net, (1, 3.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"synflow: x_shape must be a batch shape \(N, ...\) .* got \(3,\)"):
        synflow(net, (3,))
    with pytest.raises(ValueError, match=r"got \(0, 3\)"):
        synflow(net, (0, 3))
    with pytest.raises(TypeError, match=r"compute_proxies: x must be a torch.Tensor batch, got NoneType"):
        compute_proxies(net, None, y)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a ProxyConfig, got dict"):
        compute_proxies(net, x, y, config={"bn": "batch"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ProxyConfig.proxies must be distinct names from grad_norm"):
        ProxyConfig(proxies=("grad_norm", "snip"))
    with pytest.raises(ValueError, match="distinct"):
        ProxyConfig(proxies=("naswot", "naswot"))
    with pytest.raises(TypeError, match=r"ProxyConfig.proxies must be a tuple of names, got 'naswot'"):
        ProxyConfig(proxies="naswot")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bn must be one of"):
        ProxyConfig(bn="eval")  # type: ignore[arg-type]


class _Unused(nn.Module):
    """A ReLU module that the forward never calls (it uses the functional form)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (device check of the proxies)")
@pytest.mark.gpu
def test_device_mismatch_and_cuda_path():
    model = warm(tiny())
    x, y = batch()
    with pytest.raises(ValueError, match="x is on cuda:0 but the model's parameters are on cpu"):
        grad_norm(model, x.cuda(), y.cuda())
    cpu = compute_proxies(model, x, y)
    with _no_tf32():  # cuDNN convolutions default to TF32 (about 1e-3 relative): compare in true float32
        gpu = compute_proxies(model.cuda(), x.cuda(), y.cuda())
    for p in PROXIES:
        assert gpu[f"proxy_{p}"] == pytest.approx(cpu[f"proxy_{p}"], rel=1e-4)

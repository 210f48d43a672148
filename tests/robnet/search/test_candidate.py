"""robnet.search.candidate: BatchNorm recalibration, accuracy on fixed batches, parameter and FLOP counts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robnet.search.candidate import accuracy, count_flops, count_params, recalibrate_bn


def _batches(n_batches: int = 3, batch: int = 4, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.rand(batch, 1, 6, 6, generator=gen), torch.randint(0, 2, (batch,), generator=gen))
            for _ in range(n_batches)]


class TwoBN(nn.Module):
    """conv -> BN(affine) -> ReLU -> conv -> BN(affine=False) -> pool -> linear: the second BN's input
    depends on the first BN's batch statistics, as in a RobNet cell."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3, momentum=0.3)
        self.conv2 = nn.Conv2d(3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2, affine=False)
        self.fc = nn.Linear(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.bn1(self.conv1(x))))
        return self.fc(self.bn2(h).mean((2, 3)))


def _model() -> TwoBN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TwoBN()
    with torch.no_grad():
        model.bn1.weight.uniform_(0.5, 1.5)
        model.bn1.bias.uniform_(-0.5, 0.5)
        for bn in (model.bn1, model.bn2):  # statistics inherited from "other architectures"
            bn.running_mean.fill_(7.0)
            bn.running_var.fill_(9.0)
            bn.num_batches_tracked.fill_(1000)
    return model


def _hand_statistics(model: TwoBN, batches, k: int) -> dict[str, torch.Tensor]:
    """Per batch: the BN inputs' channel mean and unbiased variance under batch statistics; the
    expected running buffers are their plain averages over the first ``k`` batches."""
    m1, v1, m2, v2 = [], [], [], []
    with torch.no_grad():
        for x, _ in batches[:k]:
            z1 = model.conv1(x)  # (N, 3, 6, 6)
            mean1, var1 = z1.mean((0, 2, 3)), z1.var((0, 2, 3), unbiased=False)
            a1 = (z1 - mean1[:, None, None]) / torch.sqrt(var1[:, None, None] + model.bn1.eps)
            a1 = a1 * model.bn1.weight[:, None, None] + model.bn1.bias[:, None, None]
            z2 = model.conv2(F.relu(a1))  # (N, 2, 6, 6)
            m1.append(mean1)
            v1.append(z1.var((0, 2, 3), unbiased=True))
            m2.append(z2.mean((0, 2, 3)))
            v2.append(z2.var((0, 2, 3), unbiased=True))
    return {"bn1.running_mean": torch.stack(m1).mean(0), "bn1.running_var": torch.stack(v1).mean(0),
            "bn2.running_mean": torch.stack(m2).mean(0), "bn2.running_var": torch.stack(v2).mean(0)}


@pytest.mark.parametrize("start_training", [False, True])
def test_recalibrate_bn_is_the_plain_average_of_the_batch_statistics(start_training):
    model = _model()
    model.train(start_training)
    weights = {k: v.clone() for k, v in model.named_parameters()}
    batches = _batches(3)
    assert recalibrate_bn(model, batches, max_batches=2) == 2
    state = model.state_dict()
    for key, expected in _hand_statistics(model, batches, 2).items():
        torch.testing.assert_close(state[key], expected, rtol=1e-5, atol=1e-6)
    assert int(model.bn1.num_batches_tracked) == int(model.bn2.num_batches_tracked) == 2
    # weights, modes and momenta as they were
    assert all(torch.equal(p, weights[k]) for k, p in model.named_parameters())
    assert all(m.training == start_training for m in model.modules())
    assert (model.bn1.momentum, model.bn2.momentum) == (0.3, 0.1)


def test_recalibrate_bn_uses_all_batches_when_there_are_fewer():
    model = _model()
    batches = _batches(2)
    assert recalibrate_bn(model, iter(batches), max_batches=10) == 2
    expected = _hand_statistics(model, batches, 2)
    torch.testing.assert_close(model.bn2.running_var, expected["bn2.running_var"], rtol=1e-5, atol=1e-6)


def test_recalibrate_bn_leaves_a_module_mode_it_found():
    model = _model()
    model.train()
    model.bn2.eval()  # a mixed mode is restored module by module
    recalibrate_bn(model, _batches(1), max_batches=1)
    assert model.training and model.bn1.training and not model.bn2.training


def test_recalibrate_bn_errors_and_no_bn():
    model = _model()
    with pytest.raises(ValueError, match="recalibrate_bn: max_batches must be >= 1, got 0"):
        recalibrate_bn(model, _batches(1), max_batches=0)
    with pytest.raises(ValueError, match="recalibrate_bn: no batches to recalibrate on"):
        recalibrate_bn(model, [], max_batches=3)
    assert model.bn1.momentum == 0.3  # restored on the error path
    plain = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    assert recalibrate_bn(plain, _batches(1), max_batches=1) == 0


def test_recalibrate_bn_restores_momentum_when_the_forward_fails():
    model = _model()
    with pytest.raises(RuntimeError):
        recalibrate_bn(model, [(torch.rand(2, 5, 6, 6), torch.zeros(2))], max_batches=1)  # 5 channels, not 1
    assert (model.bn1.momentum, model.bn2.momentum) == (0.3, 0.1) and model.training


# ----------------------------------------------------------------------------- accuracy


class ArgmaxOfInput(nn.Module):
    """Logits = the input's two features (prediction = the larger); records its mode per call."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return x * self.scale


def test_accuracy_counts_clean_and_attacked_predictions():
    model = ArgmaxOfInput()
    x1 = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    x2 = torch.tensor([[0.3, 0.7], [0.1, 0.9]])
    batches = [(x1, torch.tensor([0, 0, 0])), (x2, torch.tensor([1, 0]))]
    # clean predictions 0, 1, 0 | 1, 1 -> correct 2 + 1; the attack flips the features: 1, 0, 1 | 0, 0 -> 1 + 1
    seen_modes = []

    def flip(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen_modes.append(m.training)
        return 1 - x

    result = accuracy(model, batches, flip)
    assert result.clean_hits.tolist() == [True, False, True, True, False]
    assert result.adv_hits.tolist() == [False, True, False, False, True] and result.n == 5 and not result.adversarial
    assert (result.clean_acc, result.adv_acc) == (3 / 5, 2 / 5)
    assert seen_modes == [False, False] and set(model.modes) == {False}
    assert model.training  # restored
    same = accuracy(model, batches, lambda m, x, y: x)
    assert torch.equal(same.clean_hits, same.adv_hits) and int(same.adv_hits.sum()) == 3
    kept = accuracy(model, batches, flip, keep_adversarial=True)
    assert [torch.equal(a, 1 - x) for a, (x, _) in zip(kept.adversarial, batches, strict=True)] == [True, True]


def test_accuracy_refuses_non_finite_logits():
    model = ArgmaxOfInput()
    with torch.no_grad():
        model.scale.fill_(float("nan"))
    batch = [(torch.tensor([[0.9, 0.1]]), torch.tensor([0]))]
    with pytest.raises(ValueError, match="the candidate's logits are not finite \\(NaN/inf weights or activations\\)"):
        accuracy(model, batch, lambda m, x, y: x)
    assert model.training
    with pytest.raises(ValueError, match="accuracy: no samples to evaluate on"):
        accuracy(ArgmaxOfInput(), [], lambda m, x, y: x)


# ----------------------------------------------------------------------------- cost


def test_count_flops_and_params_by_hand():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),  # 8x8 -> 4x4: 4*4*4 outputs x 3*3*3 MACs = 1728
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),  # depthwise: 64 outputs x 9 MACs = 576
        nn.Conv2d(4, 6, 1, bias=False),  # pointwise: 6*4*4 outputs x 4 MACs = 384
        nn.BatchNorm2d(6),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 10),  # 10 outputs x 6 MACs = 60
    )
    model.train()
    assert count_flops(model, (3, 8, 8)) == 1728 + 576 + 384 + 60
    assert count_params(model) == (3 * 4 * 9 + 4) + 4 * 9 + 4 * 6 + 2 * 6 + (6 * 10 + 10)
    # no hook left behind, the mode and the BN statistics as they were
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training and int(model[4].num_batches_tracked) == 0
    # on another image size the conv counts scale with the output area (16x16 -> 8x8: 4x)
    assert count_flops(model, (3, 16, 16)) == 4 * (1728 + 576 + 384) + 60


def test_count_flops_removes_its_hooks_when_the_forward_fails():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(5, 2))
    with pytest.raises(RuntimeError):
        count_flops(model, (3, 8, 8))
    assert all(not m._forward_hooks for m in model.modules())

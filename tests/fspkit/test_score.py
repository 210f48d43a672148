import math

import pytest
import torch
from torch import nn

import robnet
from fspkit import capture_cells, fsp_distance, fsp_matrix, score
from robnet.attacks.gradient import fgsm, pgd


def tiny(seed: int = 0, **kw):
    torch.manual_seed(seed)
    return robnet.build_model("robnet_large", C=4, layers=4, **kw)


def batches(n_batches: int = 2, bs: int = 6, seed: int = 1, channels: int = 3, hw: int = 16):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(bs, channels, hw, hw, generator=g), torch.randint(0, 10, (bs,), generator=g))
            for _ in range(n_batches)]


def attack(model, x, y):
    return fgsm(model, x, y, eps=8 / 255)


def _warm_bn(model, data):
    # give BN non-trivial running statistics so eval mode differs from train mode
    model.train()
    with torch.no_grad():
        for x, _ in data:
            model(x)


def test_identity_attack_gives_zero_distance():
    model = tiny()
    report = score(model, batches(), lambda m, x, y: x.clone())
    assert len(report.cells) == 4
    assert all(c.fsp_mean == 0 and c.fsp_std == 0 for c in report.cells)
    assert report.clean_acc == report.adv_acc


def test_fused_streaming_equals_two_pass():
    model = tiny()
    data = batches(3)
    _warm_bn(model, data)
    model.eval()
    report = score(model, data, attack, attack_settings={"name": "fgsm", "eps": 8 / 255})
    # slow reference: attack, then separate clean and adversarial forwards with stored maps
    per_cell: dict[str, list[torch.Tensor]] = {}
    clean_hits = adv_hits = 0
    for x, y in data:
        x_adv = attack(model, x, y)
        with torch.no_grad(), capture_cells(model) as cap_c:
            clean_logits = model(x)
        with torch.no_grad(), capture_cells(model) as cap_a:
            adv_logits = model(x_adv)
        for (name, fi, fo), (_, ai, ao) in zip(cap_c.features, cap_a.features, strict=True):
            per_cell.setdefault(name, []).append(
                fsp_distance(fsp_matrix(fi, fo), fsp_matrix(ai, ao), reduction="none"))
        clean_hits += int((clean_logits.argmax(1) == y).sum())
        adv_hits += int((adv_logits.argmax(1) == y).sum())
    assert [c.name for c in report.cells] == list(per_cell)
    for cell in report.cells:
        d = torch.cat(per_cell[cell.name]).double()
        assert cell.fsp_mean == pytest.approx(float(d.mean()), rel=1e-5)
        assert cell.fsp_std == pytest.approx(float(d.std(unbiased=False)), rel=1e-4, abs=1e-12)
        assert cell.fsp_mean > 0
        assert cell.fsp_mean_normalized == pytest.approx(cell.fsp_mean / (cell.c_in * cell.c_out))
    assert report.n == 18
    assert report.clean_acc == clean_hits / 18 and report.adv_acc == adv_hits / 18
    assert report.attack == {"name": "fgsm", "eps": 8 / 255}


def test_cell_metadata_and_depth_order():
    report = score(tiny(), batches(1), attack)
    assert [c.name for c in report.cells] == ["cells.0", "cells.1", "cells.2", "cells.3"]
    assert [c.depth for c in report.cells] == [0, 1, 2, 3]
    # C=4, L=4: reductions at 1 and 2; input of cell k is s1 (output of cell k-1, stem for cell 0)
    assert [(c.c_in, c.c_out) for c in report.cells] == [(12, 16), (16, 32), (32, 64), (64, 64)]
    assert [c.hw for c in report.cells] == [(16, 16), (8, 8), (4, 4), (4, 4)]
    k = math.ceil(4 / 3)
    assert report.deep_mean() == pytest.approx(sum(c.fsp_mean for c in report.cells[-k:]) / k)


def test_model_scored_in_eval_mode_and_mode_restored():
    model = tiny()
    data = batches(1)
    _warm_bn(model, data)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []

    def spy(m, x, y):
        seen.append(m.training)
        return pgd(m, x, y, eps=8 / 255, step_size=2 / 255, steps=2, random_start=False)

    score(model, data, spy)
    assert seen == [False]  # attack ran in eval mode
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats untouched
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_cell_selection_and_errors():
    model = tiny()
    report = score(model, batches(1), attack, cells="cells.[2-3]")
    assert [c.name for c in report.cells] == ["cells.2", "cells.3"]
    with pytest.raises(ValueError, match=r"cells\.9"):
        score(model, batches(1), attack, cells="cells.9")
    with pytest.raises(ValueError, match="empty"):
        score(model, [], attack)


def test_works_on_a_baseline():
    torch.manual_seed(0)
    model = robnet.build_model("resnet18").eval()
    report = score(model, batches(1, bs=2, hw=16), attack)
    assert len(report.cells) == 8
    assert report.cells[0].name == "layer1.0"


# ----------------------------------------------------------------------------- scale-free FSP fields
def test_relative_distance_and_scale_equal_two_pass():
    from fspkit.fsp import fsp_relative_distance

    model = tiny()
    data = batches(2)
    _warm_bn(model, data)
    model.eval()
    report = score(model, data, attack)
    rel: dict[str, list[torch.Tensor]] = {}
    scale: dict[str, list[torch.Tensor]] = {}
    for x, y in data:
        x_adv = attack(model, x, y)
        with torch.no_grad(), capture_cells(model) as cap_c:
            model(x)
        with torch.no_grad(), capture_cells(model) as cap_a:
            model(x_adv)
        for (name, fi, fo), (_, ai, ao) in zip(cap_c.features, cap_a.features, strict=True):
            g_clean, g_adv = fsp_matrix(fi, fo), fsp_matrix(ai, ao)
            rel.setdefault(name, []).append(fsp_relative_distance(g_clean, g_adv))
            scale.setdefault(name, []).append(g_clean.square().sum(dim=(1, 2)))
    for cell in report.cells:
        r = torch.cat(rel[cell.name]).double()
        s = torch.cat(scale[cell.name]).double()
        assert cell.fsp_rel_mean == pytest.approx(float(r.mean()), rel=1e-5)
        assert cell.fsp_rel_std == pytest.approx(float(r.std(unbiased=False)), rel=1e-3, abs=1e-12)
        assert cell.scale_mean == pytest.approx(float(s.mean()), rel=1e-5)
        assert cell.fsp_rel_mean > 0 and cell.scale_mean > 0
    assert report.fsp() == [c.fsp_mean for c in report.cells]
    assert report.fsp_rel() == [c.fsp_rel_mean for c in report.cells]
    assert report.fsp_scale() == [c.scale_mean for c in report.cells]
    assert len(report.fsp_rel()) == 4


def test_relative_fields_in_dict_csv_and_table():
    report = score(tiny(), batches(1), lambda m, x, y: x.clone())
    assert report.fsp_rel() == [0.0] * 4 and report.fsp() == [0.0] * 4  # identical inputs: r = d = 0
    assert all(s > 0 for s in report.fsp_scale())
    cell = report.to_dict()["cells"][0]
    assert cell["fsp_rel_mean"] == 0.0 and cell["fsp_rel_std"] == 0.0
    assert cell["scale_mean"] == report.cells[0].scale_mean
    row = report.csv_rows()[2]
    assert list(row)[:7] == ["name", "depth", "c_in", "c_out", "hw", "fsp_mean", "fsp_std"]  # old columns first
    assert {"fsp_rel_mean", "fsp_rel_std", "scale_mean"} <= set(row)
    lines = report.table().splitlines()
    assert lines[0].split() == ["cell", "depth", "c_in", "c_out", "hw", "fsp_mean", "fsp_std", "normalized",
                                "relative", "scale"]
    assert len(lines) == 5 and all(len(line) <= 110 for line in lines)
    assert lines[1].split()[-2] == "0" and float(lines[1].split()[-1]) == pytest.approx(report.cells[0].scale_mean,
                                                                                       rel=1e-4)


def test_scaling_the_output_layer_changes_raw_not_relative_distance():
    # A cell whose output is multiplied by c (F_out -> c F_out, F_in = the image, unchanged) has
    # G -> c G on both halves: raw distance and scale grow by c^2, the relative distance does not.
    from torch import nn

    class Scaled(nn.Module):
        is_cell = True

        def __init__(self, c: float) -> None:
            super().__init__()
            self.c = c
            self.conv = nn.Conv2d(3, 5, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c * torch.relu(self.conv(x))

    class Net(nn.Module):
        def __init__(self, c: float) -> None:
            super().__init__()
            self.block = Scaled(c)
            self.head = nn.Linear(5, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.block(x).mean(dim=(2, 3)))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = Net(1.0)
    big = Net(7.0)
    big.load_state_dict(base.state_dict())
    data = batches(1, bs=4, hw=8)
    noise = torch.Generator().manual_seed(9)
    x_adv = (data[0][0] + 0.05 * torch.randn(data[0][0].shape, generator=noise)).clamp(0, 1)
    fixed = lambda m, x, y: x_adv  # noqa: E731 - the same adversarial batch for both models
    r1 = score(base, data, fixed).cells[0]
    r7 = score(big, data, fixed).cells[0]
    assert r7.fsp_mean == pytest.approx(49 * r1.fsp_mean, rel=1e-5)
    assert r7.scale_mean == pytest.approx(49 * r1.scale_mean, rel=1e-5)
    assert r7.fsp_rel_mean == pytest.approx(r1.fsp_rel_mean, rel=1e-5)
    assert r1.fsp_rel_mean > 0


# ----------------------------------------------------------------------------- attack outputs checked
@pytest.mark.parametrize(("bad", "match"), [
    (lambda m, x, y: x * float("nan"), r"batch 0: the attack returned values in \[nan, nan\]; adversarial images "
                                       r"must be finite and lie in \[0, 1\]\. Hint: clamp"),
    (lambda m, x, y: x + 0.5, r"batch 0: the attack returned values in \[0\.5\d*, 1\.\d+\]; adversarial images"),
    (lambda m, x, y: x - 2.0, r"the attack returned values in \[-1\.99\d+, -1\.00\d+\]"),
])
def test_attack_returning_nan_or_out_of_range_values_is_refused(bad, match):
    """Before: NaN images gave NaN FSP distances and out-of-range ones were scored as if valid."""
    with pytest.raises(ValueError, match=match):
        score(tiny(), batches(1), bad)


def test_attack_output_type_shape_and_clean_range_are_checked():
    model = tiny()
    with pytest.raises(TypeError, match=r"the attack must return a tensor, got tuple \(batch 0\)"):
        score(model, batches(1), lambda m, x, y: (x,))
    with pytest.raises(ValueError, match=r"attack returned shape \(5, 3, 16, 16\) for input \(6, 3, 16, 16\)"):
        score(model, batches(1), lambda m, x, y: x[:5])
    with pytest.raises(TypeError, match=r"the attack returned dtype torch\.uint8 \(batch 0\)"):
        score(model, batches(1), lambda m, x, y: (x * 255).to(torch.uint8))
    unnormalised = [(x * 2 - 1, y) for x, y in batches(1)]
    with pytest.raises(ValueError, match=r"batch 0: the images must lie in \[0, 1\] \(pixel space\), got values "
                                         r"in \[-0\.99\d+, 0\.99\d+\]\. Hint: mean/std normalization belongs "
                                         r"inside the model"):
        score(model, unnormalised, lambda m, x, y: x.clone())
    calls = []

    def late_nan(m, x, y):
        calls.append(1)
        return x.clone() if len(calls) == 1 else x * float("nan")

    with pytest.raises(ValueError, match="batch 1: the attack returned values in"):
        score(model, batches(2), late_nan)


# ----------------------------------------------------------------------------- non-finite models refused
def _broken_bn(model):
    """A damaged checkpoint: every weight finite, but one BN running_var below zero (NaN in eval mode)."""
    bn = model.stem[1]
    with torch.no_grad():
        bn.running_var[:3] = -1.0
    return model


def _propagates_nan(m, x, y):
    with torch.no_grad():
        return x + 0 * m(x).sum()  # NaN logits give NaN images


@pytest.mark.parametrize("attack_fn", [attack, lambda m, x, y: x.clone(), _propagates_nan],
                         ids=["fgsm", "identity", "nan"])
def test_model_with_non_finite_features_is_refused_in_one_line(attack_fn):
    """Before: the attack's NaN images were blamed on the attack, or the table printed nan rows."""
    model = _broken_bn(tiny()).eval()
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
    with pytest.raises(ValueError) as info:
        score(model, batches(2), attack_fn)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("the model gives non-finite values (NaN or inf) on the clean images of batch 0: ")
    assert ("the first non-finite activation is the output of 'stem.1' (BatchNorm2d), whose running_var has 3 "
            "negative entries (min -1): the square root of a negative variance is NaN. FSP distances would be NaN. "
            "Hint: the checkpoint is damaged or comes from a diverged run") in message
    if attack_fn is _propagates_nan:  # the model is named, not the attack
        assert "its logits are not finite, so the attack returned NaN" in message
    else:
        assert "its logits are not finite and the features of cells 'cells.0', 'cells.1', 'cells.2' ... (4) are" \
            in message
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


class _Ratio(nn.Module):
    """Finite on any image but an all-black one (0 / 0)."""

    is_cell = True

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x / x.mean((1, 2, 3), keepdim=True))


class _RatioNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = _Ratio()
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(x).mean((2, 3)))


def test_non_finite_values_on_a_later_batch_are_refused_at_the_end():
    torch.manual_seed(0)
    data = [*batches(1, bs=4, hw=8), (torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))]
    with pytest.raises(ValueError, match=r"^the model gives non-finite values \(NaN or inf\) on a batch after the "
                                         r"first: its logits and the features of cell 'block'\. FSP distances would "
                                         r"be NaN\. Hint: the model overflows on some inputs"):
        score(_RatioNet(), data, lambda m, x, y: x.clone())
    report = score(_RatioNet(), data[:1], lambda m, x, y: x.clone())  # the first batch alone is fine
    assert math.isfinite(report.cells[0].scale_mean)


# ----------------------------------------------------------------------------- cells="auto"
class _Block(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))) + x


class _Unflagged(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.stages = nn.Sequential(_Block(4), _Block(4), _Block(4))
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


def test_auto_cells_are_chosen_on_the_first_batch_and_recorded():
    torch.manual_seed(0)
    model = _Unflagged().eval()
    data = batches(2, bs=4, hw=8)
    wrapped_calls = []

    def progress(it):
        wrapped_calls.append(1)
        return it

    report = score(model, iter(data), attack, cells="auto", progress=progress)  # a one-shot iterator: peeked once
    assert [c.name for c in report.cells] == ["stages.0", "stages.1", "stages.2"]
    assert report.n == 8 and wrapped_calls == [1]
    choice = report.to_dict()["cell_choice"]
    assert choice["method"] == "repeated" and choice["names"] == ["stages.0", "stages.1", "stages.2"]
    assert choice["groups"][0]["reason"].startswith("3 x _Block (stages.0, stages.1, stages.2): repeated blocks in "
                                                    "Sequential stages")
    assert "(probe: (2, 4, 8, 8) -> (2, 4, 8, 8) at stages.0)" in choice["groups"][0]["reason"]  # the data's size
    same = score(model, data, attack, cells=["stages.0", "stages.1", "stages.2"])
    assert [c.fsp_mean for c in same.cells] == [c.fsp_mean for c in report.cells]
    flagged = score(tiny(), batches(1), attack, cells="auto")
    assert flagged.extra["cell_choice"]["method"] == "is_cell" and len(flagged.cells) == 4
    with pytest.raises(ValueError, match="empty"):
        score(model, [], attack, cells="auto")

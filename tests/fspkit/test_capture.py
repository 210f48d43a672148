"""Hook capture: equals the explicit forward_features path, clones, hook removal, errors, DDP."""

import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fspkit.capture import capture_cells
from fspkit.cells import find_cells, resolve_cells
from fspkit.fsp import fsp_matrix, fsp_pair_distance
from robnet.utils import unwrap_model
from tests.fspkit._cell_nets import CELL_NAMES, LAYERS, images, no_hooks, tiny_net


class Block(nn.Module):
    is_cell = True

    def __init__(self, c: int, *, relu_input: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.relu_input = relu_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu_input:
            x = F.relu_(x)  # modifies the caller's tensor in place
        return self.conv(x)


class InplaceNet(nn.Module):
    """block -> ReLU(inplace=True) -> block2; ``unused`` is flagged but never called."""

    def __init__(self, c: int = 4, *, relu_input: bool = False) -> None:
        super().__init__()
        self.block = Block(c, relu_input=relu_input)
        self.relu = nn.ReLU(inplace=True)
        self.block2 = Block(c)
        self.unused = Block(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.relu(self.block(x)))


class SuperCell(nn.Module):
    """Supernet-style cell: forward(s0, s1, genotype_cell) with a non-tensor architecture argument."""

    is_cell = True
    fsp_input_index = 1

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(c, c, 1)
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, genotype_cell: tuple[str, ...]) -> torch.Tensor:
        out = self.conv0(s0)
        if "01" in genotype_cell:
            out = out + self.conv1(s1)
        return out


class SuperNet(nn.Module):
    def __init__(self, c: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.cells = nn.ModuleList([SuperCell(c) for _ in range(3)])

    def forward(self, x: torch.Tensor, genotype: list[tuple[str, ...]], *,
                by_keyword: bool = False) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell, g in zip(self.cells, genotype, strict=True):
            out = cell(s0, s1=s1, genotype_cell=g) if by_keyword else cell(s0, s1, g)
            s0, s1 = s1, out
        return s1


@pytest.mark.parametrize("kind", ["large", "free"])
def test_capture_equals_forward_features(kind):
    model = tiny_net(kind)
    x = images()
    with torch.no_grad():
        ref = model.forward_features(x)
        plain = model(x)
        with capture_cells(model) as cap:
            out = model(x)
    assert cap.names == CELL_NAMES
    assert cap.modules == list(model.cells)
    assert torch.equal(out, plain)  # hooks change nothing
    assert [name for name, _, _ in cap.features] == CELL_NAMES
    for (_, f_in, f_out), (r_in, r_out) in zip(cap.features, ref, strict=True):
        assert torch.equal(f_in, r_in)
        assert torch.equal(f_out, r_out)
    # reduction cells halve the spatial size: the input is the s1 argument (3C or 4C channels)
    assert [tuple(f.shape) for _, f, _ in cap.features][:2] == [(2, 24, 16, 16), (2, 32, 16, 16)]
    assert cap.features[1][2].shape == (2, 64, 8, 8)
    assert cap.counts == dict.fromkeys(CELL_NAMES, 1)
    assert no_hooks(model)


def test_glob_and_name_selection_capture_only_those():
    model = tiny_net("large")
    x = images()
    with torch.no_grad():
        ref = model.forward_features(x)
        with capture_cells(model, cells="cells.[0-2]") as cap:
            model(x)
        with capture_cells(model, cells=["cells.4", "cells.0.preprocess1"]) as cap2:
            model(x)
    assert [n for n, _, _ in cap.features] == CELL_NAMES[:3]
    assert torch.equal(cap.features[2][2], ref[2][1])
    assert cap2.names == ["cells.0.preprocess1", "cells.4"]
    # a generic module's input is its first argument: preprocess1 sees the cell's s1
    name, f_in, _ = cap2.features[0]
    assert name == "cells.0.preprocess1" and torch.equal(f_in, ref[0][0])
    assert torch.equal(cap2.features[1][1], ref[4][0])


def test_selection_errors_raise_when_the_capture_is_built():
    # cells are resolved by capture_cells itself, before any hook or forward (messages: test_cells.py)
    model = tiny_net("large")
    with pytest.raises(ValueError, match=r"'cells\.99' matches no module of RobNet; did you mean 'cells"):
        capture_cells(model, cells="cells.99")
    with pytest.raises(TypeError, match="cells must be None, a glob string or a list"):
        capture_cells(model, cells=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_pair must be callable"):
        capture_cells(model, on_pair="fsp")  # type: ignore[arg-type]
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"no cell found in Sequential"):
        capture_cells(plain)
    assert no_hooks(model) and no_hooks(plain)


def test_inplace_relu_after_the_cell_does_not_change_the_capture():
    torch.manual_seed(0)
    net = InplaceNet().eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        expected = net.block(x)
        assert (expected < 0).any()
        with capture_cells(net, cells=["block", "block2"]) as cap:
            net(x)
    (n1, in1, out1), (n2, in2, _) = cap.features
    assert (n1, n2) == ("block", "block2")
    assert torch.equal(in1, x)
    assert torch.equal(out1, expected)  # negatives survive the in-place ReLU that followed
    assert torch.equal(in2, expected.relu())


def test_cell_modifying_its_input_in_place():
    torch.manual_seed(0)
    net = InplaceNet(relu_input=True).eval()
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad(), capture_cells(net, cells="block") as cap:
        net(x.clone())
    assert torch.equal(cap.features[0][1], x)  # storing mode cloned the input before the cell ran
    with pytest.raises(ValueError, match=r"'block' \(Block\) modified its input in place.*storing mode"), \
            torch.no_grad(), capture_cells(net, cells="block", on_pair=lambda *a: None):
        net(x.clone())
    assert no_hooks(net)


def test_hooks_removed_after_normal_exit_and_after_exceptions():
    model = tiny_net("large")
    with capture_cells(model) as cap:
        assert not no_hooks(model)
        assert len(model.cells[0]._forward_pre_hooks) == 1 and len(model.cells[0]._forward_hooks) == 1
        with torch.no_grad():
            model(images())
    assert no_hooks(model)
    # an exception in the block: hooks removed, the original error propagates (no never-fired error)
    with pytest.raises(RuntimeError, match="boom"), capture_cells(model):
        raise RuntimeError("boom")
    assert no_hooks(model)
    # an exception inside a cell's forward (wrong channel count) leaves nothing behind either
    with pytest.raises(RuntimeError, match="channels"), torch.no_grad(), capture_cells(model):
        model(torch.rand(1, 4, 16, 16))
    assert no_hooks(model)
    # the capture object can be reused; each with block starts afresh
    with torch.no_grad(), cap:
        model(images())
    assert len(cap.features) == LAYERS and no_hooks(model)


def test_never_fired_cell_raises_naming_it():
    net = InplaceNet().eval()
    x = torch.randn(1, 4, 6, 6)
    with pytest.raises(ValueError, match=r"cell 'unused' never ran during the capture"), capture_cells(net):
        net(x)
    assert no_hooks(net)
    with pytest.raises(ValueError, match=r"cell 'block' never ran during the capture \(nor did 'block2'\)"), \
            capture_cells(net, cells=["block", "block2"]):
        pass
    with capture_cells(net, check_fired=False) as cap:
        net(x)
    assert cap.counts == {"block": 1, "block2": 1, "unused": 0}


def test_callback_mode_streams_without_storing():
    model = tiny_net("large")
    x = torch.cat([images(3, seed=0), images(3, seed=1)])  # clean rows then "adversarial" rows
    calls: list[tuple[str, int, tuple[int, ...], tuple[int, ...]]] = []
    fused: dict[str, torch.Tensor] = {}

    def on_pair(name: str, index: int, f_in: torch.Tensor, f_out: torch.Tensor) -> None:
        assert not f_in.requires_grad and not f_out.requires_grad
        calls.append((name, index, tuple(f_in.shape), tuple(f_out.shape)))
        fused[name] = fsp_pair_distance(f_in, f_out, split=3)

    with capture_cells(model, on_pair=on_pair) as cap:
        model(x)  # with grad enabled: the maps are detached
        model(x)
    assert cap.features == []
    assert [(n, i) for n, i, _, _ in calls] == [(n, i) for i, n in enumerate(CELL_NAMES)] * 2
    assert cap.counts == dict.fromkeys(CELL_NAMES, 2)
    with torch.no_grad():
        ref = model.forward_features(x)
    for (name, _, in_shape, out_shape), (r_in, r_out) in zip(calls[:LAYERS], ref, strict=True):
        assert in_shape == tuple(r_in.shape) and out_shape == tuple(r_out.shape)
        two_pass = ((fsp_matrix(r_in[:3], r_out[:3]) - fsp_matrix(r_in[3:], r_out[3:])) ** 2).sum(dim=(1, 2))
        torch.testing.assert_close(fused[name], two_pass, rtol=1e-5, atol=1e-7)
        assert fused[name].shape == (3,) and bool((fused[name] > 0).all())


def test_supernet_style_cells_with_a_genotype_argument():
    torch.manual_seed(0)
    net = SuperNet().eval()
    x = images()
    genotype = [("01",), ("10",), ("01", "11")]
    with torch.no_grad():
        s = net.stem(x)
        c0 = net.cells[0](s, s, genotype[0])
        c1 = net.cells[1](s, c0, genotype[1])
        with capture_cells(net) as cap:
            net(x, genotype)
        with capture_cells(net, cells="cells.1") as cap_kw:
            net(x, genotype, by_keyword=True)
    assert cap.names == ["cells.0", "cells.1", "cells.2"]
    assert torch.equal(cap.features[1][1], c0)  # input = s1 (fsp_input_index = 1)
    assert torch.equal(cap.features[2][1], c1)
    assert torch.equal(cap_kw.features[0][1], c0)  # s1 passed by keyword is found via the signature


def test_model_mode_is_not_changed():
    model = tiny_net("large").train()
    model.cells[1].eval()
    modes = {n: m.training for n, m in model.named_modules()}
    with torch.no_grad(), capture_cells(model):
        model(images())
    assert {n: m.training for n, m in model.named_modules()} == modes
    model.eval()
    with torch.no_grad(), capture_cells(model, cells="cells.0"):
        model(images())
    assert not any(m.training for m in model.modules())


def test_autocast_maps_are_bf16_and_fsp_is_float32():
    model = tiny_net("large")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), capture_cells(model) as cap:
        model(images())
        g = fsp_matrix(cap.features[-1][1], cap.features[-1][2])
    assert cap.features[-1][2].dtype == torch.bfloat16
    assert g.dtype == torch.float32
    assert torch.equal(g, fsp_matrix(cap.features[-1][1].float(), cap.features[-1][2].float()))


def test_non_tensor_output_raises():
    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pair = Pair()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.pair(x)[0]

    net = Net()
    with pytest.raises(TypeError, match=r"cell 'pair' \(Pair\) returned tuple, expected a Tensor"), \
            capture_cells(net, cells="pair"):
        net(torch.zeros(1, 1, 2, 2))
    assert no_hooks(net)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_wrapped_model():
    import torch.distributed as dist

    model = tiny_net("free")
    x = images()
    with torch.no_grad(), capture_cells(model) as plain:
        model(x)
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{_free_port()}")
    try:
        ddp = nn.parallel.DistributedDataParallel(model)
        assert unwrap_model(ddp) is model
        assert [n for n, _ in find_cells(ddp)] == CELL_NAMES
        assert [n for n, _ in resolve_cells(ddp, "cells.[0-1]")] == ["cells.0", "cells.1"]
        with pytest.raises(ValueError, match=r"'module\.cells\.0' matches no module of RobNet"):
            capture_cells(ddp, cells="module.cells.0")
        with torch.no_grad(), capture_cells(ddp) as cap:
            ddp(x)
        assert cap.names == CELL_NAMES
        for (n, a_in, a_out), (m, b_in, b_out) in zip(cap.features, plain.features, strict=True):
            assert n == m and torch.equal(a_in, b_in) and torch.equal(a_out, b_out)
        assert no_hooks(ddp)
    finally:
        dist.destroy_process_group()


def test_inference_mode_storing_and_callback():
    model = tiny_net("large")
    x = images()
    seen: list[str] = []
    with torch.inference_mode():
        with capture_cells(model) as cap:
            model(x)
        with capture_cells(model, on_pair=lambda name, i, a, b: seen.append(name)):
            model(x)
        ref = model.forward_features(x)
    assert seen == CELL_NAMES
    assert all(torch.equal(a, r_out) for (_, _, a), (_, r_out) in zip(cap.features, ref, strict=True))

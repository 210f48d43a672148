"""robnet.models.supernet: weight sharing against the zoo network, skipped branches, architecture as argument."""

from __future__ import annotations

import random
import socket
from dataclasses import asdict

import pytest
import torch
from torch import nn

from robnet.attacks.gradient import pgd
from robnet.models.genotype import INPUT_EDGES, NUM_EDGES, ROBNET_LARGE, Genotype, sample
from robnet.models.network import RobNet, build_robnet
from robnet.models.supernet import FULL_GENOTYPE, SubNet, SuperCell, SuperNet, SuperNetConfig, build_supernet
from robnet.utils import eval_mode

C, LAYERS, IN_CH, SIZE = 4, 5, 3, 16  # reductions at cells 1 and 3
REDUCTIONS = (LAYERS // 3, 2 * LAYERS // 3)


def _supernet(*, cell_free: bool = False, seed: int = 0, **kw: object) -> SuperNet:
    opts: dict[str, object] = {"C": C, "layers": LAYERS, "in_channels": IN_CH, "cell_free": cell_free, **kw}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_supernet(**opts)


def _x(n: int = 4, seed: int = 1, size: int = SIZE, channels: int = IN_CH) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed))


def _genotypes(cell_free: bool, n: int = 5) -> list[Genotype]:
    rng = random.Random(1234 + cell_free)
    return [sample(rng, cell_free=cell_free, layers=LAYERS) for _ in range(n)]


# Every code on the stride-2 input edges (0, 1, 2, 3, 5, 6, 9, 10) of the reduction cells.
STRIDE2_CELL = ("10", "01", "11", "10", "00", "01", "11", "01", "10", "00", "11", "00", "01", "11")
HAND_GENOTYPES = [Genotype.shared(STRIDE2_CELL), ROBNET_LARGE]


def _used_params(sn: SuperNet, g: Genotype) -> set[int]:
    """ids of the supernet parameters ``g`` uses, from the module structure (not from key names)."""
    used = {id(p) for p in sn.parameters()}
    for i, cell in enumerate(sn.cells):
        for k, code in enumerate(g.cell(i)):
            op = cell._ops[k].op
            if code[1] == "0":
                used -= {id(p) for p in op.conv.parameters()}
            if code[0] == "0":
                used -= {id(p) for p in op.res.parameters()}
    return used


def _shapes(sd: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in sd.items()]


# ----------------------------------------------------------------------------- layout
def test_supernet_has_exactly_the_all_11_robnets_modules():
    sn = _supernet()
    full = build_robnet(FULL_GENOTYPE, C=C, layers=LAYERS, in_channels=IN_CH)
    assert _shapes(sn.state_dict()) == _shapes(full.state_dict())
    assert sum(p.numel() for p in sn.parameters()) == sum(p.numel() for p in full.parameters())
    # A trained all-'11' zoo network loads into a supernet and back (strict).
    sn.load_state_dict(full.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(sn.state_dict().values(), full.state_dict().values(), strict=True))
    assert [type(c) for c in sn.cells] == [SuperCell] * LAYERS
    assert [c.reduction for c in sn.cells] == [i in REDUCTIONS for i in range(LAYERS)]
    assert asdict(sn.config) == {"C": C, "layers": LAYERS, "num_classes": 10, "in_channels": IN_CH,
                                 "cell_free": False, "imagenet_stem": False}


# ----------------------------------------------------------------------------- weight sharing
def _edge_modules_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def _check_inherited_by_module(sn: SuperNet, net: RobNet, g: Genotype) -> None:
    """Independent of the key mapping: compare modules edge by edge."""
    assert _edge_modules_equal(sn.stem, net.stem) and _edge_modules_equal(sn.classifier, net.classifier)
    for i, (scell, cell) in enumerate(zip(sn.cells, net.cells, strict=True)):
        assert _edge_modules_equal(scell.preprocess0, cell.preprocess0)
        assert _edge_modules_equal(scell.preprocess1, cell.preprocess1)
        for k, code in enumerate(g.cell(i)):
            both, op = scell._ops[k].op, cell._ops[k].op
            if code == "01":
                assert _edge_modules_equal(both.conv, op)
            elif code == "10":
                assert _edge_modules_equal(both.res, op)  # Identity (no state) or FactorizedReduce
            elif code == "11":
                assert _edge_modules_equal(both.conv, op.conv) and _edge_modules_equal(both.res, op.res)


@pytest.mark.parametrize("cell_free", [False, True])
def test_supernet_equals_extracted_network(cell_free):
    sn = _supernet(cell_free=cell_free)
    x = _x()
    genotypes = _genotypes(cell_free) + ([] if cell_free else HAND_GENOTYPES)
    if cell_free:
        genotypes.append(Genotype.free([STRIDE2_CELL] * LAYERS))
    for g in genotypes:
        net = sn.extract(g)
        ref = build_robnet(g, C=C, layers=LAYERS, in_channels=IN_CH)
        assert isinstance(net, RobNet) and net.genotype == g
        assert _shapes(net.state_dict()) == _shapes(ref.state_dict())  # same keys, order and shapes
        _check_inherited_by_module(sn, net, g)
        inherited, extracted = sn.inherited_state_dict(g), net.state_dict()
        assert list(inherited) == list(extracted)
        assert all(torch.equal(v, extracted[k]) for k, v in inherited.items())
        with eval_mode(sn), eval_mode(net):
            a, b = sn(x, g), net(x)
        assert a.shape == (4, 10)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_every_edge_code_on_stride2_edges_is_covered():
    g = HAND_GENOTYPES[0]
    codes = {g.cell(REDUCTIONS[0])[k] for k in INPUT_EDGES}
    assert codes == {"00", "01", "10", "11"}


def test_train_mode_matches_too_and_updates_only_used_bn_statistics():
    sn = _supernet()
    g = HAND_GENOTYPES[0]
    net = sn.extract(g)
    assert net.training
    x = _x()
    torch.testing.assert_close(sn(x, g), net(x), rtol=0, atol=1e-6)  # batch statistics
    # Both updated their running statistics the same way; the skipped branches' stayed untouched.
    inherited = sn.inherited_state_dict(g)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(inherited[k], v, rtol=0, atol=1e-6)
    cell = sn.cells[REDUCTIONS[0]]
    unused_conv_bn = cell._ops[0].op.conv.op[3]  # edge 0 is '10': its sep-conv never ran
    assert int(unused_conv_bn.num_batches_tracked) == 0 and torch.all(unused_conv_bn.running_mean == 0)
    used_conv_bn = cell._ops[1].op.conv.op[3]
    assert int(used_conv_bn.num_batches_tracked) == 1


def test_extract_copies_weights_and_keeps_device_state():
    sn = _supernet()
    g = ROBNET_LARGE
    rng_before = torch.get_rng_state()
    net = sn.extract(g)
    assert torch.equal(torch.get_rng_state(), rng_before)  # built on the meta device: no RNG draw
    with torch.no_grad():
        net.stem[0].weight.add_(1.0)
        net.cells[0]._ops[1].op.conv.op[1].weight.zero_()
    assert not torch.equal(net.stem[0].weight, sn.stem[0].weight)
    assert not torch.equal(net.cells[0]._ops[1].op.conv.op[1].weight, sn.cells[0]._ops[1].op.conv.op[1].weight)
    sn.eval()
    assert not sn.extract(g).training


def test_extract_follows_dtype_and_channels_last():
    sn = _supernet().double().to(memory_format=torch.channels_last).eval()
    g = _genotypes(False, 1)[0]
    net = sn.extract(g)
    assert net.stem[0].weight.dtype == torch.float64
    assert net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = _x().double().to(memory_format=torch.channels_last)
    torch.testing.assert_close(sn(x, g), net(x), rtol=0, atol=1e-12)


def test_cell_free_supernet_accepts_a_shared_genotype():
    sn = _supernet(cell_free=True).eval()
    shared = ROBNET_LARGE
    repeated = Genotype.free([shared.cells[0]] * LAYERS)
    x = _x()
    assert torch.equal(sn(x, shared), sn(x, repeated))
    net = sn.extract(shared)
    assert net.genotype == shared and _shapes(net.state_dict()) == _shapes(sn.extract(repeated).state_dict())
    torch.testing.assert_close(sn(x, shared), net.eval()(x), rtol=0, atol=1e-6)


def test_genotype_forms_string_and_official_lists():
    sn = _supernet().eval()
    x = _x()
    ref = sn(x, ROBNET_LARGE)
    assert torch.equal(sn(x, str(ROBNET_LARGE)), ref)
    assert torch.equal(sn(x, ROBNET_LARGE.to_official()), ref)


def test_imagenet_stem_layout_and_equivalence():
    sn = _supernet(imagenet_stem=True, layers=3).eval()
    g = ROBNET_LARGE
    ref = build_robnet(g, C=C, layers=3, in_channels=IN_CH, imagenet_stem=True)
    net = sn.extract(g)
    assert _shapes(net.state_dict()) == _shapes(ref.state_dict())
    x = _x(2, size=224)  # three stride-2 stem convs and two reductions: 7x7 before AvgPool(7)
    torch.testing.assert_close(sn(x, g), net(x), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- skipping
def test_skipped_branches_get_no_gradient():
    sn = _supernet()
    g = HAND_GENOTYPES[0]
    sn(_x(), g).logsumexp(1).sum().backward()
    for i, cell in enumerate(sn.cells):
        stride2 = cell.reduction
        for k, code in enumerate(g.cell(i)):
            op = cell._ops[k].op
            conv_grads = [p.grad is not None for p in op.conv.parameters()]
            res_grads = [p.grad is not None for p in op.res.parameters()]  # empty for Identity
            assert conv_grads == [code[1] == "1"] * len(conv_grads), (i, k, code)
            assert res_grads == [code[0] == "1"] * len(res_grads), (i, k, code)
            assert len(res_grads) == (2 if stride2 and k in INPUT_EDGES else 0)
    used = _used_params(sn, g)
    assert 0 < len(used) < len(list(sn.parameters()))
    for name, p in sn.named_parameters():
        assert (p.grad is not None) == (id(p) in used), name


def test_zero_edges_are_not_called():
    sn = _supernet()
    calls: list[str] = []
    for name, m in sn.named_modules():
        if name.endswith(".op.conv") or name.endswith(".op.res"):
            m.register_forward_hook(lambda mod, a, out, name=name: calls.append(name))
    g = Genotype.shared(("01",) + ("10",) * (NUM_EDGES - 1))
    sn(_x(), g)
    per_cell = [c for c in calls if c.startswith("cells.0.")]
    # Edge 0 runs its sep-conv only; every other edge its identity (stride 1: the Identity module).
    assert per_cell == ["cells.0._ops.0.op.conv"] + [f"cells.0._ops.{k}.op.res" for k in range(1, NUM_EDGES)]


# ----------------------------------------------------------------------------- no hidden state
def test_architecture_is_an_argument_not_state():
    sn = _supernet().eval()
    x = _x()
    g1, g2 = _genotypes(False, 2)
    alone1 = sn(x, g1)
    alone2 = sn(x, g2)
    b1, b2 = sn.bind(g1), sn.bind(g2)
    interleaved = [sn(x, g1), b2(x), sn(x, g2), b1(x), sn(x, g1)]
    assert torch.equal(interleaved[0], alone1) and torch.equal(interleaved[3], alone1)
    assert torch.equal(interleaved[4], alone1)
    assert torch.equal(interleaved[1], alone2) and torch.equal(interleaved[2], alone2)
    assert not torch.equal(alone1, alone2)


# ----------------------------------------------------------------------------- bind
def test_bind_shares_parameters_and_names():
    sn = _supernet()
    b = sn.bind(str(ROBNET_LARGE))
    assert isinstance(b, SubNet) and b.supernet is sn and b.genotype == ROBNET_LARGE
    assert [id(p) for p in b.parameters()] == [id(p) for p in sn.parameters()]
    assert list(b.state_dict()) == list(sn.state_dict())
    assert f"genotype={ROBNET_LARGE}" in repr(b)
    with torch.no_grad():
        sn.classifier.bias.fill_(3.0)
    assert torch.equal(b.classifier.bias, sn.classifier.bias)
    b.eval()
    assert not any(m.training for m in sn.cells.modules())  # the children are the supernet's
    sn.train()
    sn.cells[0].eval()  # a per-module mode set by the caller
    b2 = sn.bind(ROBNET_LARGE)
    assert b2.training and not sn.cells[0].training and sn.cells[1].training  # binding changes no mode


def test_bind_works_with_pgd():
    sn = _supernet().eval()
    g = HAND_GENOTYPES[0]
    b = sn.bind(g)
    net = sn.extract(g)
    x = _x(6)
    y = torch.arange(6) % 10
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(3)).mul_(2).sub_(1)
    adv_b = pgd(b, x, y, eps=8 / 255, step_size=2 / 255, steps=3, noise=noise)
    adv_n = pgd(net, x, y, eps=8 / 255, step_size=2 / 255, steps=3, noise=noise)
    assert torch.equal(adv_b, adv_n)
    assert (adv_b - x).abs().max() <= 8 / 255 + 1e-6 and not torch.equal(adv_b, x)
    assert all(p.grad is None and p.requires_grad for p in sn.parameters())
    assert not sn.training and not any(m.training for m in sn.modules())


def test_fspkit_capture_on_bound_subnet_matches_the_extracted_network():
    from fspkit.capture import capture_cells
    from fspkit.cells import find_cells

    sn = _supernet(cell_free=True).eval()
    g = _genotypes(True, 1)[0]
    b, net = sn.bind(g), sn.extract(g)
    assert [n for n, _ in find_cells(b)] == [f"cells.{i}" for i in range(LAYERS)]
    x = _x()
    with torch.no_grad(), capture_cells(b) as cap_b:
        b(x)
    with torch.no_grad(), capture_cells(net) as cap_n:
        net(x)
    assert len(cap_b.features) == LAYERS
    for (n1, in1, out1), (n2, in2, out2), (s1, _) in zip(cap_b.features, cap_n.features,
                                                           net.forward_features(x), strict=True):
        assert n1 == n2
        assert in1.shape == s1.shape and torch.equal(in1, s1.detach())  # FSP input = the s1 argument
        torch.testing.assert_close(in1, in2, rtol=0, atol=1e-6)
        torch.testing.assert_close(out1, out2, rtol=0, atol=1e-6)


def test_bn_recalibration_on_bound_subnet_equals_on_extracted():
    from robnet.search.candidate import recalibrate_bn

    sn = _supernet()
    g = HAND_GENOTYPES[0]
    net = sn.extract(g)
    batches = [(_x(4, seed=s), torch.zeros(4, dtype=torch.long)) for s in range(3)]
    b = sn.bind(g)
    assert recalibrate_bn(b, batches, max_batches=2) == 2
    assert recalibrate_bn(net, batches, max_batches=2) == 2
    inherited = sn.inherited_state_dict(g)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(inherited[k], v, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- DDP / training
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_passes_the_genotype_and_finds_unused_parameters():
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.fail("a process group is already initialised by another test; this test needs its own")
    ref = _supernet()
    sn = _supernet()
    g1, g2 = _genotypes(False, 2)
    x = _x()
    dist.init_process_group("gloo", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{_free_port()}")
    try:
        ddp = nn.parallel.DistributedDataParallel(sn, find_unused_parameters=True)
        for g in (g1, g2):  # a different set of used parameters each step
            sn.zero_grad(set_to_none=True)
            ref.zero_grad(set_to_none=True)
            ddp(x, g).logsumexp(1).sum().backward()
            ref(x, g).logsumexp(1).sum().backward()
            for (name, p), q in zip(sn.named_parameters(), ref.parameters(), strict=True):
                if q.grad is None:
                    # DDP with find_unused_parameters leaves unused gradients untouched (None).
                    assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
                else:
                    torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-6)
    finally:
        dist.destroy_process_group()


def test_sgd_step_moves_only_used_parameters():
    sn = _supernet()
    g = HAND_GENOTYPES[0]
    before = {k: v.clone() for k, v in sn.state_dict().items()}
    opt = torch.optim.SGD(sn.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(sn(_x(), g), torch.arange(4)).backward()
    opt.step()
    used = _used_params(sn, g)
    for name, p in sn.named_parameters():
        assert torch.equal(p, before[name]) == (id(p) not in used), name


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("kwargs", "err", "match"), [
    ({"C": 5, "layers": 3}, ValueError, r"C must be even .*got 5\. Hint: use C=6"),
    ({"C": 0, "layers": 3}, ValueError, r"C must be >= 2, got 0"),
    ({"C": 4.0, "layers": 3}, TypeError, r"C must be an int, got float 4\.0"),
    ({"C": True, "layers": 3}, TypeError, r"C must be an int, got bool"),
    ({"C": 4, "layers": 0}, ValueError, r"layers must be >= 1, got 0"),
    ({"C": 4, "layers": 3, "num_classes": 0}, ValueError, r"num_classes must be >= 1, got 0"),
    ({"C": 4, "layers": 3, "in_channels": 0}, ValueError, r"in_channels must be >= 1, got 0"),
    ({"C": 4, "layers": 3, "cell_free": 1}, TypeError, r"cell_free must be a bool, got int 1"),
    ({"C": 4, "layers": 3, "imagenet_stem": "no"}, TypeError, r"imagenet_stem must be a bool, got str"),
])
def test_bad_config(kwargs, err, match):
    with pytest.raises(err, match=match):
        build_supernet(**kwargs)
    with pytest.raises(err, match=match):
        SuperNetConfig(**kwargs)


def test_supernet_needs_a_config():
    with pytest.raises(TypeError, match=r"config must be a SuperNetConfig, got dict.*build_supernet"):
        SuperNet({"C": 4, "layers": 3})


def test_genotype_errors():
    sn = _supernet()
    free = _supernet(cell_free=True)
    x = _x(2)
    g_free = Genotype.free([ROBNET_LARGE.cells[0]] * LAYERS)
    with pytest.raises(ValueError, match=r"cell-based and takes a shared genotype.*got a cell-free genotype of 5 "
                                         r"cells.*cell_free=True"):
        sn(x, g_free)
    with pytest.raises(ValueError, match=r"cell-based"):
        sn.extract(g_free)
    with pytest.raises(ValueError, match=r"cell-based"):
        sn.bind(g_free)
    with pytest.raises(ValueError, match=r"cell-free genotype has 3 cells, expected 5"):
        free(x, Genotype.free([ROBNET_LARGE.cells[0]] * 3))
    with pytest.raises(TypeError, match=r"genotype must be a Genotype, its string form .*got int.*sample"):
        sn(x, 7)
    with pytest.raises(TypeError, match=r"needs the architecture.*got no genotype.*bind\(genotype\)"):
        sn(x)
    with pytest.raises(ValueError, match=r"expected 14 edge codes, got 13"):
        sn(x, " ".join(["11"] * 13))
    with pytest.raises(ValueError, match=r"bad code '12'"):
        sn(x, [["12"] + ["11"] * 13])
    with pytest.raises(ValueError, match=r"node f1 has no input"):
        sn.check_genotype("00 00 " + " ".join(["11"] * 12))


def test_cell_errors():
    sn = _supernet()
    cell = sn.cells[0]
    s = sn.stem(_x(2))
    with pytest.raises(ValueError, match=r"SuperCell: expected 14 edge codes, got 2"):
        cell(s, s, ("11", "11"))
    with pytest.raises(ValueError, match=r"SuperCell: edge 1 \(s1->f1\) has code '2'"):
        cell(s, s, ("11", "2") + ("11",) * 12)
    with pytest.raises(ValueError, match=r"SuperCell: node f2 has no input \(edges 2\.\.4 are all '00'\)"):
        cell(s, s, ("11", "11", "00", "00", "00") + ("11",) * 9)
    robnet_cell = build_robnet(ROBNET_LARGE, C=C, layers=LAYERS, in_channels=IN_CH).cells[0]
    with pytest.raises(ValueError, match=r"template cell with every edge '11', got 11 11 11 11 11 01"):
        SuperCell(robnet_cell)


# ----------------------------------------------------------------------------- CUDA
def _need_cuda(why: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip(f"needs CUDA: {why}")


@pytest.mark.gpu
def test_cuda_channels_last_supernet_equals_extracted_and_trains_with_bf16():
    _need_cuda("checks the supernet against the extracted network on the GPU (channels_last, bf16)")
    sn = _supernet().cuda().to(memory_format=torch.channels_last)
    x = _x(8).cuda().contiguous(memory_format=torch.channels_last)
    for g in [*_genotypes(False, 3), *HAND_GENOTYPES]:
        net = sn.extract(g)
        assert net.stem[0].weight.is_cuda and net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
        with eval_mode(sn), eval_mode(net):
            torch.testing.assert_close(sn(x, g), net(x), rtol=1e-4, atol=1e-5)
    g = HAND_GENOTYPES[0]
    y = torch.arange(8, device="cuda") % 10
    with torch.autocast("cuda", dtype=torch.bfloat16):
        x_adv = pgd(sn.bind(g), x, y, eps=8 / 255, step_size=2 / 255, steps=2)
        loss = nn.functional.cross_entropy(sn(x_adv, g).float(), y)
    loss.backward()
    used = _used_params(sn, g)
    assert all((p.grad is not None) == (id(p) in used) for p in sn.parameters())


@pytest.mark.gpu
def test_cuda_ddp_moves_inputs_and_passes_the_genotype():
    _need_cuda("DDP with device_ids moves the forward's arguments; the genotype must pass through untouched")
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.fail("a process group is already initialised by another test; this test needs its own")
    sn = _supernet().cuda()
    ref = _supernet().cuda()
    g = ROBNET_LARGE
    x = _x()  # on the CPU: DDP with device_ids moves it
    dist.init_process_group("nccl", rank=0, world_size=1, init_method=f"tcp://127.0.0.1:{_free_port()}")
    try:
        ddp = nn.parallel.DistributedDataParallel(sn, device_ids=[torch.cuda.current_device()],
                                                  find_unused_parameters=True)
        for genotype in (g, str(g), g.to_official()):
            out = ddp(x, genotype)
            assert out.is_cuda
            torch.testing.assert_close(out, ref(x.cuda(), g), rtol=1e-4, atol=1e-5)
            out.sum().backward()
    finally:
        dist.destroy_process_group()

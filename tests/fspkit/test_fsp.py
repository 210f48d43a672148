"""FSP math: hand-computed G, einsum vs loops, bilinearity, pooling rule, fused pair distance, dtypes,
the scale-free relative distance."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fspkit.fsp import (
    align_spatial,
    fsp_distance,
    fsp_matrix,
    fsp_pair_distance,
    fsp_pair_terms,
    fsp_relative_distance,
)


def _hand_maps() -> tuple[torch.Tensor, torch.Tensor]:
    f_in = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]],
                          [[0.0, 1.0], [1.0, 0.0]]]])  # (1, 2, 2, 2)
    f_out = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]],
                           [[2.0, 2.0], [2.0, 2.0]],
                           [[1.0, -1.0], [0.0, 2.0]]]])  # (1, 3, 2, 2)
    return f_in, f_out


def _loop_fsp(f_in: torch.Tensor, f_out: torch.Tensor) -> torch.Tensor:
    """Reference: explicit sums over samples, channels and positions, in float64."""
    n, m, h, w = f_in.shape
    k = f_out.shape[1]
    g = torch.zeros(n, m, k, dtype=torch.float64)
    for i in range(n):
        for a in range(m):
            for b in range(k):
                total = 0.0
                for s in range(h):
                    for t in range(w):
                        total += float(f_in[i, a, s, t]) * float(f_out[i, b, s, t])
                g[i, a, b] = total / (h * w)
    return g


def test_hand_computed_matrix():
    f_in, f_out = _hand_maps()
    # G[a, b] = mean over the 4 positions of in_a * out_b, worked out by hand:
    # in0 = (1,2,3,4), in1 = (0,1,1,0); out0 = (1,0,0,1), out1 = (2,2,2,2), out2 = (1,-1,0,2)
    expected = torch.tensor([[[5 / 4, 20 / 4, 7 / 4],
                              [0 / 4, 4 / 4, -1 / 4]]])
    g = fsp_matrix(f_in, f_out)
    assert g.shape == (1, 2, 3)
    assert g.dtype == torch.float32
    assert torch.equal(g, expected)


def test_hand_computed_distance():
    f_in, f_out = _hand_maps()
    g = fsp_matrix(f_in, f_out)
    g2 = fsp_matrix(f_in, 2 * f_out)  # G doubles: the distance is ||G||_F^2
    sq = (1.25**2 + 5**2 + 1.75**2 + 0 + 1 + 0.25**2)
    assert fsp_distance(g, g2).item() == pytest.approx(sq)
    assert fsp_distance(g, g2, normalize=True).item() == pytest.approx(sq / 6)


def test_einsum_matches_loop_reference():
    gen = torch.Generator().manual_seed(0)
    f_in = torch.randn(3, 4, 5, 6, generator=gen)
    f_out = torch.randn(3, 7, 5, 6, generator=gen)
    g = fsp_matrix(f_in, f_out)
    torch.testing.assert_close(g.double(), _loop_fsp(f_in, f_out), rtol=1e-5, atol=1e-6)


def _maps(draw: st.DrawFn, n: int, c: int, h: int, w: int) -> torch.Tensor:
    a = draw(arrays(np.float64, (n, c, h, w), elements=st.floats(-10, 10, allow_nan=False, width=32)))
    return torch.from_numpy(a)


@st.composite
def _bilinear_case(draw: st.DrawFn) -> tuple[torch.Tensor, ...]:
    n, m, k = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    # the output may be spatially smaller (a reduction cell): pooling is linear too
    h2, w2 = draw(st.sampled_from([(h, w), (max(1, h // 2), max(1, w // 2))]))
    f1, f2 = _maps(draw, n, m, h, w), _maps(draw, n, m, h, w)
    g = _maps(draw, n, k, h2, w2)
    a = torch.tensor(draw(st.floats(-5, 5, allow_nan=False)), dtype=torch.float64)
    b = torch.tensor(draw(st.floats(-5, 5, allow_nan=False)), dtype=torch.float64)
    return f1, f2, g, a, b


_HYP = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_HYP
@given(_bilinear_case())
def test_bilinear_in_both_arguments(case):
    f1, f2, g, a, b = case
    lhs = fsp_matrix(a * f1 + b * f2, g)
    rhs = a * fsp_matrix(f1, g) + b * fsp_matrix(f2, g)
    assert lhs.dtype == torch.float64
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)
    # and in the second argument (swap roles: g as the input of f1 / f2 outputs)
    lhs2 = fsp_matrix(g, a * f1 + b * f2)
    rhs2 = a * fsp_matrix(g, f1) + b * fsp_matrix(g, f2)
    torch.testing.assert_close(lhs2, rhs2, rtol=1e-9, atol=1e-9)


@_HYP
@given(_bilinear_case())
def test_distance_to_itself_is_zero_and_symmetric(case):
    f1, f2, g, _, _ = case
    ga, gb = fsp_matrix(f1, g), fsp_matrix(f2, g)
    assert torch.equal(fsp_distance(ga, ga, reduction="none"), torch.zeros(ga.shape[0], dtype=torch.float64))
    d_ab = fsp_distance(ga, gb, reduction="none")
    assert torch.equal(d_ab, fsp_distance(gb, ga, reduction="none"))
    assert bool((d_ab >= 0).all())


def test_average_pool_rule_for_mismatched_sizes():
    gen = torch.Generator().manual_seed(1)
    f_in = torch.randn(2, 3, 8, 8, generator=gen)
    f_out = torch.randn(2, 5, 4, 4, generator=gen)
    # explicit 2x2 mean pooling of the larger map
    pooled = f_in.reshape(2, 3, 4, 2, 4, 2).mean(dim=(3, 5))
    expected = _loop_fsp(pooled, f_out)
    g = fsp_matrix(f_in, f_out)
    torch.testing.assert_close(g.double(), expected, rtol=1e-5, atol=1e-6)
    # max pooling gives a different G: the two rules must never be mixed
    g_max = fsp_matrix(F.max_pool2d(f_in, 2), f_out)
    assert (g - g_max).abs().max() > 0.1
    # the rule is symmetric: a larger output map is pooled to the input's size
    g_t = fsp_matrix(f_out, f_in)
    torch.testing.assert_close(g_t, g.transpose(1, 2), rtol=1e-5, atol=1e-6)


def test_strided_alignment_subsamples_and_unknown_pooling_is_refused():
    f_in = torch.randn(2, 3, 8, 8)
    f_out = torch.randn(2, 5, 4, 4)
    a, b = align_spatial(f_in, f_out, pooling="stride")
    assert torch.equal(a, f_in[:, :, ::2, ::2]) and b is f_out
    avg, _ = align_spatial(f_in, f_out)
    assert not torch.equal(a, avg)
    with pytest.raises(ValueError, match="pooling must be one of 'avg', 'stride', got 'max'"):
        align_spatial(f_in, f_out, pooling="max")


def test_align_spatial_pools_each_dimension_to_the_minimum():
    f_in = torch.arange(2 * 8 * 2, dtype=torch.float32).reshape(1, 2, 8, 2)
    f_out = torch.ones(1, 1, 4, 4)
    a, b = align_spatial(f_in, f_out)
    assert a.shape == (1, 2, 4, 2)
    assert b.shape == (1, 1, 4, 2)
    assert torch.equal(a, f_in.reshape(1, 2, 4, 2, 2).mean(dim=3))
    assert torch.equal(b, torch.ones(1, 1, 4, 2))
    same_in, same_out = align_spatial(f_out, f_out)
    assert same_in is f_out and same_out is f_out


def test_pair_distance_equals_two_pass():
    gen = torch.Generator().manual_seed(2)
    n = 5
    f_in = torch.randn(2 * n, 4, 8, 8, generator=gen)
    f_out = torch.randn(2 * n, 6, 4, 4, generator=gen)
    fused = fsp_pair_distance(f_in, f_out, split=n)
    g_clean, g_adv = fsp_matrix(f_in[:n], f_out[:n]), fsp_matrix(f_in[n:], f_out[n:])
    two_pass = fsp_distance(g_clean, g_adv, reduction="none")
    assert fused.shape == (n,)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, two_pass, rtol=1e-5, atol=1e-6)
    normed = fsp_pair_distance(f_in, f_out, split=n, normalize=True)
    torch.testing.assert_close(normed, two_pass / (4 * 6), rtol=1e-5, atol=1e-7)
    # the loss L is the mean of the per-sample distances
    loss = fsp_distance(fsp_matrix(f_in[:n], f_out[:n]), fsp_matrix(f_in[n:], f_out[n:]), reduction="mean")
    torch.testing.assert_close(fused.mean(), loss)


def test_bf16_inputs_give_float32():
    gen = torch.Generator().manual_seed(3)
    f_in = torch.randn(2, 3, 4, 4, generator=gen).bfloat16()
    f_out = torch.randn(2, 5, 4, 4, generator=gen).bfloat16()
    g = fsp_matrix(f_in, f_out)
    assert g.dtype == torch.float32
    assert torch.equal(g, fsp_matrix(f_in.float(), f_out.float()))
    d = fsp_pair_distance(torch.cat([f_in, f_out[:, :3]]), torch.cat([f_out, f_out]), split=2)
    assert d.dtype == torch.float32
    assert fsp_distance(g.bfloat16(), g.bfloat16()).dtype == torch.float32
    # float64 stays float64 (float32 "or wider")
    assert fsp_matrix(f_in.double(), f_out).dtype == torch.float64


def test_float32_under_autocast():
    gen = torch.Generator().manual_seed(4)
    f_in = torch.randn(2, 3, 8, 8, generator=gen)
    f_out = torch.randn(2, 5, 4, 4, generator=gen)
    ref_g = fsp_matrix(f_in, f_out)
    ref_d = fsp_pair_distance(f_in, f_out, split=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.mm(f_in[0, :, 0], f_in[0, :, 0].T).dtype == torch.bfloat16  # autocast is on
        g = fsp_matrix(f_in, f_out)
        d = fsp_pair_distance(f_in, f_out, split=1)
        dist = fsp_distance(g, 2 * g)
    assert g.dtype == torch.float32 and d.dtype == torch.float32 and dist.dtype == torch.float32
    assert torch.equal(g, ref_g)
    assert torch.equal(d, ref_d)
    assert torch.equal(dist, fsp_distance(ref_g, 2 * ref_g))


def test_reductions():
    g_a = torch.zeros(3, 2, 2)
    g_b = torch.zeros(3, 2, 2)
    g_b[0] = 1.0  # ||.||^2 = 4
    g_b[1, 0, 0] = 2.0  # 4
    g_b[2, 1, 1] = 3.0  # 9
    assert torch.equal(fsp_distance(g_a, g_b, reduction="none"), torch.tensor([4.0, 4.0, 9.0]))
    assert fsp_distance(g_a, g_b, reduction="sum").item() == 17.0
    assert fsp_distance(g_a, g_b, reduction="mean").item() == pytest.approx(17.0 / 3)
    assert fsp_distance(g_a, g_b).item() == pytest.approx(17.0 / 3)  # default: the loss L
    normed = fsp_distance(g_a, g_b, reduction="none", normalize=True)
    assert torch.equal(normed, torch.tensor([1.0, 1.0, 2.25]))
    assert fsp_distance(g_a, g_b, reduction="sum", normalize=True).item() == pytest.approx(17.0 / 4)


def test_errors():
    x4 = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"same batch size, got 2 .* and 3"):
        fsp_matrix(x4, torch.zeros(3, 3, 4, 4))
    with pytest.raises(ValueError, match=r"f_in must be 4-D \(N, C, H, W\), got shape \(2, 3, 4\)"):
        fsp_matrix(torch.zeros(2, 3, 4), x4)
    with pytest.raises(ValueError, match=r"f_out must be 4-D"):
        fsp_matrix(x4, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="floating-point"):
        fsp_matrix(x4.long(), x4)
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        fsp_matrix(np.zeros((2, 3, 4, 4)), x4)
    with pytest.raises(ValueError, match=r"same shape, got \(2, 3, 3\) and \(2, 3, 4\)"):
        fsp_distance(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"3-D \(N, m, n\)"):
        fsp_distance(torch.zeros(3, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="reduction must be one of"):
        fsp_distance(torch.zeros(2, 3, 3), torch.zeros(2, 3, 3), reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"2 \* split = 6 rows .* got 2"):
        fsp_pair_distance(x4, x4, split=3)
    with pytest.raises(ValueError, match="split must be >= 1"):
        fsp_pair_distance(x4, x4, split=0)
    with pytest.raises(TypeError, match="split must be an int"):
        fsp_pair_distance(x4, x4, split=1.0)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- scale-free distance
_HAND_SQ = 1.25**2 + 5**2 + 1.75**2 + 0 + 1 + 0.25**2  # ||G||_F^2 of the hand maps = 30.6875


def test_pair_terms_hand_computed():
    f_in, f_out = _hand_maps()
    # clean: (f_in, f_out); adversarial: (f_in, 3 f_out) -> G_adv = 3 G, d = 4 ||G||^2
    d, sq = fsp_pair_terms(torch.cat([f_in, f_in]), torch.cat([f_out, 3 * f_out]), split=1)
    assert d.dtype == sq.dtype == torch.float32
    assert sq.tolist() == [_HAND_SQ]
    assert d.tolist() == [4 * _HAND_SQ]
    assert (d / sq).tolist() == [4.0]
    g = fsp_matrix(f_in, f_out)
    assert fsp_relative_distance(g, 3 * g).tolist() == [4.0]
    assert fsp_relative_distance(g, g).tolist() == [0.0]
    d_n, sq_n = fsp_pair_terms(torch.cat([f_in, f_in]), torch.cat([f_out, 3 * f_out]), split=1, normalize=True)
    assert sq_n.item() == pytest.approx(_HAND_SQ / 6) and d_n.item() == pytest.approx(4 * _HAND_SQ / 6)
    assert (d_n / sq_n).item() == pytest.approx(4.0)  # normalisation cancels in the ratio


def test_pair_terms_match_loop_reference():
    gen = torch.Generator().manual_seed(5)
    n = 3
    f_in = torch.randn(2 * n, 4, 6, 6, generator=gen)
    f_out = torch.randn(2 * n, 5, 3, 3, generator=gen)  # reduction-cell shape: input pooled 6x6 -> 3x3
    d, sq = fsp_pair_terms(f_in, f_out, split=n)
    pooled = f_in.reshape(2 * n, 4, 3, 2, 3, 2).mean(dim=(3, 5))
    g = _loop_fsp(pooled, f_out)  # (2N, m, n) float64, explicit loops
    d_ref = torch.tensor([float((g[i] - g[n + i]).square().sum()) for i in range(n)], dtype=torch.float64)
    sq_ref = torch.tensor([float(g[i].square().sum()) for i in range(n)], dtype=torch.float64)
    torch.testing.assert_close(d.double(), d_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sq.double(), sq_ref, rtol=1e-5, atol=1e-6)
    # the fused distance is the same tensor fsp_pair_distance returns
    assert torch.equal(d, fsp_pair_distance(f_in, f_out, split=n))
    # two-pass relative distance equals the fused ratio
    rel = fsp_relative_distance(fsp_matrix(f_in[:n], f_out[:n]), fsp_matrix(f_in[n:], f_out[n:]))
    torch.testing.assert_close(rel, d / sq, rtol=1e-5, atol=1e-7)
    mean = fsp_relative_distance(fsp_matrix(f_in[:n], f_out[:n]), fsp_matrix(f_in[n:], f_out[n:]), reduction="mean")
    torch.testing.assert_close(mean, (d / sq).mean(), rtol=1e-5, atol=1e-7)


@st.composite
def _scale_case(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, float]:
    n, m, k = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    f_in = _maps(draw, 2 * n, m, h, w)
    f_out = _maps(draw, 2 * n, k, h, w)
    c = draw(st.floats(0.01, 100) | st.floats(-100, -0.01))
    return f_in, f_out, c


@_HYP
@given(_scale_case())
def test_relative_distance_is_scale_free(case):
    f_in, f_out, c = case
    n = f_in.shape[0] // 2
    d, sq = fsp_pair_terms(f_in, f_out, split=n)
    d_c, sq_c = fsp_pair_terms(f_in, c * f_out, split=n)  # both halves' F_out scaled: G -> c G
    assert d.dtype == torch.float64
    torch.testing.assert_close(d_c, c**2 * d, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(sq_c, c**2 * sq, rtol=1e-9, atol=1e-9)
    ok = sq > 1e-12  # the ratio is only defined where the clean G is not zero
    torch.testing.assert_close((d_c / sq_c)[ok], (d / sq)[ok], rtol=1e-9, atol=1e-12)
    # distance(g, g) = 0: the adversarial half equal to the clean half
    same_in, same_out = torch.cat([f_in[:n], f_in[:n]]), torch.cat([f_out[:n], f_out[:n]])
    d0, sq0 = fsp_pair_terms(same_in, same_out, split=n)
    assert torch.equal(d0, torch.zeros(n, dtype=torch.float64))
    assert torch.equal(sq0, sq)
    assert bool((d >= 0).all()) and bool((sq >= 0).all())


def test_relative_distance_of_a_zero_reference_is_nan():
    g_a = torch.zeros(2, 2, 2)
    g_b = torch.zeros(2, 2, 2)
    g_b[1] = 1.0
    rel = fsp_relative_distance(g_a, g_b)
    assert math.isnan(rel[0].item()) and rel[1].item() == math.inf


def test_relative_distance_under_autocast_and_errors():
    gen = torch.Generator().manual_seed(6)
    g_a, g_b = torch.randn(3, 2, 4, generator=gen), torch.randn(3, 2, 4, generator=gen)
    ref = fsp_relative_distance(g_a, g_b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fsp_relative_distance(g_a.bfloat16(), g_b.bfloat16())
        d, sq = fsp_pair_terms(torch.randn(4, 3, 4, 4, generator=gen).bfloat16(),
                               torch.randn(4, 5, 4, 4, generator=gen), split=2)
    assert got.dtype == torch.float32 and d.dtype == torch.float32 and sq.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=5e-2, atol=1e-2)  # bf16 inputs, float32 math
    assert fsp_relative_distance(g_a, g_b, reduction="sum").item() == pytest.approx(float(ref.sum()))
    with pytest.raises(ValueError, match=r"same shape, got \(3, 2, 4\) and \(3, 4, 2\)"):
        fsp_relative_distance(g_a, g_b.transpose(1, 2))
    with pytest.raises(ValueError, match="reduction must be one of"):
        fsp_relative_distance(g_a, g_b, reduction="max")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="g_b must be a floating-point tensor"):
        fsp_relative_distance(g_a, g_b.long())
    with pytest.raises(ValueError, match=r"g_a must be 3-D"):
        fsp_relative_distance(g_a[0], g_b[0])
    with pytest.raises(ValueError, match=r"2 \* split = 4 rows .* got 3"):
        fsp_pair_terms(torch.zeros(3, 2, 4, 4), torch.zeros(3, 2, 4, 4), split=2)

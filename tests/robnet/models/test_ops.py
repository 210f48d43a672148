"""robnet.models.ops: the edge operations keep shapes, the denoise block's math, FactorizedReduce's sizes."""

import pytest
import torch

from robnet.models.ops import OPS, ChosenOperation, FactorizedReduce, NonLocalDenoise


@pytest.mark.parametrize("code", ["00", "01", "10", "11"])
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_builds_and_keeps_shapes(code, stride):
    op = ChosenOperation(8, stride, code)
    x = torch.rand(2, 8, 16, 16)
    out = op(x)
    assert out.shape == (2, 8, 16 // stride, 16 // stride)
    if code == "00":
        assert torch.count_nonzero(out) == 0
    if code == "10" and stride == 1:
        assert torch.equal(out, x)


def test_unknown_op_code():
    with pytest.raises(ValueError, match="unknown edge code '2'"):
        ChosenOperation(8, 1, "2")
    assert set(OPS) == {"00", "01", "10", "11"}


@pytest.mark.parametrize("mode", ["gaussian", "dot"])
def test_nonlocal_denoise_math(mode):
    torch.manual_seed(0)
    block = NonLocalDenoise(4, mode=mode).eval()
    torch.nn.init.ones_(block.bn.weight)
    x = torch.randn(2, 4, 3, 3)
    v = x.flatten(2)  # (N, C, HW)
    if mode == "gaussian":
        q = block.theta(x).flatten(2)
        k = block.phi(x).flatten(2)
        w = torch.softmax(q.transpose(1, 2) @ k / q.shape[1] ** 0.5, dim=-1)  # (N, HW, HW)
    else:
        w = v.transpose(1, 2) @ v / 9
    y = (v @ w.transpose(1, 2)).reshape(2, 4, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.bn(block.conv(y)), atol=1e-5, rtol=1e-5)


def test_factorized_reduce_needs_even_sizes():
    fr = FactorizedReduce(4, 8)
    assert fr(torch.rand(2, 4, 6, 10)).shape == (2, 8, 3, 5)
    with pytest.raises(ValueError, match=r"FactorizedReduce \(a stride-2 edge\) needs an even feature-map size, "
                                         r"got 7x8\. Hint: use inputs whose side stays even"):
        fr(torch.rand(1, 4, 7, 8))
    with pytest.raises(ValueError, match="needs an even number of output channels, got 5"):
        FactorizedReduce(4, 5)

"""avf.nn.concat: an MLP on [context, z] equals the MLP on the expanded concatenation."""

import pytest
import torch
from torch import nn

from avf.nn import ClippedLeakyReLU, linear_of_concat, mlp, mlp_of_concat
from avf.nn.concat import _leading_shape, _nothing_repeats


def expanded_cat(parts):
    lead = torch.broadcast_shapes(*(p.shape[:-1] for p in parts))
    return torch.cat([p.expand(*lead, p.shape[-1]) for p in parts], -1)


@pytest.mark.parametrize("samples", [1, 6])  # 1: the concatenation; 6: the split layer
@pytest.mark.parametrize("layers", [0, 1, 2])
def test_mlp_of_concat_matches_the_expanded_concatenation_and_its_gradients(layers, samples):
    torch.manual_seed(0)
    net = mlp(5 + 3, 7, layers, ClippedLeakyReLU).double()
    context = torch.randn(4, 5, dtype=torch.double, requires_grad=True)  # [B, C]
    z = torch.randn(samples, 4, 3, dtype=torch.double, requires_grad=True)  # [S, B, Dz]
    parts = [context, z]
    assert _nothing_repeats(parts, _leading_shape(parts)) == (samples == 1)  # the path taken
    split = mlp_of_concat(net, [context, z])
    whole = net(expanded_cat([context, z]))
    assert split.shape == whole.shape == (samples, 4, 7 if layers else 8)
    torch.testing.assert_close(split, whole)
    weights = torch.randn_like(whole)
    params = [context, z, *net.parameters()]
    grads_split = torch.autograd.grad((split * weights).sum(), params)
    grads_whole = torch.autograd.grad((whole * weights).sum(), params)
    for a, b in zip(grads_split, grads_whole, strict=True):
        torch.testing.assert_close(a, b)


def test_linear_of_concat_keeps_the_parts_order_and_a_missing_bias():
    torch.manual_seed(1)
    layer = nn.Linear(2 + 4, 3, bias=False)
    a, b = torch.randn(5, 2), torch.randn(5, 4)
    torch.testing.assert_close(linear_of_concat(layer, [a, b]), layer(torch.cat([a, b], -1)))
    assert not torch.allclose(linear_of_concat(layer, [a, b]), layer(torch.cat([b, a], -1)))


def test_linear_of_concat_names_a_width_mismatch():
    with pytest.raises(ValueError, match=r"widths \[2, 3\] add up to 5, but the layer takes 6"):
        linear_of_concat(nn.Linear(6, 3), [torch.zeros(1, 2), torch.zeros(1, 3)])

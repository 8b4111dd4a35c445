"""An MLP on a concatenation of inputs whose leading dimensions differ, without expanding them.

A decoder reads [context, z]: the context (SRNN's d_t, VRNN's h_t) has one row per sequence
[B, C], while z may carry sample dimensions [S, B, Dz] (AVF's gradients averaged over S
samples). Expanding the context to [S, B, C] and concatenating multiplies it by the first layer's
weights S times, and its backward pass does it again. Splitting the first layer's weight by
columns, W [c; z] + b = W_c c + W_z z + b, computes the context's share once and lets it
broadcast over the samples: the same function of the same parameters (equal up to the order of
floating-point sums), with the expanded copies' multiply-adds saved.

Where broadcasting repeats no part (one sample: z [1, B, Dz] beside [B, C]), one
concatenation with one matrix multiply is faster: the split's two multiplies by column slices
of the weight, and the slices' gradients scattered back into the whole weight, made SRNN's music
decoder slower forward and back on a CPU with one sample.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def linear_of_concat(layer: nn.Linear, parts: list[Tensor]) -> Tensor:
    """``layer(torch.cat(parts, -1))`` with the parts broadcast against each other instead of
    expanded where broadcasting would repeat one: each part meets only its own columns of the
    weight."""
    widths = _checked_widths(layer, parts)
    lead = _leading_shape(parts)
    if _nothing_repeats(parts, lead):  # the fast path
        return layer(_expanded_cat(parts, lead))
    return _split_linear(layer, parts, widths)


def mlp_of_concat(net: nn.Sequential, parts: list[Tensor]) -> Tensor:
    """``net(torch.cat(parts, -1))`` for an MLP from :func:`avf.nn.mlp`, its first layer applied
    by :func:`linear_of_concat`; ``parts`` may differ in leading dimensions that broadcast (one
    part [B, C], another [S, B, D])."""
    lead = _leading_shape(parts)
    if _nothing_repeats(parts, lead) or len(net) == 0 or not isinstance(net[0], nn.Linear):
        return net(_expanded_cat(parts, lead))  # nothing to save, or no first layer to split
    layers = iter(net)  # not net[1:], which builds a new Sequential at every call
    first = next(layers)
    out = _split_linear(first, parts, _checked_widths(first, parts))
    for layer in layers:
        out = layer(out)
    return out


def _checked_widths(layer: nn.Linear, parts: list[Tensor]) -> list[int]:
    widths = [part.shape[-1] for part in parts]
    if sum(widths) != layer.in_features:
        raise ValueError(f"the parts' widths {widths} add up to {sum(widths)}, but the layer "
                         f"takes {layer.in_features} inputs")
    return widths


def _split_linear(layer: nn.Linear, parts: list[Tensor], widths: list[int]) -> Tensor:
    """Σ_i W_i part_i + b, each part with its own columns W_i of the weight, broadcast."""
    out = None
    for weight, part in zip(layer.weight.split(widths, dim=1), parts, strict=True):
        term = nn.functional.linear(part, weight)
        out = term if out is None else out + term
    return out if layer.bias is None else out + layer.bias


def _expanded_cat(parts: list[Tensor], lead: list[int]) -> Tensor:
    return torch.cat([part.expand(*lead, part.shape[-1]) for part in parts], -1)


def _nothing_repeats(parts: list[Tensor], lead: list[int]) -> bool:
    """Whether broadcasting the parts to the leading shape ``lead`` repeats none of them (equal
    leading shapes, or only dimensions of size 1 added, as for one sample [1, B, D] beside
    [B, C])."""
    size = math.prod(lead)
    return all(part.shape[:-1].numel() == size for part in parts)


def _leading_shape(parts: list[Tensor]) -> list[int]:
    """The parts' leading dimensions broadcast, in plain Python: it runs at every decoder call,
    where ``torch.broadcast_shapes`` cost more than the arithmetic it decides on (shapes that
    do not broadcast fail in ``expand`` or in the sum)."""
    rank = max(part.dim() for part in parts) - 1
    lead = [1] * rank
    for part in parts:
        shape = part.shape[:-1]
        for i, size in enumerate(shape, rank - len(shape)):
            if size != 1:
                lead[i] = size
    return lead

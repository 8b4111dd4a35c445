"""Nonlinearities of the deep models, and the plain MLP stack they are used in.

The clipped leaky ReLU is the nonlinearity of the AVF paper's reference SRNN for music: the
leak keeps gradients alive for negative inputs and the clip bounds activations, which keeps a
recurrent model with Bernoulli outputs from blowing up early in training.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn


class ClippedLeakyReLU(nn.Module):
    """clamp(leaky_relu(x, slope), -bound, bound); defaults: slope 1/3, bound 3."""

    def __init__(self, negative_slope: float = 1 / 3, bound: float = 3.0) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.bound = bound

    def forward(self, x: Tensor) -> Tensor:
        y = nn.functional.leaky_relu(x, self.negative_slope)
        return y.clamp(-self.bound, self.bound)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope:.4g}, bound={self.bound:g}"


def mlp(
    in_features: int, hidden: int, layers: int, activation: Callable[[], nn.Module] = nn.ReLU
) -> nn.Sequential:
    """``layers`` × (Linear → activation) of width ``hidden``; the caller adds its own head.

    The result's ``out_features`` is its output width (``in_features`` when ``layers = 0``, the
    identity, which lets a network shrink to a linear map).
    """
    if layers < 0:
        raise ValueError(f"layers must be >= 0, got {layers}")
    blocks: list[nn.Module] = []
    for i in range(layers):
        blocks += [nn.Linear(in_features if i == 0 else hidden, hidden), activation()]
    net = nn.Sequential(*blocks)
    net.out_features = hidden if layers else in_features
    return net

"""Gated ("highway") fully connected layers: the inference networks' body."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import Tensor, nn


class HighwayLayer(nn.Module):
    """y = g ⊙ ELU(W x) + (1 − g) ⊙ P x with a learned gate g; P is a projection if sizes differ."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(in_features, out_features)
        self.skip: nn.Module = (
            nn.Identity() if in_features == out_features
            else nn.Linear(in_features, out_features, bias=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate(x))
        return g * nn.functional.elu(self.linear(x)) + (1 - g) * self.skip(x)


class HighwayMLP(nn.Sequential):
    """``layers`` highway layers of width ``hidden`` (the paper uses 2 × 1024)."""

    def __init__(self, in_features: int, hidden: int = 1024, layers: int = 2) -> None:
        if layers < 1:
            raise ValueError(f"a highway MLP needs at least one layer, got layers={layers}")
        sizes = [in_features] + [hidden] * layers
        super().__init__(*(HighwayLayer(a, b) for a, b in pairwise(sizes)))
        self.out_features = hidden

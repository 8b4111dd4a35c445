"""Reusable network blocks."""

from avf.nn.activations import ClippedLeakyReLU, mlp
from avf.nn.highway import HighwayLayer, HighwayMLP

__all__ = ["ClippedLeakyReLU", "HighwayLayer", "HighwayMLP", "mlp"]

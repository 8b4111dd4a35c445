"""Reusable network blocks."""

from avf.nn.activations import ClippedLeakyReLU, mlp
from avf.nn.concat import linear_of_concat, mlp_of_concat
from avf.nn.highway import HighwayLayer, HighwayMLP

__all__ = ["ClippedLeakyReLU", "HighwayLayer", "HighwayMLP", "linear_of_concat", "mlp",
           "mlp_of_concat"]

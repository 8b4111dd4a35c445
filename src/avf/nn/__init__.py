"""Reusable network blocks."""

from avf.nn.highway import HighwayLayer, HighwayMLP

__all__ = ["HighwayLayer", "HighwayMLP"]

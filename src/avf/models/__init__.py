"""Built-in models."""

from avf.models.growth import NonlinearGrowth
from avf.models.lgssm import LinearGaussian

__all__ = ["LinearGaussian", "NonlinearGrowth"]

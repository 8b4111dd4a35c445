"""Built-in models."""

from avf.models.lgssm import LinearGaussian

__all__ = ["LinearGaussian"]

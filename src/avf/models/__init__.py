"""Built-in models."""

from avf.models.dmm import DMM
from avf.models.growth import NonlinearGrowth
from avf.models.lgssm import LinearGaussian
from avf.models.srnn import SRNN
from avf.models.svg import SVG
from avf.models.vrnn import VRNN

__all__ = ["DMM", "SRNN", "SVG", "VRNN", "LinearGaussian", "NonlinearGrowth"]

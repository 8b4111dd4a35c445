"""Inference procedures; each works on any model that keeps the step contract."""

from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem
from avf.inference.direct import Direct
from avf.inference.gradient import GradientDescent
from avf.inference.iterative import Iterative
from avf.inference.prior import PriorOnly
from avf.inference.smc import ParticleFilterResult, particle_filter

__all__ = [
    "Direct",
    "GradientDescent",
    "InferenceProcedure",
    "InferenceResult",
    "Iterative",
    "ParticleFilterResult",
    "PriorOnly",
    "StepProblem",
    "particle_filter",
]

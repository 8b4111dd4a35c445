"""avf: amortized variational filtering for deep dynamical latent variable models."""

from avf.callbacks import BatchEnd, Callback
from avf.discretized import DiscretizedNormal, discretized
from avf.filtering import FilterOutput, backward, filter_sequences, filter_step
from avf.inference import Direct, GradientDescent, Iterative, PriorOnly
from avf.model import StepModel, sample_sequences
from avf.posteriors import DiagonalGaussian, PosteriorFamily
from avf.runs import Run, load_run
from avf.streaming import StreamingFilter, StreamStep
from avf.training import TrainConfig, Trainer
from avf.validation import NonFiniteError

__version__ = "0.1.0"

__all__ = [
    "BatchEnd",
    "Callback",
    "DiagonalGaussian",
    "Direct",
    "DiscretizedNormal",
    "FilterOutput",
    "GradientDescent",
    "Iterative",
    "NonFiniteError",
    "PosteriorFamily",
    "PriorOnly",
    "Run",
    "StepModel",
    "StreamStep",
    "StreamingFilter",
    "TrainConfig",
    "Trainer",
    "backward",
    "discretized",
    "filter_sequences",
    "filter_step",
    "load_run",
    "sample_sequences",
]

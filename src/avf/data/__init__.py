"""Data: variable-length sequence containers and data sets."""

from avf.data.batching import Sequences
from avf.data.synthetic import sample_dataset

__all__ = ["Sequences", "sample_dataset"]

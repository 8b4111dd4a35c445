"""Data: variable-length sequence containers and data sets."""

from avf.data.batching import Sequences
from avf.data.datadir import resolve_data_dir, verify
from avf.data.music import load_music, music_splits, random_crops
from avf.data.synthetic import sample_dataset

__all__ = [
    "Sequences",
    "load_music",
    "music_splits",
    "random_crops",
    "resolve_data_dir",
    "sample_dataset",
    "verify",
]

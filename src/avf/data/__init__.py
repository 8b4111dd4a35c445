"""Data: variable-length sequence containers and data sets.

The speech and video readers need optional packages (``soundfile``; ``av``) only when they
read files, so importing them here costs nothing without those extras.
"""

from avf.data.audio import (
    AudioData,
    AudioSplits,
    Standardizer,
    audio_splits,
    frame_waveform,
    load_fsdd,
    load_timit,
    load_wav_directory,
    read_audio,
)
from avf.data.batching import Sequences
from avf.data.datadir import resolve_data_dir, verify
from avf.data.kth import KTHActions, kth_splits, load_kth
from avf.data.mnist import load_mnist_images
from avf.data.moving_mnist import StochasticMovingMNIST, moving_mnist, moving_mnist_splits
from avf.data.music import load_music, music_splits, random_crops, transpose_rolls
from avf.data.synthetic import sample_dataset

__all__ = [
    "AudioData",
    "AudioSplits",
    "KTHActions",
    "Sequences",
    "Standardizer",
    "StochasticMovingMNIST",
    "audio_splits",
    "frame_waveform",
    "kth_splits",
    "load_fsdd",
    "load_kth",
    "load_mnist_images",
    "load_music",
    "load_timit",
    "load_wav_directory",
    "moving_mnist",
    "moving_mnist_splits",
    "music_splits",
    "random_crops",
    "read_audio",
    "resolve_data_dir",
    "sample_dataset",
    "transpose_rolls",
    "verify",
]

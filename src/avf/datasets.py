"""From config to data: the train, valid and test splits a config's ``[data]`` table names.

Synthetic sequences are sampled from a model built from the config; music, speech and video
are read from the data directory. Training data that change every epoch (music crops, fresh
Moving MNIST videos, KTH clips) are callables of the epoch, seeded by (seed, epoch) alone, so
that a resumed run trains on what an uninterrupted one would have seen.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from avf.builders import build_model, model_factory
from avf.config import DataConfig, ExperimentConfig, ModelConfig
from avf.data import (
    Sequences,
    load_music,
    music_splits,
    random_crops,
    sample_dataset,
    transpose_rolls,
)
from avf.data.audio import (
    AudioSplits,
    Standardizer,
    audio_splits,
    load_fsdd,
    load_timit,
    load_wav_directory,
)
from avf.data.datadir import resolve_data_dir
from avf.data.file_splits import SPLITS, stream_seed
from avf.data.kth import load_kth
from avf.data.mnist import mnist_images
from avf.data.moving_mnist import moving_mnist
from avf.random_state import seeded
from avf.training import TrainData, epoch_data

PIXEL_BIN = 1 / 256  # quantisation bin of 8-bit pixels scaled to [0, 1], as the AVF paper scores


def data_model_config(cfg: ExperimentConfig) -> ModelConfig:
    """The data-generating model: ``[model]`` with ``[data.generator]`` options on top."""
    return ModelConfig(cfg.model.name, {**cfg.model.options, **cfg.data.generator})


def build_datasets(
    cfg: ExperimentConfig, data_dir: str | Path | None = None
) -> dict[str, Sequences | None]:
    """The train, valid and test splits as fixed sequences (``None`` for a split of size 0).

    Synthetic: each split has its own seed derived from ``data.seed``, so resizing one split
    leaves the others unchanged. Music: read from ``data_dir`` (else ``$AVF_DATA_DIR``, else
    the default, see :func:`avf.data.resolve_data_dir`); train is the first epoch's windows,
    valid one fixed window per song, test whole songs.
    """
    data = _checked(cfg)
    if data.source in _READERS:
        train, valid, test = _READERS[data.source](data, data_dir)
        return {"train": epoch_data(train, 1), "valid": valid, "test": test}
    return _synthetic(cfg, data)


def build_training_data(
    cfg: ExperimentConfig, data_dir: str | Path | None = None
) -> tuple[TrainData, Sequences | None]:
    """What :meth:`avf.training.Trainer.fit` takes: the training data and the validation set.

    For music with ``crop > 0`` the training data are :class:`EpochCrops`, fresh windows every
    epoch as in the AVF paper; otherwise fixed sequences.
    """
    data = _checked(cfg)
    if data.source in _READERS:
        train, valid, _ = _READERS[data.source](data, data_dir)
        return train, valid
    splits = _synthetic(cfg, data)
    assert splits["train"] is not None  # DataConfig.check asks for at least one
    return splits["train"], splits["valid"]



def describe_training_data(train: TrainData) -> str:
    """"N training sequences", and whether they are drawn afresh every epoch, for messages."""
    fresh = "" if isinstance(train, Sequences) else " (fresh every epoch)"
    return f"{len(train)} training sequences{fresh}"


class EpochCrops:
    """One random ``length``-step window of every long enough song, drawn afresh each epoch.

    An epoch's windows depend on (``seed``, epoch) alone, not on what ran before in this
    process, so a run resumed from a checkpoint trains on the windows an uninterrupted run
    would have used. With ``transpose`` = N > 0 (piano rolls only) each window is then shifted
    by a random number of semitones in [-N, N], drawn after the windows from the same stream,
    so N = 0 gives exactly the windows it gave before the option existed. ``per`` chooses
    between one window per song and windows spread over all time steps (:func:`random_crops`).
    """

    def __init__(self, songs: list[Tensor], length: int, seed: int, transpose: int = 0,
                 per: str = "song") -> None:
        self.songs = songs
        self.length = length
        self.seed = seed
        self.transpose = transpose
        self.per = per
        self.count = sum(int(s.shape[0] >= length) for s in songs)

    def __len__(self) -> int:
        """Windows per epoch: one per song of at least ``length`` steps."""
        return self.count

    def __call__(self, epoch: int) -> Sequences:
        generator = torch.Generator().manual_seed(stream_seed(self.seed, 0, epoch))
        windows = random_crops(self.songs, self.length, generator, per=self.per)
        if not self.transpose:
            return windows
        shifts = torch.randint(-self.transpose, self.transpose + 1, (len(windows),),
                               generator=generator)
        return Sequences(transpose_rolls(windows.x, shifts), windows.mask)


def _checked(cfg: ExperimentConfig) -> DataConfig:
    data = cfg.data.resolved()
    data.check()
    return data


def _music(
    data: DataConfig, data_dir: str | Path | None
) -> tuple[TrainData, Sequences, Sequences]:
    # DataConfig.check/resolved
    assert data.dataset is not None and data.crop is not None and data.crop_sampling is not None
    songs = load_music(data.dataset, data_dir)
    splits = music_splits(songs, data.crop or None, data.seed, whole_valid=bool(data.whole_valid),
                          per=data.crop_sampling)
    train = (EpochCrops(songs["train"], data.crop, data.seed, data.transpose or 0,
                        data.crop_sampling) if data.crop else splits["train"])
    return train, splits["valid"], splits["test"]


def _speech(
    data: DataConfig, data_dir: str | Path | None
) -> tuple[TrainData, Sequences, Sequences]:
    prepared = _prepared_speech(data, data_dir)
    splits = prepared.splits
    train = (EpochCrops(prepared.frames["train"], data.crop, data.seed) if data.crop
             else splits["train"])
    return train, splits["valid"], splits["test"]


@functools.lru_cache(maxsize=2)
def _speech_splits(dataset: str, data_dir: str | None, frame_size: int, crop: int,
                   seed: int) -> AudioSplits:
    """Read, standardise and frame a speech set once per process (training and scoring both
    need it, and the bin width depends on its statistics)."""
    if dataset == "fsdd":
        audio = load_fsdd(data_dir=data_dir)
    elif dataset == "timit":
        audio = load_timit(resolve_data_dir(data_dir) / "timit", seed=seed)
    else:
        audio = load_wav_directory(Path(dataset).expanduser(), seed=seed)
    return audio_splits(audio, frame_size, crop or None, seed)


def _prepared_speech(data: DataConfig, data_dir: str | Path | None) -> AudioSplits:
    assert data.frame_size is not None and data.crop is not None  # DataConfig.resolved
    key = None if data_dir is None else str(data_dir)  # hashable, for the cache
    return _speech_splits(data.dataset, key, data.frame_size, data.crop, data.seed)


def data_bin_width(cfg: ExperimentConfig, data_dir: str | Path | None = None) -> float | None:
    """The quantisation bin of one observed value, in the units the model sees.

    Speech: one 16-bit step divided by the training standard deviation (the waveform is
    standardised); video: 1/256 for pixels in [0, 1]; other data: ``None`` (not quantised).
    """
    data = _checked(cfg)
    if data.source == "speech":
        return _prepared_speech(data, data_dir).standardizer.step(16)
    if data.source == "video":
        return PIXEL_BIN
    return None


def speech_data(cfg: ExperimentConfig, data_dir: str | Path | None = None) -> AudioSplits:
    """A speech run's framed splits with their training statistics and sample rate."""
    data = _checked(cfg)
    if data.source != "speech":
        raise ValueError(f"data.source is '{data.source}', not 'speech'")
    return _prepared_speech(data, data_dir)


def speech_standardizer(cfg: ExperimentConfig,
                        data_dir: str | Path | None = None) -> Standardizer:
    """The training statistics a speech run's waveforms were standardised with."""
    return speech_data(cfg, data_dir).standardizer


def with_bin_width(cfg: ExperimentConfig, data_dir: str | Path | None = None) -> ExperimentConfig:
    """``cfg`` with ``model.options.bin_width`` set from the data when the model takes one and
    the config leaves it unset, so a run's saved config scores the way it was trained."""
    params = inspect.signature(model_factory(cfg.model.name)).parameters
    if "bin_width" not in params or "bin_width" in cfg.model.options:
        return cfg
    default_output = params["output"].default if "output" in params else "gaussian"
    if cfg.model.options.get("output", default_output) != "gaussian":
        return cfg  # Bernoulli outputs are probabilities already
    width = data_bin_width(cfg, data_dir)
    if width is None:
        return cfg
    model = ModelConfig(cfg.model.name, {**cfg.model.options, "bin_width": width})
    return dataclasses.replace(cfg, model=model)


def _synthetic(cfg: ExperimentConfig, data: DataConfig) -> dict[str, Sequences | None]:
    sizes = dict(zip(SPLITS, (data.train_sequences, data.valid_sequences, data.test_sequences),
                     strict=True))
    # a model with randomly initialised weights generates the same data in every process
    # (training, then `avf evaluate`): its weights come from data.seed, not the global RNG
    with seeded(stream_seed(data.seed, len(SPLITS)), torch.device("cpu")):
        generator = build_model(data_model_config(cfg))
    return {
        split: sample_dataset(generator, n, data.steps, stream_seed(data.seed, i)) if n else None
        for i, (split, n) in enumerate(sizes.items())
    }


def _video(
    data: DataConfig, data_dir: str | Path | None
) -> tuple[TrainData, Sequences, Sequences]:
    assert data.steps is not None and data.train_sequences is not None
    if data.dataset == "smmnist":
        mnist = None if data_dir is None else resolve_data_dir(data_dir) / "mnist"
        digits = {name: mnist_images(name, mnist) for name in ("train", "test")}
        made = {split: moving_mnist(split, images=digits["test" if split == "test" else "train"],
                                    num_frames=data.steps,
                                    num_sequences=max(size, 1), num_digits=data.num_digits,
                                    seed=data.seed)
                for split, size in (("train", data.train_sequences),
                                    ("valid", data.valid_sequences),
                                    ("test", data.test_sequences))}
        train = EpochVideos(made["train"], data.train_sequences)
        return train, _first(made["valid"], data.valid_sequences), _first(
            made["test"], data.test_sequences)
    if data.dataset == "kth":
        kth = load_kth(resolve_data_dir(data_dir) / "kth", clip_length=data.steps)
        return (EpochKTH(kth["train"], data.seed), kth["valid"].clips(kth["valid"].fixed_windows()),
                kth["test"].clips(kth["test"].fixed_windows()))
    raise ValueError(f"unknown video data set {data.dataset!r}; known: smmnist, kth")


def _first(videos: Any, n: int | None) -> Sequences | None:
    return videos.sequences(n) if n else None


class EpochVideos:
    """``count`` freshly generated videos per epoch (Stochastic Moving MNIST), the same ones
    for the same epoch on every run, so resumed runs see what uninterrupted ones would."""

    def __init__(self, videos: Any, count: int) -> None:
        self.videos = videos
        self.count = count

    def __len__(self) -> int:
        return self.count

    def __call__(self, epoch: int) -> Sequences:
        return self.videos.for_epoch(epoch).sequences(self.count)


class EpochKTH:
    """One random clip of every training video per epoch, drawn from (``seed``, epoch)."""

    def __init__(self, videos: Any, seed: int) -> None:
        self.videos = videos
        self.seed = seed
        self.count = len(videos.random_windows())  # one window per long-enough video

    def __len__(self) -> int:
        return self.count

    def __call__(self, epoch: int) -> Sequences:
        generator = torch.Generator().manual_seed(stream_seed(self.seed, 0, epoch))
        return self.videos.clips(self.videos.random_windows(generator))


_READERS: dict[str, Callable[[DataConfig, str | Path | None],
                             tuple[TrainData, Sequences, Sequences]]] = {
    "music": _music, "speech": _speech, "video": _video}

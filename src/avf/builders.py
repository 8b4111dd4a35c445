"""From config to objects: models, inference procedures and data sets by name.

The ``options`` tables of a config are the constructors' keyword arguments. They are checked
against the constructor signatures here, so an unknown or ill-typed option fails with its
name before anything is built.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import torch
from torch import Tensor, nn

from avf.config import SOURCE_KEYS, DataConfig, ExperimentConfig, InferenceConfig, ModelConfig
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
from avf.inference import Direct, GradientDescent, InferenceProcedure, Iterative, PriorOnly
from avf.model import check_model, latent_dim, state_dim
from avf.random_state import seeded
from avf.training import TrainData, epoch_data
from avf.user_code import is_import_path, load_object
from avf.validation import observation_shape

# Constructor arguments that the builder supplies itself (or that TOML cannot express).
_SUPPLIED = {"family"}


def _lgssm() -> Callable[..., nn.Module]:
    from avf.models.lgssm import LinearGaussian

    return LinearGaussian.random


def _growth() -> Callable[..., nn.Module]:
    from avf.models.growth import NonlinearGrowth

    return NonlinearGrowth


def _srnn() -> Callable[..., nn.Module]:
    from avf.models.srnn import SRNN

    return SRNN


def _vrnn() -> Callable[..., nn.Module]:
    from avf.models.vrnn import VRNN

    return VRNN


def _dmm() -> Callable[..., nn.Module]:
    from avf.models.dmm import DMM

    return DMM


def _svg() -> Callable[..., nn.Module]:
    from avf.models.svg import SVG

    return SVG


MODELS: dict[str, Callable[[], Callable[..., nn.Module]]] = {
    "lgssm": _lgssm, "growth": _growth, "srnn": _srnn, "vrnn": _vrnn, "dmm": _dmm, "svg": _svg}
INFERENCE = ("prior", "direct", "iterative", "gradient", "baseline")
DATA_SOURCES = tuple(SOURCE_KEYS)
PIXEL_BIN = 1 / 256  # quantisation bin of 8-bit pixels scaled to [0, 1], as the AVF paper scores


def model_factory(name: str) -> Callable[..., nn.Module]:
    """What builds the model called ``name``: a built-in's class, or the user's class (or
    function) at the import path ``module:Class`` / ``file.py:Class`` (:mod:`avf.user_code`)."""
    if is_import_path(name):
        factory = load_object(name)
        if not callable(factory):
            raise ValueError(f"model '{name}' is a {type(factory).__name__}, not a class or "
                             "function that builds a model")
        return factory
    if name not in MODELS:
        raise ValueError(f"unknown model '{name}'; known models: {', '.join(MODELS)}, or your "
                         "own as 'package.module:Class' or 'file.py:Class'")
    return MODELS[name]()


def build_model(cfg: ModelConfig) -> nn.Module:
    """``lgssm`` → ``LinearGaussian.random(**options)``; the others → their class.

    ``growth`` → ``NonlinearGrowth``, ``srnn`` → ``SRNN``, ``vrnn`` → ``VRNN``, ``dmm`` → ``DMM``,
    ``svg`` → ``SVG``; an import path → the user's class, called with the options, which must
    give an ``nn.Module`` with the step contract (:class:`avf.model.StepModel`).
    """
    factory = model_factory(cfg.name)
    check_options(f"model '{cfg.name}'", cfg.options, factory)
    model = factory(**cfg.options)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model '{cfg.name}' built a {type(model).__name__}, not a "
                        "torch.nn.Module")
    check_model(model)
    return model


def build_inference(cfg: InferenceConfig, model: nn.Module, x_dim: int) -> InferenceProcedure:
    """The named procedure, sized for ``model``; ``x_dim`` is the flattened size of one x_t.

    Extra options: ``use_state`` (direct, default true) feeds the model state to the encoder;
    ``x_input`` (iterative, default false) adds x_t to the inputs of the iterative model.
    ``baseline`` is the model's own encoder, ``model.baseline_encoder(**options)``; an import
    path (``module:Class``, ``file.py:Class``) is your own procedure.
    """
    opts = dict(cfg.options)
    where = f"inference '{cfg.name}'"
    if cfg.name == "prior":
        check_options(where, opts, PriorOnly)
        return PriorOnly(**opts)
    if cfg.name == "gradient":
        check_options(where, opts, GradientDescent)
        return GradientDescent(**opts)
    if cfg.name == "direct":
        use_state = _flag(opts, "use_state", True, where)
        check_options(where, opts, Direct, supplied={"x_dim", "latent_dim", "state_dim"},
                      extra=("use_state",))
        return Direct(x_dim, latent_dim(model), state_dim(model) if use_state else 0, **opts)
    if cfg.name == "iterative":
        x_input = _flag(opts, "x_input", False, where)
        check_options(where, opts, Iterative, supplied={"latent_dim", "x_dim"},
                      extra=("x_input",))
        return Iterative(latent_dim(model), x_dim=x_dim if x_input else 0, **opts)
    if cfg.name == "baseline":
        factory = getattr(model, "baseline_encoder", None)
        if factory is None:
            raise ValueError(f"model {type(model).__name__} has no baseline encoder")
        check_options(where, opts, factory)
        return factory(**opts)
    if is_import_path(cfg.name):
        return _user_inference(cfg.name, opts, model, x_dim)
    raise ValueError(f"unknown inference '{cfg.name}'; known procedures: {', '.join(INFERENCE)}, "
                     "or your own as 'package.module:Class' or 'file.py:Class'")


def _user_inference(name: str, opts: dict[str, Any], model: nn.Module,
                    x_dim: int) -> InferenceProcedure:
    """A user's :class:`InferenceProcedure` subclass, given the options plus whichever of
    ``latent_dim``, ``x_dim`` and ``state_dim`` its constructor takes (from the model)."""
    factory = load_object(name)
    where = f"inference '{name}'"
    if not callable(factory):
        raise ValueError(f"{where} is a {type(factory).__name__}, not a class or function")
    sizes = {"latent_dim": lambda: latent_dim(model), "x_dim": lambda: x_dim,
             "state_dim": lambda: state_dim(model)}
    params = inspect.signature(factory).parameters
    supplied = {key: size() for key, size in sizes.items() if key in params and key not in opts}
    check_options(where, opts, factory, supplied=supplied)
    inference = factory(**supplied, **opts)
    if not isinstance(inference, InferenceProcedure):
        raise TypeError(f"{where} built a {type(inference).__name__}, not an "
                        "avf.inference.InferenceProcedure")
    return inference


def observation_size(model: nn.Module) -> int:
    """Number of numbers in one observation x_t (what an encoder takes as input)."""
    return math.prod(observation_shape(model))


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


# -- option checking --------------------------------------------------------------------------
def check_options(
    where: str,
    options: dict[str, Any],
    target: Callable[..., Any],
    supplied: Iterable[str] = (),
    extra: Iterable[str] = (),
) -> None:
    """Raise ``ValueError`` for an option ``target`` does not take, or of the wrong type."""
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    skip = _SUPPLIED | set(supplied)
    valid = [n for n, p in params.items()
             if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in options.items():
        if key not in valid:
            listed = sorted([*valid, *extra])
            raise ValueError(f"unknown option '{key}' for {where}; valid options: "
                             f"{', '.join(listed) if listed else '(none)'}")
        hint = _hints(target).get(key)
        if hint is not None and not _matches(hint, value):
            raise ValueError(f"option '{key}' for {where} must be {_show(hint)}, got {value!r}")


def _flag(opts: dict[str, Any], key: str, default: bool, where: str) -> bool:
    value = opts.pop(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"option '{key}' for {where} must be true or false, got {value!r}")
    return value


def _hints(target: Callable[..., Any]) -> dict[str, Any]:
    fn = target.__init__ if inspect.isclass(target) else target
    try:
        return get_type_hints(fn)
    except Exception:  # unresolvable annotations: check names only
        return {}


def _matches(hint: Any, value: Any) -> bool:
    """Whether a TOML value fits a simple annotation; unfamiliar annotations always match."""
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint)
    if origin is Union or type(hint).__name__ == "UnionType":
        return any(_matches(a, value) for a in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _show(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    return getattr(hint, "__name__", str(hint))

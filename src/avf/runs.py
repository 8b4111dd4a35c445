"""A run directory opened from Python: its config, and its model and inference with trained
weights, for scoring, plotting, streaming or further work outside ``avf train``.

A run directory is self-describing (``config.toml`` plus checkpoints), so everything here is
rebuilt from it; ``avf evaluate`` and ``avf plot`` use the same functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avf.builders import build_inference, build_model, observation_size
from avf.checkpoints import BEST, CHECKPOINT, load_weights
from avf.config import ExperimentConfig, load_config
from avf.data.batching import Sequences
from avf.data.file_splits import SPLITS
from avf.datasets import build_datasets
from avf.inference.iterative import DEFAULT_ENCODING, DEFAULT_GRAD_SAMPLES, DEFAULT_UPDATE

CONFIG_NAME = "config.toml"
CHECKPOINTS = ("best", "last")
WEIGHTS = ("average", "trained")
CROSS_DATASET_SOURCES = ("music", "video")  # sources whose runs can be scored on another set


@dataclass
class Run:
    """A trained run: ``model`` and ``inference`` in eval mode, with the weights that
    ``checkpoint`` holds (``weights``: its weight average, or the raw trained weights)."""

    run_dir: Path
    config: ExperimentConfig
    model: nn.Module
    inference: nn.Module
    checkpoint: Path
    epoch: int
    weights: str

    def data(self, split: str = "test", data_dir: str | Path | None = None,
             dataset: str | None = None) -> Sequences:
        """The run's ``train``, ``valid`` or ``test`` split, as ``avf evaluate`` scores it
        (real data from ``data_dir``, else ``$AVF_DATA_DIR``, else the default folder).

        ``dataset`` names another data set of the run's source to take the split from
        instead (:func:`with_dataset`): a model trained on JSB scored on Nottingham, or on
        your own songs from ``avf data midi``.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be {', '.join(SPLITS)}, got {split!r}")
        cfg = self.config if dataset is None else with_dataset(self.config, dataset)
        return split_data(cfg, split, data_dir)


def load_run(run_dir: str | Path, checkpoint: str = "best", weights: str = "average",
             device: str | torch.device = "cpu") -> Run:
    """Open a directory written by ``avf train`` (a :class:`~avf.training.Trainer`'s run
    directory has no ``config.toml``: use :func:`avf.training.load_weights` there).

    ``checkpoint`` is ``"best"`` (the best validation epoch, what ``avf evaluate`` scores) or
    ``"last"``; ``weights="average"`` takes the weight average where the run kept one
    (``training.ema_decay``), ``"trained"`` the raw weights.
    """
    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    model, inference, path, ckpt = restore(cfg, run_dir, checkpoint, weights)
    device = resolve_device(str(device))
    model, inference = model.to(device).eval(), inference.to(device).eval()
    return Run(run_dir, cfg, model, inference, path, int(ckpt["epoch"]),
               weights_used(ckpt, weights))


def build(cfg: ExperimentConfig) -> tuple[nn.Module, nn.Module]:
    """Model and inference, initialised from ``cfg.seed`` (the same every time)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    inference = build_inference(cfg.inference, model, observation_size(model))
    return model, inference


def resolve_device(name: str) -> torch.device:
    """The device named, or a ``ValueError`` saying why it cannot be used."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r} (use cpu, cuda or cuda:N)")
    return device


def run_config(run_dir: str | Path) -> ExperimentConfig:
    """The resolved config a run directory was trained from."""
    config_path = Path(run_dir) / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {run_dir} (is it a run directory?)")
    return load_config(config_path)


def describe_inference(cfg: ExperimentConfig) -> str:
    """The inference procedure in a few words, as run tables name it: ``"baseline"`` or, for
    the iterative model, its iterations, whether it reads x_t, and its gradient encoding, update
    and samples per gradient where they are not the defaults
    (``"iterative K=1 + x_t, layernorm"``, ``"iterative K=1, 8-sample gradients"``,
    ``"iterative K=1, 8-sample antithetic gradients"``)."""
    options = cfg.inference.options
    words = cfg.inference.name
    if options.get("iterations"):
        words += f" K={options['iterations']}"
    if options.get("x_input"):
        words += " + x_t"
    if cfg.inference.name == "iterative":
        encoding = options.get("encoding", DEFAULT_ENCODING)
        if encoding != DEFAULT_ENCODING:
            words += f", {encoding}"
        update = options.get("update", DEFAULT_UPDATE)
        if update != DEFAULT_UPDATE:
            words += f", {update} update"
        samples = options.get("grad_samples", DEFAULT_GRAD_SAMPLES)
        if options.get("antithetic"):
            words += f", {samples}-sample antithetic gradients"
        elif samples != DEFAULT_GRAD_SAMPLES:
            words += f", {samples}-sample gradients"
    return words


def split_data(cfg: ExperimentConfig, split: str, data_dir: str | Path | None) -> Sequences:
    """One split of the run's data, or a ``ValueError`` when the config leaves it out."""
    data = build_datasets(cfg, data_dir)[split]
    if data is None:
        raise ValueError(f"the {split} split is empty (data.{split}_sequences = 0)")
    return data


def with_dataset(cfg: ExperimentConfig, dataset: str) -> ExperimentConfig:
    """``cfg`` with its data read from ``dataset`` instead: to score a trained model on other
    data of the same kind, prepared the way its own were (same crops, windows and seed).

    Music and video only. Speech is standardised with its training set's mean and standard
    deviation, and its bin width comes from them, so another set would be scaled unlike the
    data the model learnt on; synthetic data have no data set to name.
    """
    source = cfg.data.source
    if source not in CROSS_DATASET_SOURCES:
        why = ("its waveforms are standardised with their own training set's statistics, so "
               "another set would not be scaled as the model's data were"
               if source == "speech" else "it names no data set")
        raise ValueError(f"scoring on another data set works for music and video runs, not "
                         f"for source = '{source}': {why}")
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError(f"the data set to score on must be a name or a path, got {dataset!r}")
    data = replace(cfg.data, dataset=dataset)
    data.check()
    return replace(cfg, data=data)


def on_dataset(cfg: ExperimentConfig, dataset: str | None
               ) -> tuple[ExperimentConfig, str | None]:
    """``cfg`` reading ``dataset`` (:func:`with_dataset`) and the label of its outputs, or
    ``(cfg, None)`` where ``dataset`` is unset or the run's own."""
    if dataset is None or dataset == cfg.data.dataset:
        return cfg, None
    return with_dataset(cfg, dataset), dataset_label(dataset)


def dataset_label(dataset: str) -> str:
    """A file-name-safe label for a data set given by name or path (``my_songs.json`` →
    ``my_songs``), for ``eval_<split>_on_<label>.json``."""
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(dataset).stem).strip("-.")
    return label or "data"


def restore(cfg: ExperimentConfig, run_dir: str | Path, checkpoint: str,
            weights: str = "average") -> tuple[nn.Module, nn.Module, Path, dict[str, Any]]:
    """Model and inference with the weights of ``best.pt`` or (``last``) ``checkpoint.pt``:
    their weight averages where the run kept them and ``weights`` is ``"average"``."""
    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    model, inference = build(cfg)
    path = Path(run_dir) / (BEST if checkpoint == "best" else CHECKPOINT)
    if not path.is_file():
        hint = " (no validation improved yet; try --checkpoint last)" if checkpoint == \
            "best" else ""
        raise FileNotFoundError(f"no checkpoint {path}{hint}")
    return model, inference, path, load_weights(path, model, inference,
                                                averaged=weights == "average")


def weights_used(ckpt: dict[str, Any], weights: str) -> str:
    """``"average"`` when :func:`restore` loaded a weight average, else ``"trained"``."""
    return "average" if weights == "average" and ckpt.get("average") else "trained"

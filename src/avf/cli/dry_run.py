"""``avf train --dry-run``: everything a run needs, built and tried once, nothing written.

A long run should not fail in its first epoch (or hours later, on resume) for a typo, a missing
file or a model that breaks on real data. So the config, the data and both networks are built
exactly as for training, one training batch goes through filtering and both backward passes
(no optimiser step), and the time of that batch gives an estimate of an epoch's.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

from avf.config import ExperimentConfig, dumps
from avf.data import Sequences
from avf.datasets import describe_training_data
from avf.filtering import backward, filter_sequences, trainable
from avf.training import TrainData, epoch_data


@dataclasses.dataclass(frozen=True)
class BatchTrial:
    """What one training batch gave: its size, free energy per step and time per pass."""

    sequences: int
    steps: int
    free_energy: float  # nats per step, at β = 1
    seconds: float  # filtering plus both backward passes, the second of two passes


def dry_run(cfg: ExperimentConfig, model: nn.Module, inference: nn.Module,
            train_data: TrainData, valid: Sequences | None, run_dir: Path, resuming: bool,
            device: torch.device) -> int:
    """Print the resolved config (the text ``config.toml`` would get) to stdout and a summary
    to stderr; return the exit status (0: the run can start)."""
    sys.stdout.write(dumps(dataclasses.asdict(cfg)))
    trial = try_one_batch(cfg, model, inference, train_data, device)
    theta = sum(p.numel() for p in trainable(model.parameters()))
    phi = sum(p.numel() for p in trainable(inference.parameters()))
    held_out = f", {len(valid)} validation" if valid is not None else ", no validation"
    batches = math.ceil(len(train_data) / cfg.training.batch_size)
    action = "would resume" if resuming else "would start"
    _say(f"dry run: {cfg.model.name} model ({theta:,} parameters θ), {cfg.inference.name} "
        f"inference ({phi:,} parameters φ), {describe_training_data(train_data)}"
        f"{held_out}")
    _say(f"one training batch ({trial.sequences} sequences, {trial.steps} steps) on {device}: "
        f"free energy {trial.free_energy:.4f} nats/step, {trial.seconds:.3f} s to filter and "
        f"backpropagate; {batches} batches per epoch, about {batches * trial.seconds:.1f} s of "
        "training per epoch before validation")
    _say(f"{action} {run_dir}; nothing written")
    return 0


def try_one_batch(cfg: ExperimentConfig, model: nn.Module, inference: nn.Module,
                  train_data: TrainData, device: torch.device) -> BatchTrial:
    """Filter the first training batch of epoch 1 and send both losses back, twice, without
    an optimiser step; the weights are left as they were and their gradients cleared.

    The second pass is the one timed (the first pays for one-off set-up). A non-finite free
    energy or a model that breaks raises here, as it would in training's first step.
    """
    first = epoch_data(train_data, 1)
    x, mask = next(first.batches(cfg.training.batch_size))
    x, mask = x.to(device), mask.to(device)
    model.to(device).train()
    inference.to(device).train()
    theta = model if cfg.training.train_model else None
    seconds = 0.0
    for _ in range(2):
        start = time.perf_counter()
        out = filter_sequences(model, inference, x, mask, n_samples=cfg.training.n_samples)
        backward(out, theta, inference)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        inference.zero_grad(set_to_none=True)
    return BatchTrial(sequences=int(x.shape[0]), steps=int(mask.sum()),
                      free_energy=out.per_step(), seconds=seconds)


def _say(text: str) -> None:
    print(text, file=sys.stderr)  # stdout carries the config alone, so it can be redirected

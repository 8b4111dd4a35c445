"""Data sets sampled from a model: ground truth for checking inference and learning."""

from __future__ import annotations

import torch
from torch import nn

from avf.data.batching import Sequences
from avf.model import sample_sequences


def sample_dataset(model: nn.Module, n_sequences: int, steps: int, seed: int) -> Sequences:
    """``n_sequences`` sequences of ``steps`` steps drawn from ``model``, the same for a seed.

    Sampling runs under a forked RNG so that drawing a data set does not move the caller's
    random stream (training after it is then the same whether or not data was drawn first).
    """
    if n_sequences < 1:
        raise ValueError(f"n_sequences must be at least 1, got {n_sequences}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    devices = list(range(torch.cuda.device_count()))
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        x, _ = sample_sequences(model, n_sequences, steps)
    return Sequences(x.detach().cpu())

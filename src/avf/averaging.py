"""Exponential moving averages of trained weights, for validation, best.pt and evaluation.

At a fast learning rate the weights after any one optimiser step are a noisy point of a cloud
around a good region; their average over the last few hundred steps sits nearer its centre and
usually scores better on held-out data than any single step (Polyak averaging). Training keeps
stepping the raw weights; an average only follows them, so switching it on or off never changes
the training trajectory, only which weights are scored and kept.

:class:`WeightAverage` wraps ``torch.optim.swa_utils.AveragedModel`` with its EMA update, and
copies buffers (running statistics, constants) from the live module instead of averaging them,
because some buffers are integers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightAverage:
    """An exponential moving average, with weight ``decay`` on the past, of a module's
    parameters. The first update copies the weights, so the average has no start-up bias."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"an average's decay must be in (0, 1), got {decay!r}")
        self.decay = decay
        self._averaged = AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                       use_buffers=False)
        # A deep copy of a recurrent layer on a GPU loses cuDNN's single weight buffer, and
        # every call would then compact the weights again (torch warns); regroup them once.
        for layer in self.module.modules():
            if isinstance(layer, nn.RNNBase):
                layer.flatten_parameters()

    @property
    def module(self) -> nn.Module:
        """A copy of the module that holds the averaged weights (score it, do not train it)."""
        return self._averaged.module

    @property
    def updates(self) -> int:
        """How many optimiser steps the average has followed."""
        return int(self._averaged.n_averaged)

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Fold the live weights of ``module`` in after an optimiser step."""
        self._averaged.update_parameters(module)
        for mine, live in zip(self.module.buffers(), module.buffers(), strict=True):
            mine.copy_(live)

    @torch.no_grad()
    def restart(self, module: nn.Module) -> None:
        """Start over from the live weights of ``module``, as if just built from it."""
        self.module.load_state_dict(module.state_dict())
        self._averaged.n_averaged.zero_()

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights as the module's own state dict, plus the update count."""
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["weights"])
        self._averaged.n_averaged.fill_(int(state["updates"]))

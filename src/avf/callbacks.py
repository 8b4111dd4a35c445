"""Hooks into :meth:`avf.Trainer.fit`, so that a user can watch or stop training without
copying the loop: log each batch to their own tracker, trace a quantity, end a run on a rule
of their own.

Subclass :class:`Callback` and override what you need; every hook does nothing by default.
Hooks run in the order given to the trainer. A hook must not change the weights or the
optimisers: the trainer's checkpoints promise that a resumed run continues exactly, and a
hook that changes state outside them would break that promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avf.filtering import FilterOutput

if TYPE_CHECKING:
    from avf.training import Trainer


@dataclass(frozen=True)
class BatchEnd:
    """What one training batch did; passed to :meth:`Callback.on_batch_end`."""

    epoch: int  # the epoch this batch belongs to, from 1
    batch: int  # the batch's index in its epoch, from 1
    step: int  # optimiser steps taken so far in the whole run, this batch's included
    beta: float  # the KL weight this batch trained with
    output: FilterOutput  # per-step free energy, KL, reconstruction and posterior parameters

    def free_energy(self) -> float:
        """The batch's micro-averaged free energy per step (nats)."""
        return self.output.per_step()


class Callback:
    """Base class of the trainer's hooks; see the module docstring for the rules."""

    def on_batch_end(self, trainer: Trainer, batch: BatchEnd) -> None:
        """After every optimiser step (and the weight averages' update)."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After every epoch, once its record (the ``metrics.jsonl`` line) is final and its
        checkpoint is written. Call :meth:`avf.Trainer.request_stop` to end :meth:`fit` here."""

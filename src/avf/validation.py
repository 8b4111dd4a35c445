"""Checks on user input that fail early with a message naming the problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn


def check_integer(name: str, value: Any, lowest: int) -> None:
    """Refuse anything but an integer ≥ ``lowest`` (bools too), naming the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
        raise ValueError(f"{name} must be an integer ≥ {lowest}, got {value!r}")


class NonFiniteError(FloatingPointError):
    """A free-energy term became NaN or inf; the message names the step and the term."""


def observation_shape(model: nn.Module) -> tuple[int, ...]:
    """Shape of one x_t (without batch), read off the model's likelihood at the initial state."""
    with torch.no_grad(), torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone
        state = model.initial_state(1)
        z = model.prior(state).sample()
        sample = model.likelihood(z, state).sample()
    return tuple(sample.shape[1:])


def check_sequences(x: Tensor, mask: Tensor | None, obs_shape: tuple[int, ...] | None) -> Tensor:
    """Validate batch-first sequences and return the mask as booleans [B, T]."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape [B, T, ...], got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"x must be batch-first [B, T, features...]; got rank {x.dim()} with shape "
            f"{tuple(x.shape)} (add a batch dimension with x.unsqueeze(0))"
        )
    batch, steps = x.shape[:2]
    if batch == 0:
        raise ValueError("x holds no sequences (batch size 0)")
    if steps == 0:
        raise ValueError("x holds empty sequences (0 time steps)")
    if obs_shape is not None and tuple(x.shape[2:]) != tuple(obs_shape):
        raise ValueError(
            f"x has per-step shape {tuple(x.shape[2:])} but the model's likelihood is over "
            f"shape {tuple(obs_shape)}"
        )
    if mask is None:
        mask = torch.ones(batch, steps, dtype=torch.bool, device=x.device)
    else:
        if tuple(mask.shape) != (batch, steps):
            raise ValueError(
                f"mask must have shape [B, T] = {(batch, steps)} to match x, got "
                f"{tuple(mask.shape)}"
            )
        if mask.dtype != torch.bool:
            if not torch.all((mask == 0) | (mask == 1)):
                raise ValueError("mask must hold only 0/1 (or booleans)")
            mask = mask.bool()
    empty = (~mask.any(dim=1)).nonzero().flatten()
    if len(empty) > 0:
        raise ValueError(
            f"sequence(s) {empty.tolist()[:10]} of the batch are empty (mask all zero)"
        )
    if x.is_floating_point():
        bad = ~torch.isfinite(x) & mask.reshape(batch, steps, *([1] * (x.dim() - 2)))
        if bad.any():
            b, t = bad.nonzero()[0, :2].tolist()
            raise ValueError(f"x contains NaN or inf (first at sequence {b}, step {t})")
    return mask


def zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    """x with masked steps set to 0: padding may hold anything (even NaN), and must never reach
    a model, not even in computations whose results are discarded."""
    if bool(mask.all()):
        return x
    return x.masked_fill(~mask.reshape(*mask.shape, *([1] * (x.dim() - 2))), 0)


def mask_has_holes(mask: Tensor) -> bool:
    """Whether some sequence skips a step and then observes a later one.

    A model's ``precompute`` runs over x without the mask, so such batches must take the
    stepwise path, which skips masked steps exactly.
    """
    return bool((mask[:, 1:] & ~mask[:, :-1]).any())


def check_finite_terms(t: int, keep: Tensor | None = None, **terms: Tensor) -> None:
    """Raise :class:`NonFiniteError` naming the step and term if any term is NaN or inf.

    ``keep`` [B] limits the check to scored (unmasked) batch elements.
    """
    for name, value in terms.items():
        finite = torch.isfinite(value)
        if keep is not None:
            finite = finite | ~keep
        if not bool(finite.all()):
            where = (~finite).nonzero().flatten().tolist()[:5]
            raise NonFiniteError(
                f"non-finite {name} at time step {t} (batch elements {where}); "
                "check the data, lower the learning rate or clip gradients"
            )

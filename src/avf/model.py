"""The model contract: one step of a dynamical latent variable model.

A model describes a single time step; the library runs the loop. Keeping the model this small is
what lets every inference procedure work on every model without either knowing about the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

State = Any
"""A tensor, or a (nested) tuple/list/dict of tensors, batch dimension first."""


class StepModel(nn.Module, ABC):
    """Base class for a model defined by one step of its generative process.

    Subclasses implement :meth:`initial_state`, :meth:`prior`, :meth:`likelihood` and
    :meth:`transition`. They may also implement :meth:`precompute` together with
    :meth:`use_precomputed` to compute, for a whole sequence at once, whatever depends on ``x``
    alone (for example SRNN's forward RNN over ``x_<t``). Subclassing is optional: any
    ``nn.Module`` with the four methods works.
    """

    @abstractmethod
    def initial_state(self, batch_size: int) -> State:
        """State before the first step (batch dimension first)."""

    @abstractmethod
    def prior(self, state: State) -> Distribution:
        """p(z_t | x_<t, z_<t): batch shape [B], event shape [Dz]."""

    @abstractmethod
    def likelihood(self, z: Tensor, state: State) -> Distribution:
        """p(x_t | x_<t, z_≤t); must accept ``z`` of shape [B, Dz] or [S, B, Dz]."""

    @abstractmethod
    def transition(self, state: State, z: Tensor, x: Tensor) -> State:
        """Next state after observing ``x`` with latent sample ``z`` (deterministic)."""

    def precompute(self, x: Tensor) -> Any | None:
        """Per-sequence context from ``x`` [B, T, ...] alone, time on dim 1; ``None`` if unused."""
        return None

    def use_precomputed(self, state: State, context_t: Any) -> State:
        """Merge step t's slice of :meth:`precompute`'s output into the state."""
        return state


REQUIRED_METHODS = ("initial_state", "prior", "likelihood", "transition")


def check_model(model: nn.Module) -> None:
    """Raise a clear ``TypeError`` if ``model`` does not implement the step contract."""
    missing = [m for m in REQUIRED_METHODS if not callable(getattr(model, m, None))]
    if missing:
        raise TypeError(
            f"{type(model).__name__} is not a step model: missing {', '.join(missing)} "
            "(see avf.model.StepModel)"
        )


def map_state(fn: Callable[[Tensor], Tensor], state: State) -> State:
    """Apply ``fn`` to every tensor of a (nested) state."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: map_state(fn, v) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        mapped = [map_state(fn, v) for v in state]
        if hasattr(state, "_fields"):  # namedtuple
            return type(state)(*mapped)
        return type(state)(mapped)
    return state


def zip_state(fn: Callable[[Tensor, Tensor], Tensor], a: State, b: State) -> State:
    """Combine two states of the same structure tensor by tensor."""
    if isinstance(a, Tensor):
        return fn(a, b)
    if isinstance(a, dict):
        return {k: zip_state(fn, a[k], b[k]) for k in a}
    if isinstance(a, (tuple, list)):
        mapped = [zip_state(fn, u, v) for u, v in zip(a, b, strict=True)]
        if hasattr(a, "_fields"):
            return type(a)(*mapped)
        return type(a)(mapped)
    return a


def state_tensors(state: State) -> list[Tensor]:
    """All tensors of a state, in a fixed order."""
    out: list[Tensor] = []
    map_state(lambda t: out.append(t) or t, state)
    return out


def detach_state(state: State) -> State:
    """The state cut from its graph: the inference loss treats the past as a constant."""
    return map_state(Tensor.detach, state)


def select_state(keep: Tensor, new: State, old: State) -> State:
    """Per batch element, take ``new`` where ``keep`` [B] is true and ``old`` elsewhere.

    This is how masked (padding) steps leave the state unchanged.
    """

    def pick(n: Tensor, o: Tensor) -> Tensor:
        k = keep.reshape(keep.shape + (1,) * (n.dim() - 1))
        return torch.where(k, n, o)

    return zip_state(pick, new, old)


def state_features(state: State) -> Tensor:
    """Flatten a state into [B, F] features, for encoders that look at the state."""
    parts = [t.reshape(t.shape[0], -1).float() for t in state_tensors(state)]
    if not parts:
        raise ValueError("the model state holds no tensors, so it has no features to encode")
    return torch.cat(parts, dim=-1)


def latent_dim(model: nn.Module) -> int:
    """Size of z_t, read off the prior of the initial state."""
    prior = model.prior(model.initial_state(1))
    if len(prior.event_shape) != 1:
        raise ValueError(
            f"the prior must have event shape [Dz]; got {tuple(prior.event_shape)} "
            "(wrap a Normal in torch.distributions.Independent(..., 1))"
        )
    return int(prior.event_shape[0])


def state_dim(model: nn.Module) -> int:
    """Number of features in a flattened state."""
    return int(state_features(model.initial_state(1)).shape[-1])


@torch.no_grad()
def sample_sequences(model: nn.Module, batch_size: int, steps: int) -> tuple[Tensor, Tensor]:
    """Ancestral sampling of ``batch_size`` sequences: returns x [B, T, ...] and z [B, T, Dz]."""
    state = model.initial_state(batch_size)
    xs, zs = [], []
    for _ in range(steps):
        z = model.prior(state).sample()
        x = model.likelihood(z, state).sample()
        state = model.transition(state, z, x)
        xs.append(x)
        zs.append(z)
    return torch.stack(xs, dim=1), torch.stack(zs, dim=1)

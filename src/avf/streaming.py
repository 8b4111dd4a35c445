"""Online filtering of B live streams, one observation per call, in constant memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avf.filtering import filter_step
from avf.inference.base import InferenceProcedure
from avf.model import check_model, detach_state, select_state
from avf.validation import check_finite_terms, observation_shape


@dataclass
class StreamStep:
    """What one call returns for every stream (all detached)."""

    params: Tensor  # posterior parameters λ_t [B, P]
    free_energy: Tensor  # F_t [B] (β = 1)
    recon: Tensor
    kl: Tensor
    trace: Tensor  # [B, K+1] F_t after each inference iteration
    prediction: Tensor  # E[x_{t+1} | x_≤t] under the prior mean of z_{t+1}


class StreamingFilter:
    """Holds the state of B streams; :meth:`step` takes x_t [B, ...] and returns the posterior.

    Nothing from earlier steps is kept, so memory does not grow with the number of steps. A
    ``active`` mask [B] lets some streams skip a call (their state stays as it was). Models with a
    :meth:`precompute` hook must produce the same result without it (it is only a speed-up for
    whole sequences), so streaming never calls it.
    """

    def __init__(self, model: nn.Module, inference: InferenceProcedure, batch_size: int,
                 n_samples: int = 1) -> None:
        check_model(model)
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.model = model
        self.inference = inference
        self.batch_size = batch_size
        self.n_samples = n_samples
        self.obs_shape = observation_shape(model)
        self.reset()

    def reset(self) -> None:
        """Start every stream afresh."""
        with torch.no_grad():
            self.state = detach_state(self.model.initial_state(self.batch_size))
        device = next(iter(self.model.parameters()), torch.empty(0)).device
        self.carry = self.inference.initial_carry(self.batch_size, device)
        self.steps_seen = 0

    def _check(self, x: Tensor) -> None:
        expected = (self.batch_size, *self.obs_shape)
        if tuple(x.shape) != expected:
            raise ValueError(f"x_t must have shape {expected} ([B, ...]), got {tuple(x.shape)}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError("x_t contains NaN or inf")

    def step(self, x: Tensor, active: Tensor | None = None) -> StreamStep:
        """Filter one observation per stream and predict the next one."""
        self._check(x)
        with torch.no_grad():
            out = filter_step(self.model, self.inference, self.state, self.carry, x,
                              n_samples=self.n_samples)
            live = active.bool() if active is not None else None
            check_finite_terms(self.steps_seen, live, reconstruction=out.terms.recon,
                               kl=out.terms.kl)
            new_state = detach_state(out.state)
            if active is not None:
                keep = active.bool()
                new_state = select_state(keep, new_state, self.state)
                if out.carry is not None and self.carry is not None:
                    out.carry = select_state(keep, out.carry, self.carry)
            self.state = new_state
            self.carry = detach_state(out.carry) if out.carry is not None else None
            self.steps_seen += 1
            next_prior = self.model.prior(self.state)
            prediction = self.model.likelihood(next_prior.mean, self.state).mean
        return StreamStep(
            params=out.params.detach(),
            free_energy=out.terms.free_energy.detach(),
            recon=out.terms.recon.detach(),
            kl=out.terms.kl.detach(),
            trace=torch.stack(out.trace, dim=-1).detach(),
            prediction=prediction.detach(),
        )

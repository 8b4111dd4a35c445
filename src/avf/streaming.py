"""Online filtering of B live streams, one observation per call, in constant memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from avf.filtering import filter_step
from avf.inference.base import InferenceProcedure
from avf.model import check_model, detach_state, map_state, select_state
from avf.validation import check_finite_terms, check_integer, observation_shape


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

    def forecast(self, horizon: int, samples: int = 1,
                 observations: Literal["sample", "mean"] = "sample") -> Forecast:
        """Imagined continuations of every stream from where filtering stands, as a world model
        would roll out: each step draws z from the prior and an observation from the likelihood
        (``"sample"``) or takes its mean (``"mean"``), and feeds that back as if observed.

        The filter's own state is left as it was, so :meth:`step` can go on with real data.
        """
        check_integer("horizon", horizon, 1)
        check_integer("samples", samples, 1)
        if observations not in ("sample", "mean"):
            raise ValueError(f"observations must be 'sample' or 'mean', got {observations!r}")
        with torch.no_grad():
            state = map_state(lambda t: t.repeat_interleave(samples, dim=0), self.state)
            xs, zs = [], []
            for _ in range(horizon):
                z = self.model.prior(state).sample()
                likelihood = self.model.likelihood(z, state)
                x = likelihood.sample() if observations == "sample" else likelihood.mean
                state = self.model.transition(state, z, x)
                xs.append(x)
                zs.append(z)
        split = (self.batch_size, samples, horizon)
        x_all, z_all = torch.stack(xs, dim=1), torch.stack(zs, dim=1)
        return Forecast(x_all.reshape(*split, *x_all.shape[2:]),
                        z_all.reshape(*split, *z_all.shape[2:]))


@dataclass
class Forecast:
    """Rolled-out futures: ``x`` [B, samples, horizon, ...] and ``z`` [B, samples, horizon, Dz]
    (stream-major: the samples of stream b are ``x[b]``)."""

    x: Tensor
    z: Tensor

"""The univariate nonlinear growth model (Kitagawa 1987; Gordon, Salmond & Smith 1993).

z_1 ~ N(0, σ₀²),
z_t = z_{t-1}/2 + 25 z_{t-1}/(1 + z_{t-1}²) + 8 cos(1.2 t) + N(0, σ_z²),
x_t = z_t²/20 + N(0, σ_x²).

The observation sees z_t² only, so the sign of z_t is ambiguous and the filtering posterior is
often bimodal. That makes it the standard stress test for particle filters, and a case where a
unimodal Gaussian posterior (the default family) must fail: a test of inference, not of fitting.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from avf.model import StepModel

GrowthState = tuple[Tensor, Tensor, Tensor]
"""(z_prev [B, 1], t [B] index of the step about to be predicted, first [B] bool)."""


class NonlinearGrowth(StepModel):
    """The growth model with fixed (non-learnable) variances, kept as buffers.

    It has no trainable parameters: it exists to evaluate inference against a known,
    deliberately multimodal posterior.
    """

    latent_dim = 1
    obs_dim = 1

    def __init__(self, prior_var: float = 5.0, process_var: float = 10.0,
                 obs_var: float = 1.0) -> None:
        super().__init__()
        for name, value in (("prior_var", prior_var), ("process_var", process_var),
                            ("obs_var", obs_var)):
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"{name} must be a positive finite number, got {value}")
            self.register_buffer(name, torch.tensor(float(value)))

    def initial_state(self, batch_size: int) -> GrowthState:
        ref = self.prior_var
        z_prev = torch.zeros(batch_size, 1, dtype=ref.dtype, device=ref.device)
        t = torch.ones(batch_size, dtype=ref.dtype, device=ref.device)
        first = torch.ones(batch_size, dtype=torch.bool, device=ref.device)
        return z_prev, t, first

    def drift(self, z_prev: Tensor, t: Tensor) -> Tensor:
        """Mean of z_t given z_{t-1}; ``t`` [B] is the index of the step being predicted."""
        return z_prev / 2 + 25 * z_prev / (1 + z_prev**2) + 8 * torch.cos(1.2 * t)[:, None]

    def prior(self, state: GrowthState) -> Independent:
        z_prev, t, first = state
        loc = torch.where(first[:, None], torch.zeros_like(z_prev), self.drift(z_prev, t))
        var = torch.where(first[:, None], self.prior_var, self.process_var)
        return Independent(Normal(loc, var.sqrt().expand_as(loc)), 1)

    def likelihood(self, z: Tensor, state: GrowthState) -> Independent:
        loc = z**2 / 20
        return Independent(Normal(loc, self.obs_var.sqrt().expand_as(loc)), 1)

    def transition(self, state: GrowthState, z: Tensor, x: Tensor) -> GrowthState:
        _, t, first = state
        return z, t + 1, torch.zeros_like(first)

"""Posterior families: a flat parameter tensor λ [B, P] ↔ a distribution over z_t.

Inference procedures only see λ, so a new family plugs in without touching them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor
from torch.distributions import (
    Distribution,
    Independent,
    MultivariateNormal,
    Normal,
    kl,
    register_kl,
)


class PosteriorFamily(ABC):
    """Maps parameters to distributions and initialises parameters from the prior."""

    @abstractmethod
    def num_params(self, latent_dim: int) -> int:
        """Length P of λ for a latent of size ``latent_dim``."""

    @abstractmethod
    def distribution(self, params: Tensor) -> Distribution:
        """q(z_t) for λ [B, P]: batch shape [B], event shape [Dz]."""

    @abstractmethod
    def params_from(self, dist: Distribution) -> Tensor:
        """λ closest to ``dist`` (used to start inference at the prior)."""

    def blocks(self, params: Tensor) -> list[Tensor]:
        """λ split into the blocks an inference network encodes separately."""
        return [params]

    def kl_gradient(self, params: Tensor, prior: Distribution) -> Tensor | None:
        """∇_λ KL(q_λ ‖ prior) in closed form, or None where the family has none for this prior
        (the caller then differentiates the KL by autograd)."""
        return None


class DiagonalGaussian(PosteriorFamily):
    """N(mean, diag(exp(log_var))) with λ = (mean, log-variance).

    Initialisation from the prior matches its mean and marginal variances, so any prior with
    ``mean`` and ``variance`` works (full-covariance Gaussians included).
    """

    min_log_var = -20.0
    max_log_var = 20.0

    def num_params(self, latent_dim: int) -> int:
        return 2 * latent_dim

    def split(self, params: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = params.chunk(2, dim=-1)
        return mean, log_var

    def distribution(self, params: Tensor) -> Distribution:
        mean, log_var = self.split(params)
        log_var = log_var.clamp(self.min_log_var, self.max_log_var)
        return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)

    def params_from(self, dist: Distribution) -> Tensor:
        mean, var = dist.mean, dist.variance
        return torch.cat([mean, var.clamp_min(1e-30).log()], dim=-1)

    def blocks(self, params: Tensor) -> list[Tensor]:
        return list(self.split(params))

    def _reparameterised(self) -> bool:
        """Whether a subclass maps λ to q differently, which the closed form would not know."""
        cls = type(self)
        return (cls.distribution is not DiagonalGaussian.distribution
                or cls.split is not DiagonalGaussian.split)

    def kl_gradient(self, params: Tensor, prior: Distribution) -> Tensor | None:
        """∇_λ KL(q_λ ‖ prior) for a diagonal Gaussian prior N(m, s²), else None.

        ∂KL/∂mean = (mean − m)/s² and ∂KL/∂log_var = (exp(log_var)/s² − 1)/2, zero where the
        log-variance is clamped (as the clamp's own gradient is). AVF needs this gradient at
        every step and iteration; written out, it costs a few elementwise operations instead of
        the KL's backward pass.
        """
        if not (isinstance(prior, Independent) and isinstance(prior.base_dist, Normal)
                and prior.reinterpreted_batch_ndims == 1) or self._reparameterised():
            return None
        mean, log_var = self.split(params.detach())
        p_mean, p_var = prior.base_dist.loc.detach(), prior.base_dist.scale.detach().square()
        if p_mean.shape != mean.shape:
            return None
        inside = (log_var >= self.min_log_var) & (log_var <= self.max_log_var)
        var = log_var.clamp(self.min_log_var, self.max_log_var).exp()
        d_log_var = torch.where(inside, 0.5 * (var / p_var - 1), torch.zeros_like(var))
        return torch.cat([(mean - p_mean) / p_var, d_log_var], dim=-1)


@register_kl(Independent, MultivariateNormal)
def _kl_diag_normal_mvn(q: Independent, p: MultivariateNormal) -> Tensor:
    """KL(diagonal Gaussian ‖ full Gaussian), so full-covariance priors keep a closed-form KL."""
    if not isinstance(q.base_dist, Normal) or q.reinterpreted_batch_ndims != 1:
        raise NotImplementedError
    q_full = MultivariateNormal(q.base_dist.loc, scale_tril=torch.diag_embed(q.base_dist.scale))
    return kl.kl_divergence(q_full, p)

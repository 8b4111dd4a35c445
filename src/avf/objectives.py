"""The per-step free energy F_t = E_q[-log p(x_t | ·)] + β·KL(q ‖ p), and its pieces."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, MultivariateNormal, Normal, kl_divergence

from avf.model import State


@dataclass
class StepTerms:
    """Free-energy terms of one step for each batch element (all [B])."""

    recon: Tensor
    kl: Tensor
    objective: Tensor  # recon + beta * kl
    z: Tensor  # samples used for the reconstruction term, [S, B, Dz]

    @property
    def free_energy(self) -> Tensor:
        """The true free energy (β = 1), whatever β the objective uses."""
        return self.recon + self.kl


def log_prob_per_example(dist: Distribution, x: Tensor, sample_dims: int) -> Tensor:
    """log p(x) summed over everything after the sample and batch dimensions."""
    lp = dist.log_prob(x)
    keep = sample_dims + 1
    if lp.dim() > keep:
        lp = lp.flatten(keep).sum(-1)
    return lp


def kl_term(q: Distribution, p: Distribution, z: Tensor) -> Tensor:
    """Closed-form KL where torch knows it, else a Monte Carlo estimate from the samples ``z``."""
    try:
        return kl_divergence(q, p)
    except NotImplementedError:
        return (q.log_prob(z) - p.log_prob(z)).mean(0)


def antithetic_rsample(q: Distribution, n_samples: int) -> Tensor:
    """``n_samples`` reparameterised samples of a Gaussian ``q`` in pairs (ε, −ε) about its mean.

    Each pair averages to q's mean, so it cancels the odd terms of anything expanded around
    it: a gradient estimated from pairs is less noisy than one from as many independent samples
    (exact for the mean's gradient where the log-likelihood is quadratic in z), at the same cost.
    Normal (also inside ``Independent``) and MultivariateNormal only.
    """
    if n_samples < 2 or n_samples % 2:
        raise ValueError("antithetic samples come in pairs: n_samples must be even and at "
                         f"least 2, got {n_samples}")
    base = q
    while isinstance(base, Independent):
        base = base.base_dist
    if not isinstance(base, (Normal, MultivariateNormal)):
        raise ValueError("antithetic samples need a Normal or MultivariateNormal posterior, got "
                         f"{type(base).__name__}")
    eps = torch.randn((n_samples // 2, *base.loc.shape), dtype=base.loc.dtype,
                      device=base.loc.device)
    noise = torch.cat([eps, -eps])
    if isinstance(base, Normal):
        return base.loc + base.scale * noise
    return base.loc + (base.scale_tril @ noise.unsqueeze(-1)).squeeze(-1)


def step_terms(
    model: nn.Module, state: State, prior: Distribution, x: Tensor, q: Distribution,
    n_samples: int = 1, beta: float = 1.0, antithetic: bool = False,
) -> StepTerms:
    """Estimate F_t with ``n_samples`` reparameterised samples and the KL in closed form.

    ``antithetic`` draws the samples in pairs (ε, −ε) (:func:`antithetic_rsample`).
    """
    z = antithetic_rsample(q, n_samples) if antithetic else q.rsample((n_samples,))
    recon = -log_prob_per_example(model.likelihood(z, state), x, sample_dims=1).mean(0)
    kl = kl_term(q, prior, z)
    return StepTerms(recon=recon, kl=kl, objective=recon + beta * kl, z=z)


def detach_distribution(dist: Distribution) -> Distribution:
    """A copy of ``dist`` whose tensors are cut from the graph (the prior as a constant)."""
    out = copy.copy(dist)
    for name, value in vars(dist).items():
        if isinstance(value, Tensor):
            setattr(out, name, value.detach())
        elif isinstance(value, Distribution):
            setattr(out, name, detach_distribution(value))
    return out

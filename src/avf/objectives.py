"""The per-step free energy F_t = E_q[-log p(x_t | ·)] + β·KL(q ‖ p), and its pieces."""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

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


def step_terms(
    model: nn.Module, state: State, prior: Distribution, x: Tensor, q: Distribution,
    n_samples: int = 1, beta: float = 1.0,
) -> StepTerms:
    """Estimate F_t with ``n_samples`` reparameterised samples and the KL in closed form."""
    z = q.rsample((n_samples,))
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

"""The deep Markov model of Krishnan, Shalit & Sontag (2017), with its gated transition.

    p(z_t | z_{t-1}) = N(μ(z_{t-1}), diag σ(z_{t-1})²),
    p(x_t | z_t)     = Bernoulli(logits from an MLP on z_t),

where μ mixes a linear and a nonlinear proposal through a learned gate, so the model can stay
near-linear where that fits and bend where it must. The chain starts from a learned z_0. The
state is z_{t-1} alone: the model has no deterministic recurrence.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, Normal

from avf.model import StepModel
from avf.nn.activations import mlp


class GatedTransition(nn.Module):
    """(μ, σ) of p(z_t | z_{t-1}): μ = (1 − g) ⊙ L z_{t-1} + g ⊙ h, σ = softplus(W ReLU(h) + b).

    g = sigmoid(MLP(z_{t-1})) is the gate and h = MLP(z_{t-1}) the nonlinear proposal; the
    linear map L starts at the identity, so an untrained model starts close to a random walk.
    """

    def __init__(self, latent_dim: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Sequential(mlp(latent_dim, hidden, 1), nn.Linear(hidden, latent_dim))
        self.proposal = nn.Sequential(mlp(latent_dim, hidden, 1), nn.Linear(hidden, latent_dim))
        self.linear = nn.Linear(latent_dim, latent_dim)
        self.scale = nn.Linear(latent_dim, latent_dim)
        with torch.no_grad():
            self.linear.weight.copy_(torch.eye(latent_dim))
            self.linear.bias.zero_()

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        gate = torch.sigmoid(self.gate(z))
        proposal = self.proposal(z)
        mean = (1 - gate) * self.linear(z) + gate * proposal
        scale = nn.functional.softplus(self.scale(torch.relu(proposal)))
        return mean, scale


class DMM(StepModel):
    """Deep Markov model with Bernoulli observations (defaults as for polyphonic music)."""

    def __init__(
        self,
        x_dim: int = 88,
        latent_dim: int = 100,
        transition_dim: int = 200,
        emission_dim: int = 100,
        emission_layers: int = 2,
    ) -> None:
        super().__init__()
        self.x_dim = x_dim
        self.latent_dim = latent_dim
        self.z_0 = nn.Parameter(torch.zeros(latent_dim))
        self.transition_net = GatedTransition(latent_dim, transition_dim)
        self.emission = mlp(latent_dim, emission_dim, emission_layers)
        self.emission_head = nn.Linear(self.emission.out_features, x_dim)

    def initial_state(self, batch_size: int) -> Tensor:
        return self.z_0.expand(batch_size, self.latent_dim)

    def prior(self, state: Tensor) -> Independent:
        mean, scale = self.transition_net(state)
        return Independent(Normal(mean, scale), 1)

    def likelihood(self, z: Tensor, state: Tensor) -> Independent:
        return Independent(Bernoulli(logits=self.emission_head(self.emission(z))), 1)

    def transition(self, state: Tensor, z: Tensor, x: Tensor) -> Tensor:
        return z

    def baseline_encoder(self, rnn_dim: int = 600) -> nn.Module:
        """The filtering version of the DMM's combiner encoder (see ``DMMEncoder``)."""
        from avf.models.encoders import DMMEncoder  # lazy: models do not depend on inference

        return DMMEncoder(self.x_dim, self.latent_dim, rnn_dim)

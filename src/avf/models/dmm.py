"""The deep Markov model of Krishnan, Shalit & Sontag (2017), with its gated transition.

    p(z_t | z_{t-1}) = N(μ(z_{t-1}), diag σ(z_{t-1})²),
    p(x_t | z_t)     = Bernoulli(logits from an MLP on z_t),

where μ mixes a linear and a nonlinear proposal through a learned gate, so the model can stay
near-linear where that fits and bend where it must. The chain starts from a learned z_0. The
state is z_{t-1} alone: the model has no deterministic recurrence.

With AVF, use the iterative model's ``encoding="layernorm"``. The state is the sample z itself,
the transition is unbounded in z, and AVF starts every posterior at the prior; ``signlog`` feeds
the posterior parameters to the update network raw, so the updates grew with the parameters,
and the parameters, through z and the next prior, with the updates. On JSB that diverged within
8 epochs at learning rate 1e-4 and within 14 updates at 1e-3 (|z| up to 10²–10⁴, then σ = 0);
with ``layernorm`` the same runs trained (BENCHMARKS §5.11).

``prior_log_var_range`` (off by default, as in the paper) bounds log σ² softly. Nothing else
bounds the latent's scale (KL and likelihood do not change if z and the networks are rescaled
together), and with AVF it drifted: with ``layernorm`` and x_t at learning rate 1e-3, |z| grew to
10² and σ reached 0 in epoch 17, while with the bound [-14, 4] the run trained. The shipped DMM
configs set that bound, for the baseline too, so that both train the same model. On its own,
with ``signlog``, the bound removes the σ = 0 crash but not the divergence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, Normal

from avf.model import StepModel
from avf.models.observations import prior_log_var_bounds, soft_clamp
from avf.nn.activations import mlp


class GatedTransition(nn.Module):
    """(μ, σ) of p(z_t | z_{t-1}): μ = (1 − g) ⊙ L z_{t-1} + g ⊙ h, σ = softplus(W ReLU(h) + b).

    g = sigmoid(MLP(z_{t-1})) is the gate and h = MLP(z_{t-1}) the nonlinear proposal; the
    linear map L starts at the identity, so an untrained model starts close to a random walk.
    With ``log_var_range``, log σ² is softly bounded to it (see the module docstring).
    """

    def __init__(self, latent_dim: int, hidden: int,
                 log_var_range: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.log_var_range = log_var_range
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
        if self.log_var_range is not None:
            # the floor keeps log finite where softplus underflows; soft_clamp lifts it far above
            log_var = soft_clamp(2 * torch.log(scale.clamp_min(1e-30)), *self.log_var_range)
            scale = torch.exp(0.5 * log_var)
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
        prior_log_var_range: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.x_dim = x_dim
        self.latent_dim = latent_dim
        self.z_0 = nn.Parameter(torch.zeros(latent_dim))
        self.transition_net = GatedTransition(latent_dim, transition_dim,
                                              prior_log_var_bounds(prior_log_var_range))
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

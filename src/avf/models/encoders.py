"""The filtering encoders the deep models' own papers proposed: their baselines against AVF.

Each is a direct (one-pass) inference procedure built for one model's state, so it lives with
the models; build one with ``model.baseline_encoder(...)``. All of them see the state as the
engine hands it over: detached, a constant for the inference loss.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem
from avf.nn.activations import ClippedLeakyReLU, mlp
from avf.posteriors import PosteriorFamily


class SRNNEncoder(InferenceProcedure):
    """q(z_t | x_t, d_t): an MLP on [x_t, d_t], with d_t read from SRNN's state.

    This is SRNN's filtering encoder as the AVF paper used it (one 500-unit layer for music,
    two of 512 for TIMIT); the full SRNN encoder also runs a backward RNN over future data,
    which filtering cannot use. It reads x_t as it comes, binary or continuous.
    """

    def __init__(self, x_dim: int, rnn_dim: int, latent_dim: int, hidden: int = 500,
                 layers: int = 1, family: PosteriorFamily | None = None) -> None:
        super().__init__(family)
        self.body = mlp(x_dim + rnn_dim, hidden, layers, ClippedLeakyReLU)
        self.head = nn.Linear(self.body.out_features, self.family.num_params(latent_dim))

    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        x = problem.x.to(problem.state["d"].dtype)
        params = self.head(self.body(torch.cat([x, problem.state["d"]], -1)))
        return InferenceResult(params=params, carry=carry)


class VRNNEncoder(InferenceProcedure):
    """q(z_t | x_t, h_{t-1}): an MLP on [φ_x(x_t), h_{t-1}], as in Chung et al. (2015).

    φ_x is the model's feature extractor (θ). Here its output is a constant input, computed
    without a graph: the posterior parameters then never depend on θ, so the model learns with
    λ held fixed, and the inference loss cannot reach θ whatever optimiser is used. (Chung et
    al. train φ_x through both paths; in AVF's split each loss trains its own parameters.)
    Binary and continuous x_t alike go through φ_x.
    """

    def __init__(self, feature_dim: int, rnn_dim: int, latent_dim: int, hidden: int = 256,
                 layers: int = 1, family: PosteriorFamily | None = None) -> None:
        super().__init__(family)
        self.body = mlp(feature_dim + rnn_dim, hidden, layers)
        self.head = nn.Linear(self.body.out_features, self.family.num_params(latent_dim))

    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        h = problem.state["h"]
        with torch.no_grad():
            features = problem.model.phi_x(problem.x.to(h.dtype))
        params = self.head(self.body(torch.cat([features, h], -1)))
        return InferenceResult(params=params, carry=carry)


class DMMEncoder(InferenceProcedure):
    """The DMM's combiner encoder, made causal for filtering.

    Krishnan et al.'s structured encoder combines z_{t-1} with a *backward* RNN over x_≥t,
    which needs future data. The filtering version runs a forward GRU over x_≤t instead: its
    hidden state is this procedure's own ``carry`` (the model state holds only z_{t-1}) and is
    back-propagated through time by the inference loss. The combiner is the paper's,
    h = ½ (tanh(W z_{t-1} + b) + h_rnn), followed by a linear map to (mean, log-variance).
    """

    def __init__(self, x_dim: int, latent_dim: int, rnn_dim: int = 600,
                 family: PosteriorFamily | None = None) -> None:
        super().__init__(family)
        self.rnn = nn.GRUCell(x_dim, rnn_dim)
        self.h_0 = nn.Parameter(torch.zeros(rnn_dim))
        self.combine_z = nn.Linear(latent_dim, rnn_dim)
        self.head = nn.Linear(rnn_dim, self.family.num_params(latent_dim))

    def initial_carry(self, batch_size: int, device: torch.device) -> Tensor:
        return self.h_0.to(device).expand(batch_size, -1)

    def forward(self, problem: StepProblem, carry: Tensor | None = None) -> InferenceResult:
        z_prev = problem.state
        if carry is None:
            carry = self.initial_carry(z_prev.shape[0], z_prev.device)
        h = self.rnn(problem.x.to(z_prev.dtype), carry)
        combined = 0.5 * (torch.tanh(self.combine_z(z_prev)) + h)
        return InferenceResult(params=self.head(combined), carry=h)

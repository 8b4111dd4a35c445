"""Direct amortized inference: λ = encoder(x_t, features of the state) in one pass."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem
from avf.model import state_features
from avf.nn import HighwayMLP
from avf.posteriors import PosteriorFamily


class Direct(InferenceProcedure):
    """The classic filtering encoder, and the baseline the paper compares AVF against.

    Inputs are x_t (flattened), the prior's parameters and the flattened model state; each can
    be switched off. Subclasses for specific models (SVG's posterior LSTM, for instance) may
    override :meth:`initial_carry` and :meth:`forward` to keep their own recurrent state.
    """

    def __init__(
        self,
        x_dim: int,
        latent_dim: int,
        state_dim: int = 0,
        hidden: int = 256,
        layers: int = 2,
        use_prior: bool = True,
        family: PosteriorFamily | None = None,
    ) -> None:
        super().__init__(family)
        self.use_state = state_dim > 0
        self.use_prior = use_prior
        n_params = self.family.num_params(latent_dim)
        in_features = x_dim + state_dim + (n_params if use_prior else 0)
        self.body = HighwayMLP(in_features, hidden, layers)
        self.head = nn.Linear(hidden, n_params)

    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        x = problem.x
        inputs = [x.reshape(x.shape[0], -1)]
        if self.use_prior:
            inputs.append(problem.prior_params())
        if self.use_state:
            inputs.append(state_features(problem.state).detach())
        params = self.head(self.body(torch.cat(inputs, dim=-1)))
        return InferenceResult(params=params, carry=carry)

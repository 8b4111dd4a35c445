"""VRNN, the variational recurrent neural network of Chung et al. (2015).

A recurrent hidden state h_{t-1} summarises x_<t and z_<t; feature extractors φ_x and φ_z
(MLPs) process observations and latents before they enter the networks:

    p(z_t | h_{t-1})      = N(μ, diag σ²) from an MLP on h_{t-1},
    p(x_t | z_t, h_{t-1}) = Bernoulli or N(mean, diag σ²) from an MLP on [φ_z(z_t), h_{t-1}],
    h_t                   = RNN([φ_x(x_t), φ_z(z_t)], h_{t-1}).

The recurrence takes z_t, so unlike SRNN nothing here can be precomputed from x alone.

Observations are Bernoulli (binary data such as piano rolls) or Gaussian with a learned,
input-dependent variance (raw speech, as in Chung et al. and the AVF paper); the decoder heads
are in :mod:`avf.models.observations`, shared with SRNN.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from avf.model import StepModel
from avf.models.observations import LOG_VAR_RANGE, Output, observation, observation_outputs
from avf.nn.activations import mlp
from avf.nn.concat import mlp_of_concat

VRNNState = dict[str, Tensor]
"""``h`` [B, H] = h_{t-1}; with ``rnn="lstm"`` also ``c`` [B, H], the LSTM's cell."""


class VRNN(StepModel):
    """VRNN; ``layers`` hidden layers in every MLP (ReLU).

    Widths: ``feature_dim`` for φ_x (and φ_z unless ``z_feature_dim`` is given), ``hidden`` for
    the prior (and the decoder unless ``decoder_hidden`` is given). Chung et al.'s speech set-up,
    which the AVF paper's TIMIT experiment uses, has φ_x and the decoder 600 wide, φ_z and the
    prior 500 (see experiments/speech/timit_vrnn_*.toml).

    ``output`` picks the observation model (see :func:`observation_outputs`); ``bin_width`` is
    the data's quantisation step for discretised scoring (Gaussian output only), used while
    ``discretized`` is set, e.g. by :func:`avf.discretized.discretized`.
    """

    def __init__(
        self,
        x_dim: int = 88,
        latent_dim: int = 32,
        rnn_dim: int = 256,
        feature_dim: int = 256,
        hidden: int = 256,
        layers: int = 1,
        rnn: Literal["lstm", "gru"] = "lstm",
        output: Output = "bernoulli",
        bin_width: float | None = None,
        log_var_range: Sequence[float] = LOG_VAR_RANGE,
        z_feature_dim: int | None = None,
        decoder_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn must be 'lstm' or 'gru', got {rnn!r}")
        per_dim = observation_outputs(output, bin_width, log_var_range)
        self.x_dim = x_dim
        self.latent_dim = latent_dim
        self.rnn_dim = rnn_dim
        self.output, self.bin_width = output, bin_width
        self.log_var_range = (float(log_var_range[0]), float(log_var_range[1]))
        self.discretized = False  # a plain flag: scoring mode, not part of the state_dict
        self.phi_x = mlp(x_dim, feature_dim, layers)
        self.phi_z = mlp(latent_dim, z_feature_dim or feature_dim, layers)
        self.prior_net = mlp(rnn_dim, hidden, layers)
        self.prior_head = nn.Linear(self.prior_net.out_features, 2 * latent_dim)
        self.decoder = mlp(self.phi_z.out_features + rnn_dim, decoder_hidden or hidden, layers)
        self.decoder_head = nn.Linear(self.decoder.out_features, per_dim * x_dim)
        cell = nn.LSTMCell if rnn == "lstm" else nn.GRUCell
        self.cell = cell(self.phi_x.out_features + self.phi_z.out_features, rnn_dim)

    def initial_state(self, batch_size: int) -> VRNNState:
        h = self.prior_head.weight.new_zeros(batch_size, self.rnn_dim)
        return {"h": h, "c": torch.zeros_like(h)} if self._lstm else {"h": h}

    def prior(self, state: VRNNState) -> Independent:
        mean, log_var = self.prior_head(self.prior_net(state["h"])).chunk(2, -1)
        return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)

    def likelihood(self, z: Tensor, state: VRNNState) -> Independent:
        out = self.decoder_head(mlp_of_concat(self.decoder, [self.phi_z(z), state["h"]]))
        return observation(out, self.output, self.bin_width if self.discretized else None,
                           self.log_var_range)

    def transition(self, state: VRNNState, z: Tensor, x: Tensor) -> VRNNState:
        inputs = torch.cat([self.phi_x(x.to(z.dtype)), self.phi_z(z)], -1)
        if self._lstm:
            h, c = self.cell(inputs, (state["h"], state["c"]))
            return {"h": h, "c": c}
        return {"h": self.cell(inputs, state["h"])}

    @property
    def _lstm(self) -> bool:
        return isinstance(self.cell, nn.LSTMCell)

    def baseline_encoder(self, hidden: int = 256, layers: int = 1) -> nn.Module:
        """VRNN's encoder q(z_t | φ_x(x_t), h_{t-1}) as a filtering baseline.

        φ_x is part of the model (θ); the encoder reads its output as a constant input, like
        the state, so the encoder's parameters φ are only its own MLP (see ``VRNNEncoder``).
        """
        from avf.models.encoders import VRNNEncoder  # lazy: models do not depend on inference

        return VRNNEncoder(self.phi_x.out_features, self.rnn_dim, self.latent_dim, hidden, layers)

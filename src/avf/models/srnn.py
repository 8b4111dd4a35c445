"""SRNN, the stochastic recurrent network of Fraccaro, Sønderby, Paquet & Winther (2016).

A deterministic LSTM runs over the past observations, d_t = LSTM(x_{t-1}, d_{t-1}) with
x_0 = 0, and a Markov chain of latents sits on top of it:

    p(z_t | z_{t-1}, d_t) = N(μ, diag σ²) from an MLP on [d_t, z_{t-1}],
    p(x_t | z_t, d_t)     = Bernoulli or N(mean, diag σ²) from an MLP on [d_t, z_t].

The Gaussian output (raw speech, as in the SRNN and AVF papers' TIMIT experiments) has a
learned, input-dependent variance, soft-limited as in :mod:`avf.models.vrnn`.

Defaults follow the AVF paper's reference setup for polyphonic music: 300 LSTM units, 100
latents, one 500-unit layer for the prior, two for the decoder, clipped leaky ReLUs.

``dropout`` (off by default; not in the papers) regularises the small music sets, where SRNN at
the paper's sizes overfits: in training mode it drops units of d_t where the prior, decoder and
encoders read it, with one mask per step that every inference iteration of that step shares (so
the free-energy gradients AVF sees belong to one model). The LSTM's recurrence keeps the
undropped output, carried in the state as ``h``.

Because d_t depends on x alone, :meth:`SRNN.precompute` runs the LSTM over a whole sequence as
one fused call. Without it (:class:`avf.StreamingFilter`) :meth:`SRNN.transition` steps the same
``nn.LSTM`` one observation at a time, so both paths compute the same numbers (with dropout in
training mode, the same numbers up to the random masks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from avf.model import StepModel
from avf.models.observations import (
    LOG_VAR_RANGE,
    Output,
    observation,
    observation_outputs,
    prior_log_var_bounds,
    soft_clamp,
)
from avf.nn.activations import ClippedLeakyReLU, mlp
from avf.nn.concat import mlp_of_concat

SRNNState = dict[str, Any]
"""``d`` [B, H] (the LSTM's output h), ``c`` [B, H] the LSTM's cell, ``z`` [B, Dz] = z_{t-1};
with ``dropout`` > 0, ``d`` is h with dropped units and ``h`` [B, H] the LSTM's own output;
``precomputed: True`` when d and c come from :meth:`SRNN.precompute` (then the transition leaves
them to the next step's context instead of stepping the LSTM)."""


class SRNN(StepModel):
    """SRNN's generative model with a forward LSTM over x_<t.

    ``output``, ``bin_width`` and ``log_var_range`` are as for :class:`avf.models.VRNN`:
    Bernoulli or Gaussian observations, and the quantisation step that discretised scoring
    (``discretized`` set, e.g. by :func:`avf.discretized.discretized`) integrates over.

    ``prior_log_var_range`` (off by default, as in the paper) bounds the prior's log σ² softly,
    as the DMM's does. Unbounded, a prior dimension can become far sharper than any posterior
    needs: one model-agnostic AVF run on MuseData reached prior log-variances of −89 and +82 in
    training, and the KL's gradient overflowed at epoch 261. Resumed with the bound it trained
    on, but z still ran away on some windows, so the bound is a guard, not a cure (BENCHMARKS.md
    5.26).
    """

    def __init__(
        self,
        x_dim: int = 88,
        latent_dim: int = 100,
        rnn_dim: int = 300,
        hidden: int = 500,
        prior_layers: int = 1,
        decoder_layers: int = 2,
        output: Output = "bernoulli",
        bin_width: float | None = None,
        log_var_range: Sequence[float] = LOG_VAR_RANGE,
        dropout: float = 0.0,
        prior_log_var_range: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"SRNN dropout must be in [0, 1), got {dropout!r}")
        per_dim = observation_outputs(output, bin_width, log_var_range)
        self.x_dim = x_dim
        self.latent_dim = latent_dim
        self.rnn_dim = rnn_dim
        self.output, self.bin_width = output, bin_width
        self.log_var_range = (float(log_var_range[0]), float(log_var_range[1]))
        self.prior_log_var_range = prior_log_var_bounds(prior_log_var_range)
        self.discretized = False  # a plain flag: scoring mode, not part of the state_dict
        self.rnn = nn.LSTM(x_dim, rnn_dim, batch_first=True)
        self.d_dropout = nn.Dropout(dropout)
        joint = rnn_dim + latent_dim
        self.prior_net = mlp(joint, hidden, prior_layers, ClippedLeakyReLU)
        self.prior_head = nn.Linear(self.prior_net.out_features, 2 * latent_dim)
        self.decoder = mlp(joint, hidden, decoder_layers, ClippedLeakyReLU)
        self.decoder_head = nn.Linear(self.decoder.out_features, per_dim * x_dim)

    def initial_state(self, batch_size: int) -> SRNNState:
        zeros = self.prior_head.weight.new_zeros
        h, c = self.lstm_step(zeros(batch_size, self.x_dim), zeros(batch_size, self.rnn_dim),
                              zeros(batch_size, self.rnn_dim))
        return {**self._lstm_outputs(h, c), "z": zeros(batch_size, self.latent_dim)}

    def _lstm_outputs(self, h: Tensor, c: Tensor) -> dict[str, Tensor]:
        """The state's LSTM part: d (h after dropout), c, and h itself when dropout is on."""
        out = {"d": self.d_dropout(h), "c": c}
        if self.d_dropout.p > 0:
            out["h"] = h
        return out

    def prior(self, state: SRNNState) -> Independent:
        out = self.prior_head(self.prior_net(torch.cat([state["d"], state["z"]], -1)))
        mean, log_var = out.chunk(2, -1)
        if self.prior_log_var_range is not None:
            log_var = soft_clamp(log_var, *self.prior_log_var_range)
        return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)

    def likelihood(self, z: Tensor, state: SRNNState) -> Independent:
        # d_t meets the first layer once, not once per sample of z (avf.nn.concat)
        out = self.decoder_head(mlp_of_concat(self.decoder, [state["d"], z]))
        return observation(out, self.output, self.bin_width if self.discretized else None,
                           self.log_var_range)

    def transition(self, state: SRNNState, z: Tensor, x: Tensor) -> SRNNState:
        if state.get("precomputed", False):  # d_{t+1}, c_{t+1} arrive with the next context
            return {**state, "z": z}
        h, c = self.lstm_step(x, state.get("h", state["d"]), state["c"])
        return {**self._lstm_outputs(h, c), "z": z}

    def lstm_step(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """One LSTM step with the fused LSTM's own weights (a length-1 sequence)."""
        _, (h, c) = self.rnn(x[:, None].to(h.dtype), (h[None], c[None]))
        return h[0], c[0]

    def precompute(self, x: Tensor) -> dict[str, Tensor]:
        """d_1..d_T [B, T, H] from one fused LSTM call over (0, x_1, …, x_{T-1}), with the
        cells c (and h, when dropout is on) of the same steps."""
        inputs = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1).to(self.rnn.weight_ih_l0)
        zeros = inputs.new_zeros(1, x.shape[0], self.rnn_dim)
        d, _ = self.rnn(inputs, (zeros, zeros))
        with torch.no_grad():  # c only feeds encoders that read the state, as a constant
            c = self._cell_states(inputs, d.detach())
        return self._lstm_outputs(d, c)

    def use_precomputed(self, state: SRNNState, context_t: dict[str, Tensor]) -> SRNNState:
        return {**context_t, "z": state["z"], "precomputed": True}

    def _cell_states(self, inputs: Tensor, d: Tensor) -> Tensor:
        """The LSTM's c_t for every step, rebuilt from its outputs h_t = d_t.

        The fused call returns only the last c. Keeping every c_t in the state gives the state
        the same contents on both paths, so encoders that read the whole state (``Direct``)
        agree between whole-sequence and streaming filtering. Only the cheap elementwise
        recurrence c_t = f_t c_{t-1} + i_t g_t runs step by step; the gates are one product.
        """
        rnn = self.rnn
        h_prev = torch.cat([torch.zeros_like(d[:, :1]), d[:, :-1]], 1)
        gates = (nn.functional.linear(inputs, rnn.weight_ih_l0, rnn.bias_ih_l0)
                 + nn.functional.linear(h_prev, rnn.weight_hh_l0, rnn.bias_hh_l0))
        i, f, g, _ = gates.chunk(4, -1)  # PyTorch's gate order: input, forget, cell, output
        i, f, g = i.sigmoid(), f.sigmoid(), g.tanh()
        c = torch.zeros_like(d[:, 0])
        cells = []
        for t in range(d.shape[1]):
            c = f[:, t] * c + i[:, t] * g[:, t]
            cells.append(c)
        return torch.stack(cells, 1)

    def baseline_encoder(self, hidden: int = 500, layers: int = 1) -> nn.Module:
        """SRNN's filtering encoder q(z_t | x_t, d_t), as the AVF paper's baseline."""
        from avf.models.encoders import SRNNEncoder  # lazy: models do not depend on inference

        return SRNNEncoder(self.x_dim, self.rnn_dim, self.latent_dim, hidden, layers)

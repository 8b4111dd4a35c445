"""SVG-LP, stochastic video generation with a learned prior (Denton & Fergus, 2018).

Per frame t, with E a convolutional frame encoder and D its mirror-image decoder:

    g_{t-1}, skips_{t-1} = E(x_{t-1})                          (x_0 = 0)
    p(z_t | x_<t)        = N(μ, diag σ²) from LSTM_prior(g_{t-1})
    ĝ_t                  = LSTM_pred([g_{t-1}, z_t])
    p(x_t | x_<t, z_≤t)  = N(D(ĝ_t, skips_{t-1}), diag σ_x²)   (per-pixel mean and variance)

The decoder's skip connections come from the previous frame (SVG's ``last_frame_skip``), which is
what lets it copy the static background and spend z_t on what moves. SVG's posterior
q(z_t | x_≤t) = LSTM_post(E(x_t)) ships as the model's baseline, :class:`SVGPosterior`.

Departures from SVG, each for a reason:

* GroupNorm instead of BatchNorm: a step's likelihood must depend on that sequence alone
  (masked and padded sequences, one stream at a time, S samples of z in one batch).
* A Gaussian with a learned per-pixel variance instead of SVG's fixed-variance MSE, so the free
  energy is a likelihood bound in nats; the KL is not down-weighted (SVG used β = 1e-4 on
  SM-MNIST, 1e-6 on KTH): any β belongs to the trainer, never to the model.
* SVG's KTH run used a VGG-style frame encoder; this is the DCGAN-style one (SVG's SM-MNIST
  choice), 4×4 stride-2 convolutions down to 4×4 and a 4×4 convolution to g.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Normal

from avf.discretized import gaussian_observation
from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem
from avf.model import StepModel
from avf.posteriors import PosteriorFamily

LSTMState = tuple[Tensor, Tensor]
"""(h, c), each [B, L, H]: batch first, then one row per layer."""

SVGState = dict[str, Any]
"""``g`` [B, G] = E(x_{t-1}); ``skips``: E's feature maps of x_{t-1}, [B, C_i, H_i, W_i] from
the finest to the coarsest; ``prior``: LSTM_prior's (h, c) already stepped on g; ``predictor``:
LSTM_pred's (h, c) after step t-1 (it steps on [g, z_t] only once z_t is known)."""

PAPER_SIZES: dict[str, dict[str, Any]] = {
    "kth": {"channels": 1, "latent_dim": 24, "g_dim": 128, "rnn_dim": 256, "nf": 64,
            "predictor_layers": 2, "prior_layers": 1},
    "smmnist": {"channels": 1, "latent_dim": 10, "g_dim": 128, "rnn_dim": 256, "nf": 64,
                "predictor_layers": 2, "prior_layers": 1},
}
"""SVG-LP's sizes (Denton & Fergus, 2018); the posterior LSTM has 1 layer of ``rnn_dim``."""


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 8 groups: per-example statistics (see the module docstring)."""
    return nn.GroupNorm(math.gcd(channels, 8), channels)


def _down(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    """Halve the resolution (DCGAN block; the first one has no normalisation)."""
    layers = [nn.Conv2d(c_in, c_out, 4, 2, 1), _norm(c_out) if norm else nn.Identity()]
    return nn.Sequential(*layers, nn.LeakyReLU(0.2))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """Double the resolution (the decoder's mirror of :func:`_down`)."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), _norm(c_out), nn.LeakyReLU(0.2))


def _levels(image_size: int) -> int:
    """Stride-2 levels from ``image_size`` down to 4×4 (4 for 64×64, as in SVG)."""
    levels = round(math.log2(image_size / 4))
    if levels < 1 or 4 * 2**levels != image_size:
        raise ValueError(f"image_size must be a power of two of at least 8, got {image_size}")
    return levels


class FrameEncoder(nn.Module):
    """E: frame [B, C, S, S] → (g [B, g_dim] in (−1, 1), feature maps for the decoder's skips)."""

    def __init__(self, channels: int, nf: int, g_dim: int, image_size: int = 64) -> None:
        super().__init__()
        widths = [nf * 2**i for i in range(_levels(image_size))]
        pairs = zip([channels, *widths[:-1]], widths, strict=True)
        self.blocks = nn.ModuleList(_down(c_in, c_out, norm=i > 0)
                                    for i, (c_in, c_out) in enumerate(pairs))
        # no normalisation on g: on a 1×1 map GroupNorm would standardise the code itself
        self.head = nn.Sequential(nn.Conv2d(widths[-1], g_dim, 4, 1, 0), nn.Tanh())

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        skips = []
        for block in self.blocks:
            x = block(x)
            skips.append(x)
        return self.head(x).flatten(1), tuple(skips)


class FrameDecoder(nn.Module):
    """D: (g [B, g_dim], E's feature maps) → [B, out_channels, S, S], unbounded."""

    def __init__(self, out_channels: int, nf: int, g_dim: int, image_size: int = 64) -> None:
        super().__init__()
        widths = [nf * 2**i for i in range(_levels(image_size))]
        self.head = nn.Sequential(nn.ConvTranspose2d(g_dim, widths[-1], 4, 1, 0),
                                  _norm(widths[-1]), nn.LeakyReLU(0.2))
        self.blocks = nn.ModuleList(_up(2 * widths[i], widths[i - 1])
                                    for i in reversed(range(1, len(widths))))
        self.out = nn.ConvTranspose2d(2 * widths[0], out_channels, 4, 2, 1)

    def forward(self, g: Tensor, skips: tuple[Tensor, ...]) -> Tensor:
        h = self.head(g[..., None, None])
        for block, skip in zip(self.blocks, reversed(skips[1:]), strict=True):
            h = block(torch.cat([h, skip], 1))
        return self.out(torch.cat([h, skips[0]], 1))


class StackedLSTM(nn.Module):
    """SVG's recurrent block: a linear embedding, then ``layers`` LSTM cells, one step per call.

    Cells rather than ``nn.LSTM``: cuDNN's fused LSTM cannot back-propagate in eval mode, and AVF
    needs ∇_λ F_t through the predictor at test time.
    """

    def __init__(self, in_dim: int, hidden: int, layers: int = 1) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Linear(in_dim, hidden)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))

    def zeros(self, batch_size: int) -> LSTMState:
        h = self.embed.weight.new_zeros(batch_size, len(self.cells), self.hidden)
        return h, torch.zeros_like(h)

    def forward(self, inputs: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """Top layer's output [B, H] and the new (h, c)."""
        out = self.embed(inputs)
        hs, cs = [], []
        for cell, h, c in zip(self.cells, state[0].unbind(1), state[1].unbind(1), strict=True):
            h, c = cell(out, (h, c))
            hs.append(h)
            cs.append(c)
            out = h
        return out, (torch.stack(hs, 1), torch.stack(cs, 1))


def _repeat(t: Tensor, n: int) -> Tensor:
    """[B, ...] → [n·B, ...], sample-major, to match z [n, B, Dz] flattened."""
    return t.unsqueeze(0).expand(n, *t.shape).reshape(n * t.shape[0], *t.shape[1:])


class SVG(StepModel):
    """SVG-LP on frames [channels, image_size, image_size] with values in [0, 1].

    Defaults are small enough to train on two CPU cores (nf 16, g 64, LSTMs 128, z 10);
    :meth:`paper` gives SVG-LP's sizes. The observation is a Gaussian whose mean is a sigmoid and
    whose log-variance is the decoder's second set of output channels, squashed smoothly into
    ``log_var_range`` (a hard clamp would stop its gradient at the bounds; the floor keeps a
    density on 8-bit data from growing without bound on static pixels). ``bin_width`` is the
    quantisation step for discretised scoring (set ``discretized``, or use
    :func:`avf.discretized.discretized`); ``data_range`` gives the edge bins the whole tail.
    """

    def __init__(
        self,
        channels: int = 1,
        latent_dim: int = 10,
        g_dim: int = 64,
        rnn_dim: int = 128,
        nf: int = 16,
        predictor_layers: int = 2,
        prior_layers: int = 1,
        image_size: int = 64,
        log_var_range: tuple[float, float] = (-9.0, 0.0),
        bin_width: float | None = 1 / 256,
        data_range: tuple[float, float] | None = (0.0, 1.0),
    ) -> None:
        super().__init__()
        if not log_var_range[0] < log_var_range[1]:
            raise ValueError(f"log_var_range must be (low, high) with low < high, "
                             f"got {log_var_range}")
        self.channels, self.image_size = channels, image_size
        self.latent_dim, self.g_dim, self.rnn_dim = latent_dim, g_dim, rnn_dim
        self.log_var_range = log_var_range
        self.bin_width, self.data_range = bin_width, data_range
        self.discretized = False
        self.encoder = FrameEncoder(channels, nf, g_dim, image_size)
        self.decoder = FrameDecoder(2 * channels, nf, g_dim, image_size)
        self.prior_rnn = StackedLSTM(g_dim, rnn_dim, prior_layers)
        self.prior_head = nn.Linear(rnn_dim, 2 * latent_dim)
        self.predictor = StackedLSTM(g_dim + latent_dim, rnn_dim, predictor_layers)
        self.predictor_head = nn.Sequential(nn.Linear(rnn_dim, g_dim), nn.Tanh())

    @classmethod
    def paper(cls, dataset: Literal["kth", "smmnist"] = "kth", **overrides: Any) -> SVG:
        """SVG-LP at the sizes of Denton & Fergus on ``dataset`` (KTH: z 24; SM-MNIST: z 10)."""
        if dataset not in PAPER_SIZES:
            raise ValueError(f"unknown dataset {dataset!r}: use one of {sorted(PAPER_SIZES)}")
        return cls(**{**PAPER_SIZES[dataset], **overrides})

    def encode(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """E(x): the frame code g [B, g_dim] and the skip feature maps."""
        return self.encoder(x)

    def initial_state(self, batch_size: int) -> SVGState:
        """The state after "observing" x_0 = 0: the same for every sequence, so built once."""
        weight = self.prior_head.weight
        x0 = weight.new_zeros(1, self.channels, self.image_size, self.image_size)
        state = self._observe(x0, self.predictor.zeros(1), self.prior_rnn.zeros(1))
        return _expand_state(state, batch_size)

    def prior(self, state: SVGState) -> Independent:
        mean, log_var = self.prior_head(state["prior"][0][:, -1]).chunk(2, -1)
        return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)

    def likelihood(self, z: Tensor, state: SVGState) -> Independent:
        lead = z.shape[:-2]
        n = math.prod(lead)
        flat = z.reshape(-1, z.shape[-1])
        g_hat, _ = self._predict(flat, _repeat(state["g"], n),
                                 tuple(_repeat(t, n) for t in state["predictor"]))
        out = self.decoder(g_hat, tuple(_repeat(s, n) for s in state["skips"]))
        out = out.reshape(*z.shape[:-1], *out.shape[1:])
        mean, log_var = self._split_output(out)
        bin_width = self.bin_width if self.discretized else None
        low, high = self.data_range if self.data_range is not None else (None, None)
        return gaussian_observation(mean, torch.exp(0.5 * log_var), bin_width, event_dims=3,
                                    low=low, high=high)

    def transition(self, state: SVGState, z: Tensor, x: Tensor) -> SVGState:
        _, predictor = self._predict(z, state["g"], state["predictor"])
        return self._observe(x.to(z.dtype), predictor, state["prior"])

    def _predict(self, z: Tensor, g: Tensor, predictor: LSTMState) -> tuple[Tensor, LSTMState]:
        """ĝ_t from LSTM_pred([g_{t-1}, z_t]), and the predictor's new (h, c)."""
        out, predictor = self.predictor(torch.cat([g, z], -1), predictor)
        return self.predictor_head(out), predictor

    def _observe(self, x: Tensor, predictor: LSTMState, prior: LSTMState) -> SVGState:
        """Encode x_t and step the prior LSTM on it, so that :meth:`prior` is only its head."""
        g, skips = self.encode(x)
        _, prior = self.prior_rnn(g, prior)
        return {"g": g, "skips": skips, "prior": prior, "predictor": predictor}

    def _split_output(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder channels → (mean in (0, 1), log-variance smoothly inside log_var_range)."""
        logits, raw = out.split(self.channels, dim=-3)
        low, high = self.log_var_range
        return torch.sigmoid(logits), low + (high - low) * torch.sigmoid(raw)

    def baseline_encoder(self, rnn_dim: int | None = None, layers: int = 1,
                         family: PosteriorFamily | None = None) -> SVGPosterior:
        """SVG's posterior LSTM q(z_t | x_≤t) (1 layer of ``rnn_dim``, the model's by default)."""
        return SVGPosterior(self.g_dim, self.latent_dim, rnn_dim or self.rnn_dim, layers, family)


def _expand_state(state: SVGState, batch_size: int) -> SVGState:
    """A batch-1 state repeated ``batch_size`` times (views: nothing is copied)."""
    def grow(t: Tensor) -> Tensor:
        return t.expand(batch_size, *t.shape[1:])

    return {"g": grow(state["g"]), "skips": tuple(grow(s) for s in state["skips"]),
            "prior": tuple(grow(t) for t in state["prior"]),
            "predictor": tuple(grow(t) for t in state["predictor"])}


class SVGPosterior(InferenceProcedure):
    """SVG's inference network q(z_t | x_≤t) = LSTM_post(E(x_t)), the baseline against AVF.

    E belongs to the model (θ). Its output is read as a constant input, computed without a graph,
    so λ never depends on θ: the model learns with λ held fixed and the inference loss cannot
    reach θ (SVG trains E through both paths; in AVF's split each loss trains its own
    parameters). The LSTM's (h, c) is this procedure's ``carry`` and the inference loss
    back-propagates through it in time, as SVG's does.
    """

    def __init__(self, g_dim: int, latent_dim: int, rnn_dim: int = 256, layers: int = 1,
                 family: PosteriorFamily | None = None) -> None:
        super().__init__(family)
        self.rnn = StackedLSTM(g_dim, rnn_dim, layers)
        self.head = nn.Linear(rnn_dim, self.family.num_params(latent_dim))

    def initial_carry(self, batch_size: int, device: torch.device) -> LSTMState:
        h, c = self.rnn.zeros(batch_size)
        return h.to(device), c.to(device)

    def forward(self, problem: StepProblem, carry: LSTMState | None = None) -> InferenceResult:
        x = problem.x.to(self.head.weight.dtype)
        if carry is None:
            carry = self.initial_carry(x.shape[0], x.device)
        with torch.no_grad():
            g, _ = problem.model.encode(x)
        out, carry = self.rnn(g, carry)
        return InferenceResult(params=self.head(out), carry=carry)

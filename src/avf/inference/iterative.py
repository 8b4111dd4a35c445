"""Amortized variational filtering: λ_k = f_φ(λ_{k-1}, ∇_λ F_t(λ_{k-1})), starting at the prior."""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem
from avf.nn import HighwayMLP
from avf.posteriors import PosteriorFamily

Encoding = Literal["signlog", "layernorm", "hybrid", "raw"]
Update = Literal["highway", "learned_step", "residual"]
Role = Literal["params", "gradient", "data"]
DEFAULT_ENCODING: Encoding = "signlog"  # why: see BlockEncoder
DEFAULT_UPDATE: Update = "highway"
DEFAULT_GRAD_SAMPLES = 1  # one posterior sample behind each gradient, as in the paper


def signed_log(x: Tensor) -> Tensor:
    """sign(x)·log(1 + |x|): compresses large values yet keeps sign and order of magnitude."""
    return torch.sign(x) * torch.log1p(x.abs())


class BlockEncoder(nn.Module):
    """Encodes one input block (posterior means, a gradient block, x_t …) on its own.

    ``layernorm`` is the paper's choice: every block layer-normalised. On a small latent it
    throws away the gradient's scale (a 4-d gradient normalised to zero mean and unit variance
    says little about how far the optimum is), so the default is ``signlog``: gradients as
    sign·log(1+|g|), which keeps magnitude in a compressed form, everything else as it is.
    ``signlog`` passes the posterior parameters through unchanged, so the network's update
    grows with them. Where the model feeds the sample back into a transition unbounded in z (the
    DMM), that closes a loop (larger parameters, larger updates, larger z, larger parameters)
    and training diverged, while ``layernorm``, which bounds every block, trained.
    ``hybrid`` takes the bound from one and the scale from the other: posterior parameters
    layer-normalised, gradients signlog, x_t as it is. It matched signlog on the 4-d
    linear-Gaussian model and stopped the DMM's divergence, but did worse than both on SRNN and
    let the DMM's posterior collapse (BENCHMARKS.md 1, 5.11, 5.12): an option to experiment with.
    """

    def __init__(self, size: int, encoding: Encoding, role: Role) -> None:
        super().__init__()
        self.signlog = role == "gradient" and encoding in ("signlog", "hybrid")
        normed = encoding == "layernorm" or (encoding == "hybrid" and role == "params")
        self.norm = nn.LayerNorm(size) if normed else None

    def forward(self, x: Tensor) -> Tensor:
        if self.norm is not None:
            return self.norm(x)
        if self.signlog:
            return signed_log(x)
        return x


class Iterative(InferenceProcedure):
    """The iterative inference model of AVF (Marino, Cvitkovic & Yue, 2018).

    Model-agnostic by default: its inputs are the posterior parameters and the free-energy
    gradient, which have the same form whatever the model. ``x_dim > 0`` adds x_t as an input.
    ``grad_samples`` averages each gradient input over that many reparameterised samples of q:
    a less noisy gradient for one more decoder pass (forward and back to z) per sample; it
    matters without x_t and not with it (BENCHMARKS.md 5.23, 5.24). ``antithetic`` draws those
    samples in pairs (ε, −ε), less noisy again at the same cost (a Gaussian posterior and an
    even ``grad_samples``; BENCHMARKS.md 5.27).
    """

    def __init__(
        self,
        latent_dim: int,
        iterations: int = 1,
        x_dim: int = 0,
        hidden: int = 1024,
        layers: int = 2,
        encoding: Encoding = DEFAULT_ENCODING,
        update: Update = DEFAULT_UPDATE,
        grad_samples: int = DEFAULT_GRAD_SAMPLES,
        family: PosteriorFamily | None = None,
        gate_bias: float = 1.0,
        antithetic: bool = False,
    ) -> None:
        super().__init__(family)
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        if grad_samples < 1:
            raise ValueError(f"grad_samples must be at least 1, got {grad_samples}")
        if antithetic and grad_samples % 2:
            raise ValueError("antithetic gradient samples come in pairs (ε, −ε): grad_samples "
                             f"must be even, got {grad_samples}")
        if encoding not in get_args(Encoding):
            raise ValueError(f"unknown encoding {encoding!r}: use one of {get_args(Encoding)}")
        if update not in get_args(Update):
            raise ValueError(f"unknown update {update!r}: use one of {get_args(Update)}")
        self.n_iterations = iterations
        self.x_dim = x_dim
        self.update = update
        self.grad_samples = grad_samples
        self.antithetic = antithetic
        n_params = self.family.num_params(latent_dim)
        probe = torch.zeros(1, n_params)
        block_sizes = [b.shape[-1] for b in self.family.blocks(probe)]
        self.param_encoders = nn.ModuleList(
            BlockEncoder(s, encoding, "params") for s in block_sizes)
        self.grad_encoders = nn.ModuleList(
            BlockEncoder(s, encoding, "gradient") for s in block_sizes)
        self.x_encoder = BlockEncoder(x_dim, encoding, "data") if x_dim > 0 else None
        self.body = HighwayMLP(2 * n_params + x_dim, hidden, layers)
        self.output = nn.Linear(hidden, n_params)
        self.gate: nn.Linear | None = None
        if update == "residual":  # λ + Δ with Δ = 0 at the start: begins at the prior, no gate
            nn.init.zeros_(self.output.weight)
            nn.init.zeros_(self.output.bias)
        else:
            # The gated updates start as sigmoid(gate_bias) of the previous estimate: 1.0 keeps
            # 73 % of the prior; a negative bias hands more of the first updates to the network.
            self.gate = nn.Linear(hidden, n_params)
            nn.init.constant_(self.gate.bias, gate_bias)

    @property
    def iterations(self) -> int:
        return self.n_iterations

    def _encode(self, params: Tensor, grad: Tensor, x: Tensor) -> Tensor:
        parts = [enc(b) for enc, b in zip(self.param_encoders, self.family.blocks(params),
                                          strict=True)]
        parts += [enc(b) for enc, b in zip(self.grad_encoders, self.family.blocks(grad),
                                           strict=True)]
        if self.x_encoder is not None:
            parts.append(self.x_encoder(x.reshape(x.shape[0], -1)))
        return torch.cat(parts, dim=-1)

    def step(self, params: Tensor, grad: Tensor, x: Tensor) -> Tensor:
        """One update λ ← f_φ(λ, ∇_λ F)."""
        h = self.body(self._encode(params, grad, x))
        if self.gate is None:  # the residual update
            return params + self.output(h)
        gate = torch.sigmoid(self.gate(h))
        if self.update == "highway":
            return gate * params + (1 - gate) * self.output(h)
        step_size = nn.functional.softplus(self.output(h))
        return params - step_size * grad

    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        params = problem.prior_params()
        trace: list[Tensor] = []
        extra: Tensor | None = None
        for k in range(self.n_iterations):
            terms, grad = problem.value_and_gradient(params, self.grad_samples,
                                                     self.antithetic)
            trace.append(terms.free_energy.detach())
            if k > 0 and terms.objective.requires_grad:
                extra = terms.objective if extra is None else extra + terms.objective
            params = self.step(params, grad.detach(), problem.x)
        return InferenceResult(params=params, trace=trace, extra_loss=extra, carry=carry)

"""Non-amortized inference: optimise λ at every step with SGD or Adam, from the prior."""

from __future__ import annotations

from typing import Any, Literal

import torch

from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem
from avf.posteriors import PosteriorFamily


class GradientDescent(InferenceProcedure):
    """K optimiser steps on F_t per time step.

    With many steps it estimates the best posterior in the family, so the gap between an
    encoder and this procedure is the encoder's amortization gap. ``decay`` lowers the
    learning rate linearly to zero over the K steps, which averages out the noise of the
    sampled gradients. It has no learnable parameters.
    """

    def __init__(
        self,
        iterations: int = 100,
        lr: float = 0.1,
        optimizer: Literal["adam", "sgd"] = "adam",
        n_samples: int = 1,
        decay: bool = True,
        family: PosteriorFamily | None = None,
    ) -> None:
        super().__init__(family)
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, got {iterations}")
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {optimizer!r}: use adam or sgd")
        self.n_iterations = iterations
        self.lr = lr
        self.optimizer = optimizer
        self.n_samples = n_samples
        self.decay = decay

    @property
    def iterations(self) -> int:
        return self.n_iterations

    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        params = problem.prior_params().clone().requires_grad_(True)
        opt_class = torch.optim.Adam if self.optimizer == "adam" else torch.optim.SGD
        opt = opt_class([params], lr=self.lr)
        trace = []
        for k in range(self.n_iterations):
            terms, grad = problem.value_and_gradient(params.detach(), self.n_samples)
            trace.append(terms.free_energy)
            params.grad = grad
            if self.decay:
                for group in opt.param_groups:
                    group["lr"] = self.lr * (1 - k / self.n_iterations)
            opt.step()
        return InferenceResult(params=params.detach(), trace=trace, carry=carry)

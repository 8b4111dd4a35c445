"""What every inference procedure sees (a step's problem) and returns (posterior parameters)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from avf.objectives import StepTerms, step_terms
from avf.posteriors import DiagonalGaussian, PosteriorFamily


@dataclass
class StepProblem:
    """Inference at one time step: minimise F_t over the posterior parameters λ.

    ``state`` and ``prior`` are constants here (detached), which is what stops the inference
    objective from reaching the model's state or earlier steps.
    """

    model: nn.Module
    state: Any
    prior: Distribution
    x: Tensor
    family: PosteriorFamily
    beta: float = 1.0
    n_samples: int = 1
    antithetic: bool = False  # draw the samples in pairs (ε, −ε)

    def evaluate(self, params: Tensor) -> StepTerms:
        """F_t at λ = ``params``."""
        q = self.family.distribution(params)
        return step_terms(self.model, self.state, self.prior, self.x, q, self.n_samples,
                          self.beta, self.antithetic)

    def prior_params(self) -> Tensor:
        """λ of the prediction (the posterior family's fit to the prior)."""
        return self.family.params_from(self.prior).detach()

    def value_and_gradient(
        self, params: Tensor, n_samples: int | None = None, antithetic: bool = False
    ) -> tuple[StepTerms, Tensor]:
        """F_t(λ) and ∇_λ F_t as a constant (no second-order terms).

        With ``n_samples`` (or ``antithetic``) this estimate draws that many samples (or the
        problem's number), independent or in pairs (ε, −ε), instead of the problem's own.

        When ``params`` is part of a training graph, the returned terms keep that graph so the
        same forward pass serves the inference loss. Otherwise autograd is enabled locally (AVF
        needs gradients at test time too) and nothing is kept. Where the posterior family has
        the KL's gradient in closed form (a diagonal Gaussian against a diagonal Gaussian
        prior), autograd goes back through the reconstruction term alone.
        """
        problem = self
        if n_samples is not None or antithetic:
            problem = _with_samples(self, n_samples or self.n_samples, antithetic)
        kl_grad = self.family.kl_gradient(params, self.prior)
        training = torch.is_grad_enabled() and params.requires_grad
        with torch.enable_grad():
            leaf = params if training else params.detach().requires_grad_(True)
            terms = problem.evaluate(leaf)
            if kl_grad is None:  # no closed form for this family and prior: autograd
                (grad,) = torch.autograd.grad(terms.objective.sum(), leaf, retain_graph=training)
            else:  # only the reconstruction term goes back through the model
                (grad,) = torch.autograd.grad(terms.recon.sum(), leaf, retain_graph=training)
                grad = grad + self.beta * kl_grad
        return (terms, grad) if training else (_detached(terms), grad)


def _with_samples(problem: StepProblem, n_samples: int, antithetic: bool) -> StepProblem:
    return StepProblem(problem.model, problem.state, problem.prior, problem.x, problem.family,
                       problem.beta, n_samples, antithetic)


def _detached(terms: StepTerms) -> StepTerms:
    return StepTerms(terms.recon.detach(), terms.kl.detach(), terms.objective.detach(),
                     terms.z.detach())


@dataclass
class InferenceResult:
    """Final λ, the true free energy (β = 1) before each update, and the extra φ loss.

    ``trace`` holds F_t at λ_0 … λ_{K-1}; the engine appends F_t(λ_K). ``extra_loss`` [B] is
    Σ_{k=1}^{K-1} F_t(λ_k) with its graph to φ (the final iterate's term is added by the engine).
    """

    params: Tensor
    trace: list[Tensor] = field(default_factory=list)
    extra_loss: Tensor | None = None
    carry: Any = None


class InferenceProcedure(nn.Module):
    """Base class: maps a :class:`StepProblem` to posterior parameters."""

    family: PosteriorFamily

    def __init__(self, family: PosteriorFamily | None = None) -> None:
        super().__init__()
        self.family = family or DiagonalGaussian()

    @property
    def iterations(self) -> int:
        """Number of updates per step (the length of the trace minus one)."""
        return 0

    def initial_carry(self, batch_size: int, device: torch.device) -> Any:
        """Recurrent state the procedure keeps across steps (``None`` if it keeps none)."""
        return None

    @abstractmethod
    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        """Posterior parameters for the step."""

import torch
from torch import nn

import avf
from avf.inference import InferenceProcedure, InferenceResult, StepProblem
from avf.models import LinearGaussian


class LearnedStep(InferenceProcedure):
    """λ = λ_prior − exp(s) ⊙ ∇_λ F_t: one gradient step from the prior, its size s learnt."""

    def __init__(self, latent_dim: int) -> None:  # avf passes latent_dim (also x_dim, state_dim)
        super().__init__()
        self.log_step = nn.Parameter(torch.full((2 * latent_dim,), -2.0))  # mean, log-variance

    @property
    def iterations(self) -> int:
        return 1

    def forward(self, problem: StepProblem, carry=None) -> InferenceResult:
        params = problem.prior_params()
        terms, grad = problem.value_and_gradient(params)  # F_t(λ_0) and ∇_λ F_t, a constant
        step = params - self.log_step.exp() * grad  # the engine scores F_t(step) for θ and φ
        return InferenceResult(params=step, trace=[terms.free_energy.detach()], carry=carry)


if __name__ == "__main__":
    model = LinearGaussian.random(latent_dim=2, obs_dim=2, seed=0)
    x, _ = avf.sample_sequences(model, batch_size=16, steps=20)
    out = avf.filter_sequences(model, LearnedStep(latent_dim=2), x)
    print(f"F = {out.per_step():.3f} nats/step; F before and after the step: "
          f"{out.trace.mean((0, 1)).tolist()}")

"""The particle filter, checked against the exact Kalman log-likelihood."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from avf.inference import (
    InferenceProcedure,
    InferenceResult,
    Iterative,
    StepProblem,
    particle_filter,
)
from avf.inference.smc import multinomial_resample, systematic_resample
from avf.model import sample_sequences
from avf.models import LinearGaussian

REPEATS = 8


def _model(seed: int = 3) -> LinearGaussian:
    return LinearGaussian.random(latent_dim=2, obs_dim=2, seed=seed).requires_grad_(False)


def _data(model: LinearGaussian, batch: int, steps: int, seed: int = 0) -> Tensor:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return sample_sequences(model, batch, steps)[0]


def _repeated(result_field: Tensor, batch: int) -> tuple[Tensor, Tensor]:
    """Mean and standard error over the independent repeats of each sequence."""
    runs = result_field.reshape(batch, REPEATS)
    return runs.mean(1), runs.std(1) / REPEATS**0.5


class ExactPosterior(InferenceProcedure):
    """q(z_t) = p(z_t | z_{t-1}, x_t) of a linear-Gaussian model with diagonal C, Q, R, P0.

    Its carry counts the steps each stream has taken, to check that masked steps and
    resampling carry it along with the particles.
    """

    def __init__(self, model: LinearGaussian) -> None:
        super().__init__()
        self.model = model
        self.seen: list[Tensor] = []

    def initial_carry(self, batch_size: int, device: torch.device) -> Tensor:
        return torch.zeros(batch_size, device=device)

    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        self.seen.append(carry.clone())
        mean = problem.prior.mean.double()
        cov = problem.prior.covariance_matrix.double()
        c, r = self.model.C.double(), self.model.R.double()
        gain = cov @ c.T @ torch.linalg.inv(c @ cov @ c.T + r)
        post_mean = mean + torch.einsum("bij,bj->bi", gain, problem.x.double() - mean @ c.T)
        post_var = (cov - gain @ c @ cov).diagonal(dim1=-2, dim2=-1)
        params = torch.cat([post_mean, post_var.log()], dim=-1).float()
        return InferenceResult(params=params, carry=carry + 1)


@pytest.mark.parametrize(("resample", "n"), [("systematic", 2000), ("multinomial", 1000)])
def test_bootstrap_matches_kalman(resample, n):
    model = _model()
    x = _data(model, 3, 10)
    exact = model.kalman_log_likelihood(x).sum(1).float()
    out = particle_filter(model, x.repeat_interleave(REPEATS, 0), n_particles=n,
                          resample=resample, generator=torch.Generator().manual_seed(1))
    assert out.log_marginal.shape == (3 * REPEATS,)
    assert out.log_increments.shape == out.ess.shape == (3 * REPEATS, 10)
    assert torch.allclose(out.log_marginal, out.log_increments.sum(1))
    mean, se = _repeated(out.log_marginal, 3)
    assert ((mean - exact).abs() < 4 * se + 0.05).all(), (mean - exact, se)
    assert ((out.ess > 0) & (out.ess <= n + 1e-3)).all()


def test_bootstrap_with_mask_matches_kalman():
    model = _model(seed=5)
    x = _data(model, 3, 10, seed=1)
    lengths = torch.tensor([10, 6, 3])
    mask = torch.arange(10)[None] < lengths[:, None]
    x = torch.where(mask[..., None], x, torch.nan)  # padding must not matter
    exact = model.kalman_log_likelihood(torch.nan_to_num(x), mask).sum(1).float()
    out = particle_filter(model, x.repeat_interleave(REPEATS, 0),
                          mask.repeat_interleave(REPEATS, 0), n_particles=2000,
                          generator=torch.Generator().manual_seed(2))
    rep_mask = mask.repeat_interleave(REPEATS, 0)
    assert (out.log_increments[~rep_mask] == 0).all() and (out.ess[~rep_mask] == 0).all()
    mean, se = _repeated(out.log_marginal, 3)
    assert ((mean - exact).abs() < 4 * se + 0.05).all(), (mean - exact, se)


def test_exact_proposal_without_dynamics_is_exact():
    """With A = 0, p(x_t | z_{t-1}) is the same for every particle: each weight is exact."""
    base = _model()
    model = LinearGaussian(torch.zeros(2, 2), base.C, base.Q, base.R, base.m0,
                           base.P0).requires_grad_(False)
    x = _data(model, 2, 8)
    exact = model.kalman_log_likelihood(x).float()
    out = particle_filter(model, x, n_particles=10, proposal=ExactPosterior(model),
                          generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.log_increments, exact, atol=1e-4)
    assert torch.allclose(out.ess, torch.full_like(out.ess, 10.0), atol=1e-3)


def test_exact_proposal_beats_bootstrap_and_carries_its_state():
    model = _model()
    x = _data(model, 3, 10).repeat_interleave(REPEATS, 0)
    lengths = torch.tensor([10, 7, 4]).repeat_interleave(REPEATS)
    mask = torch.arange(10)[None] < lengths[:, None]
    exact = model.kalman_log_likelihood(x, mask).sum(1).float().reshape(3, REPEATS)[:, 0]
    proposal = ExactPosterior(model)
    gen = torch.Generator().manual_seed(3)
    guided = particle_filter(model, x, mask, n_particles=100, proposal=proposal, generator=gen)
    boot = particle_filter(model, x, mask, n_particles=100, generator=gen)
    mean, se = _repeated(guided.log_marginal, 3)
    _, se_boot = _repeated(boot.log_marginal, 3)
    assert ((mean - exact).abs() < 4 * se + 0.05).all(), (mean - exact, se)
    # pooled over the sequences: typically 5% of the bootstrap's variance, 40% at worst
    assert (se**2).sum() < 0.5 * (se_boot**2).sum(), (se, se_boot)
    # the carry: one entry per particle, advanced at live steps only, whatever the resampling
    assert guided.resampled.any()
    for t, carry in enumerate(proposal.seen):
        assert carry.shape == (x.shape[0] * 100,)
        expected = torch.minimum(torch.tensor(t), lengths).float().repeat_interleave(100)
        assert torch.equal(carry, expected)


def test_iterative_proposal():
    """AVF needs ∇_λ F_t: it gets it inside the filter's no_grad block."""
    model = _model()
    x = _data(model, 2, 6)
    exact = model.kalman_log_likelihood(x).sum(1).float()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        proposal = Iterative(latent_dim=2, hidden=16)
    out = particle_filter(model, x, n_particles=100, proposal=proposal,
                          generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out.log_marginal).all()
    # an untrained proposal is poor, but importance weighting keeps the estimate near the truth
    assert ((out.log_marginal - exact).abs() < 3.0).all(), (out.log_marginal, exact)
    assert all(p.grad is None for p in proposal.parameters())


class WithContext(LinearGaussian):
    """Uses the precompute hook (the previous observation) and records what each step gets."""

    def __init__(self, base: LinearGaussian) -> None:
        super().__init__(base.A, base.C, base.Q, base.R, base.m0, base.P0)
        self.seen: list[Tensor] = []

    def precompute(self, x: Tensor) -> Tensor:
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)

    def use_precomputed(self, state: Any, context_t: Tensor) -> Any:
        self.seen.append(context_t)
        return state


def test_precompute_hook_reaches_every_particle():
    model = WithContext(_model()).requires_grad_(False)
    x = _data(model, 2, 5)
    particle_filter(model, x, n_particles=30, generator=torch.Generator().manual_seed(0))
    previous = model.precompute(x)
    assert len(model.seen) == 5
    for t, context in enumerate(model.seen):
        assert torch.equal(context, previous[:, t].repeat_interleave(30, 0))


def test_generator_makes_runs_reproducible_and_spares_the_global_rng():
    model = _model()
    x = _data(model, 2, 5)
    before = torch.get_rng_state()
    a = particle_filter(model, x, n_particles=50, generator=torch.Generator().manual_seed(7))
    b = particle_filter(model, x, n_particles=50, generator=torch.Generator().manual_seed(7))
    c = particle_filter(model, x, n_particles=50, generator=torch.Generator().manual_seed(8))
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(a.log_marginal, b.log_marginal)
    assert not torch.equal(a.log_marginal, c.log_marginal)


def test_ess_threshold_zero_never_resamples():
    model = _model()
    x = _data(model, 2, 5)
    out = particle_filter(model, x, n_particles=50, ess_threshold=0.0,
                          generator=torch.Generator().manual_seed(0))
    assert not out.resampled.any()


def test_resamplers():
    log_w = torch.log(torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]))
    assert systematic_resample(log_w).tolist() == [[1, 1, 1, 1], [0, 1, 2, 3]]
    assert (multinomial_resample(log_w)[0] == 1).all()
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(int(torch.randint(1000, (1,), generator=g)))
        probs = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
        counts = torch.bincount(multinomial_resample(probs.log().expand(4000, -1).clone())
                                .flatten(), minlength=4)
    assert torch.allclose(counts / counts.sum(), probs[0], atol=0.01)


def test_bad_input_raises():
    model = _model()
    x = _data(model, 2, 5)
    with pytest.raises(ValueError, match="mask"):
        particle_filter(model, x, mask=torch.ones(2, 4, dtype=torch.bool), n_particles=10)
    with pytest.raises(ValueError, match="per-step shape"):
        particle_filter(model, x[..., :1], n_particles=10)
    with pytest.raises(ValueError, match="resample"):
        particle_filter(model, x, n_particles=10, resample="stratified")
    with pytest.raises(ValueError, match="n_particles"):
        particle_filter(model, x, n_particles=0)

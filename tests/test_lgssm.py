"""The LGSSM's exact answers against brute force and against the engine."""

import torch
from torch.distributions import MultivariateNormal

from avf import PriorOnly, filter_sequences, sample_sequences
from avf.models import LinearGaussian
from conftest import ExactLGSSMPosterior, frozen


def joint_log_likelihood(model: LinearGaussian, x: torch.Tensor) -> torch.Tensor:
    """log p(x_1:T) from the joint Gaussian of all observations (no recursion)."""
    a, c, q, r, m0, p0 = (t.detach().double() for t in (model.A, model.C, model.Q, model.R,
                                                         model.m0, model.P0))
    steps, dx = x.shape[1], c.shape[0]
    means, covs = [m0], [p0]  # z_t moments and cross-covariances cov(z_t, z_s) = A^{t-s} P_s
    for _ in range(1, steps):
        means.append(a @ means[-1])
        covs.append(a @ covs[-1] @ a.T + q)
    big = torch.zeros(steps * dx, steps * dx, dtype=torch.float64)
    for t in range(steps):
        for s in range(t + 1):
            cross = torch.linalg.matrix_power(a, t - s) @ covs[s]
            block = c @ cross @ c.T
            if s == t:
                block = block + r
            big[t * dx:(t + 1) * dx, s * dx:(s + 1) * dx] = block
            big[s * dx:(s + 1) * dx, t * dx:(t + 1) * dx] = block.T
    mu = torch.cat([c @ m for m in means])
    return MultivariateNormal(mu, covariance_matrix=big).log_prob(x.double().flatten(1))


def test_kalman_matches_joint_gaussian_full_matrices():
    torch.manual_seed(0)
    model = frozen(LinearGaussian.random(3, 2, diagonal=False, seed=3))
    x, _ = sample_sequences(model, 5, 6)
    kalman = model.kalman_log_likelihood(x).sum(1)
    torch.testing.assert_close(kalman, joint_log_likelihood(model, x), rtol=1e-9, atol=1e-9)


def test_kalman_with_mask_equals_truncated_sequences():
    torch.manual_seed(1)
    model = frozen(LinearGaussian.random(2, 2, seed=1))
    x, _ = sample_sequences(model, 3, 8)
    lengths = [8, 5, 2]
    mask = torch.arange(8)[None] < torch.tensor(lengths)[:, None]
    masked = model.kalman_log_likelihood(x, mask).sum(1)
    for b, n in enumerate(lengths):
        alone = model.kalman_log_likelihood(x[b:b + 1, :n]).sum()
        torch.testing.assert_close(masked[b], alone)


def test_filtering_optimum_bounds_and_first_step():
    torch.manual_seed(2)
    model = frozen(LinearGaussian.random(4, 4, seed=2))
    x, _ = sample_sequences(model, 16, 20)
    f_star = model.optimal_filtering_free_energy(x)
    nll = -model.kalman_log_likelihood(x)
    # the first step has no past, so the filtering optimum is exact there
    torch.testing.assert_close(f_star[:, 0], nll[:, 0])
    # any valid posterior's expected free energy bounds -log p(x); filtering is strictly looser
    assert torch.all(f_star.sum(1) >= nll.sum(1) - 1e-9)
    assert float((f_star.sum(1) - nll.sum(1)).mean()) > 0.1


def test_engine_with_exact_posterior_matches_analytic_optimum():
    """Monte Carlo over many sample paths of the engine reproduces F* at every step."""
    torch.manual_seed(3)
    model = frozen(LinearGaussian.random(4, 4, seed=4))
    x, _ = sample_sequences(model, 1, 6)
    paths = 4000
    xs = x.expand(paths, -1, -1)
    with torch.no_grad():
        out = filter_sequences(model, ExactLGSSMPosterior(model), xs)
    mc = out.free_energy.mean(0).double()
    se = out.free_energy.std(0).double() / paths**0.5
    f_star = model.optimal_filtering_free_energy(x)[0]
    assert torch.all((mc - f_star).abs() < 4 * se + 1e-3), (mc, f_star, se)
    # and the optimum is far below prior-only inference
    with torch.no_grad():
        prior_only = filter_sequences(model, PriorOnly(), xs[:256]).free_energy.mean()
    assert float(prior_only) > float(f_star.mean()) + 0.5


def test_model_learns_by_gradient():
    """θ of the LGSSM receives gradients (its parameters are learnable by default)."""
    model = LinearGaussian.random(2, 2, seed=0)
    x, _ = sample_sequences(model, 4, 5)
    out = filter_sequences(model, PriorOnly(), x)
    out.model_loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_rejects_bad_shapes():
    import pytest

    with pytest.raises(ValueError, match="C must have shape"):
        LinearGaussian(torch.eye(2), torch.eye(3), torch.eye(2), torch.eye(2), torch.zeros(2),
                       torch.eye(2))

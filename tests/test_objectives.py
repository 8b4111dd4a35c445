"""Free-energy pieces against closed forms and finite differences."""

import math

import pytest
import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from avf.inference.base import StepProblem
from avf.models import SRNN, LinearGaussian
from avf.objectives import antithetic_rsample, detach_distribution, step_terms
from avf.posteriors import DiagonalGaussian
from conftest import frozen


def test_diagonal_family_round_trip_and_prior_fit():
    family = DiagonalGaussian()
    prior = MultivariateNormal(torch.tensor([[1.0, -2.0]]),
                               covariance_matrix=torch.tensor([[2.0, 0.5], [0.5, 3.0]]))
    params = family.params_from(prior)
    q = family.distribution(params)
    torch.testing.assert_close(q.mean, prior.mean)
    torch.testing.assert_close(q.variance, prior.variance)
    assert family.num_params(2) == params.shape[-1] == 4


def test_kl_to_full_gaussian_matches_closed_form():
    mean_q, var_q = torch.tensor([[0.3, -0.2]]), torch.tensor([[0.5, 2.0]])
    q = Independent(Normal(mean_q, var_q.sqrt()), 1)
    cov_p = torch.tensor([[1.5, 0.4], [0.4, 0.8]])
    mean_p = torch.tensor([[1.0, 0.0]])
    p = MultivariateNormal(mean_p, covariance_matrix=cov_p)
    inv = torch.linalg.inv(cov_p)
    diff = (mean_p - mean_q)[0]
    exact = 0.5 * (torch.trace(inv @ torch.diag(var_q[0])) + diff @ inv @ diff - 2
                   + torch.logdet(cov_p) - var_q.log().sum())
    torch.testing.assert_close(kl_divergence(q, p)[0], exact)


def test_step_terms_linear_gaussian_expectation_is_exact_in_the_limit():
    """E_q[-log N(x; Cz, R)] has a closed form; many samples must reach it."""
    torch.manual_seed(0)
    model = frozen(LinearGaussian.random(2, 2, seed=0))
    state = model.initial_state(1)
    x = torch.tensor([[0.5, -1.0]])
    q = Independent(Normal(torch.tensor([[0.2, 0.1]]), torch.tensor([[0.7, 0.3]])), 1)
    terms = step_terms(model, state, model.prior(state), x, q, n_samples=200_000)
    c, r = model.C.double(), model.R.double()
    mu, var = q.mean.double()[0], q.variance.double()[0]
    resid = x.double()[0] - c @ mu
    mahalanobis = resid @ torch.linalg.solve(r, resid)
    spread = torch.trace(torch.linalg.solve(r, c @ torch.diag(var) @ c.T))
    exact = 0.5 * (2 * math.log(2 * math.pi) + torch.logdet(r) + mahalanobis + spread)
    assert abs(float(terms.recon) - float(exact)) < 0.01


def test_gradient_matches_finite_differences():
    torch.manual_seed(0)
    model = frozen(LinearGaussian.random(3, 3, seed=1))
    state = model.initial_state(2)
    x = torch.randn(2, 3)
    problem = StepProblem(model, state, model.prior(state), x, DiagonalGaussian(), n_samples=4)
    params = torch.randn(2, 6, dtype=torch.float32) * 0.3

    def value(p):
        torch.manual_seed(123)  # same reparameterisation noise for every evaluation
        return problem.evaluate(p).objective.double().sum()

    torch.manual_seed(123)
    _, grad = problem.value_and_gradient(params)
    assert_finite_differences(value, params, grad, eps=1e-3, tolerance=2e-2)
    assert grad.grad_fn is None


def assert_finite_differences(value, params, grad, eps: float, tolerance: float) -> None:
    """Each column of ``grad`` summed over the batch against central differences of ``value``."""
    for i in range(params.shape[-1]):
        bump = torch.zeros_like(params)
        bump[:, i] = eps
        fd = (value(params + bump) - value(params - bump)) / (2 * eps)
        assert abs(float(fd) - float(grad[:, i].sum())) < tolerance * (1 + abs(float(fd)))


def test_detached_prior_is_a_constant():
    mean = torch.zeros(2, 3, requires_grad=True)
    prior = Independent(Normal(mean * 2, torch.ones(2, 3)), 1)
    const = detach_distribution(prior)
    assert not const.base_dist.loc.requires_grad
    assert prior.base_dist.loc.requires_grad  # the original keeps its graph


def test_closed_form_kl_gradient_matches_autograd_clamped_log_variances_included():
    torch.manual_seed(2)
    family = DiagonalGaussian()
    prior = Independent(Normal(torch.randn(4, 3, dtype=torch.double),
                               torch.rand(4, 3, dtype=torch.double) + 0.2), 1)
    params = torch.randn(4, 6, dtype=torch.double)
    params[0, 3], params[1, 4] = -25.0, 30.0  # beyond the family's log-variance clamp
    leaf = params.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(kl_divergence(family.distribution(leaf), prior).sum(), leaf)
    got = family.kl_gradient(params, prior)
    torch.testing.assert_close(got, expected)
    assert got[0, 3] == 0 and got[1, 4] == 0


def test_kl_gradient_has_no_closed_form_against_a_full_covariance_prior():
    prior = MultivariateNormal(torch.zeros(2, 3), torch.eye(3))
    assert DiagonalGaussian().kl_gradient(torch.zeros(2, 6), prior) is None


def test_a_subclass_that_maps_parameters_its_own_way_gets_autograd_not_the_closed_form():
    class SoftplusScale(DiagonalGaussian):
        def distribution(self, params):
            mean, raw = self.split(params)
            return Independent(Normal(mean, torch.nn.functional.softplus(raw)), 1)

    prior = Independent(Normal(torch.zeros(2, 3), torch.ones(2, 3)), 1)
    assert DiagonalGaussian().kl_gradient(torch.ones(2, 6), prior) is not None
    assert SoftplusScale().kl_gradient(torch.ones(2, 6), prior) is None


def test_gradient_with_the_closed_form_kl_matches_autograd_and_finite_differences():
    """A diagonal prior (SRNN) takes the closed-form KL gradient, with β ≠ 1 and several
    samples: the same gradient as autograd through the whole objective, in evaluation and in
    training (λ part of a graph), and as finite differences."""
    torch.manual_seed(0)
    model = frozen(SRNN(x_dim=5, latent_dim=3, rnn_dim=4, hidden=6)).double()
    state = model.initial_state(2)
    x = (torch.rand(2, 5) < 0.5).double()
    problem = StepProblem(model, state, model.prior(state), x, DiagonalGaussian(), beta=0.6,
                          n_samples=3)
    assert problem.family.kl_gradient(problem.prior_params(), problem.prior) is not None
    params = problem.prior_params() + 0.3 * torch.randn(2, 6, dtype=torch.double)

    def value(p):
        torch.manual_seed(123)  # same reparameterisation noise for every evaluation
        return problem.evaluate(p).objective.sum()

    leaf = params.clone().requires_grad_(True)
    (autograd,) = torch.autograd.grad(value(leaf), leaf)
    torch.manual_seed(123)
    _, closed = problem.value_and_gradient(params)
    torch.testing.assert_close(closed, autograd)
    torch.manual_seed(123)
    terms, in_graph = problem.value_and_gradient(leaf * 1.0)
    torch.testing.assert_close(in_graph, autograd)
    assert terms.objective.requires_grad  # the graph stays for the inference loss
    assert_finite_differences(value, params, closed, eps=1e-6, tolerance=1e-5)


def test_antithetic_samples_come_in_pairs_about_the_mean():
    torch.manual_seed(0)
    loc, scale = torch.randn(3, 4), torch.rand(3, 4) + 0.1
    z = antithetic_rsample(Independent(Normal(loc, scale), 1), 6)
    assert z.shape == (6, 3, 4)
    torch.testing.assert_close(z[:3] - loc, -(z[3:] - loc))
    tril = torch.linalg.cholesky(torch.eye(4) + 0.5 * torch.ones(4, 4))
    z = antithetic_rsample(MultivariateNormal(loc, scale_tril=tril), 4)
    torch.testing.assert_close(z.mean(0), loc)
    noise = torch.linalg.solve_triangular(tril, (z[:2] - loc).unsqueeze(-1), upper=False)
    assert noise.abs().max() > 0.1  # the pairs are spread by the covariance, not collapsed
    with pytest.raises(ValueError, match="must be even"):
        antithetic_rsample(Normal(loc, scale), 3)
    with pytest.raises(ValueError, match="Normal or MultivariateNormal"):
        antithetic_rsample(torch.distributions.Laplace(loc, scale), 2)


def test_one_antithetic_pair_gives_the_exact_mean_gradient_when_the_likelihood_is_linear():
    """E_q[-log N(x; Cz, R)] is quadratic in z: a pair (ε, −ε) gets ∇_mean exactly, two
    independent samples do not."""
    torch.manual_seed(0)
    model = frozen(LinearGaussian.random(3, 3, seed=2))
    state = model.initial_state(4)
    x = torch.randn(4, 3)
    prior = model.prior(state)
    problem = StepProblem(model, state, prior, x, DiagonalGaussian())
    params = torch.randn(4, 6) * 0.3
    mean = params[:, :3].double()
    c, r = model.C.detach().double(), model.R.detach().double()
    recon_grad = -(torch.linalg.solve(r, (x.double() - mean @ c.T).T).T @ c)
    leaf = params.clone().requires_grad_(True)
    (kl_grad,) = torch.autograd.grad(
        kl_divergence(problem.family.distribution(leaf), prior).sum(), leaf)
    exact = recon_grad + kl_grad[:, :3].double()
    _, pair = problem.value_and_gradient(params, 2, antithetic=True)
    torch.testing.assert_close(pair[:, :3].double(), exact, atol=1e-5, rtol=1e-4)
    _, independent = problem.value_and_gradient(params, 2)
    assert (independent[:, :3].double() - exact).abs().max() > 1e-3

"""Free-energy pieces against closed forms and finite differences."""

import math

import torch
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from avf.inference.base import StepProblem
from avf.models import LinearGaussian
from avf.objectives import detach_distribution, step_terms
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
    eps = 1e-3
    for i in range(6):
        bump = torch.zeros_like(params)
        bump[:, i] = eps
        fd = (value(params + bump) - value(params - bump)) / (2 * eps)
        assert abs(float(fd) - float(grad[:, i].sum())) < 2e-2 * (1 + abs(float(fd)))
    assert grad.grad_fn is None


def test_detached_prior_is_a_constant():
    mean = torch.zeros(2, 3, requires_grad=True)
    prior = Independent(Normal(mean * 2, torch.ones(2, 3)), 1)
    const = detach_distribution(prior)
    assert not const.base_dist.loc.requires_grad
    assert prior.base_dist.loc.requires_grad  # the original keeps its graph

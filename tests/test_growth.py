"""The nonlinear growth model: its equations, its state, and its bimodal posterior."""

from __future__ import annotations

import math

import pytest
import torch

from avf.inference import particle_filter
from avf.model import latent_dim, sample_sequences
from avf.models import NonlinearGrowth
from avf.validation import observation_shape


def _sample(model: NonlinearGrowth, batch: int, steps: int, seed: int):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return sample_sequences(model, batch, steps)


def test_shapes_and_no_trainable_parameters():
    model = NonlinearGrowth()
    x, z = _sample(model, 3, 20, seed=0)
    assert x.shape == (3, 20, 1) and z.shape == (3, 20, 1)
    assert torch.isfinite(x).all() and torch.isfinite(z).all()
    assert latent_dim(model) == 1 and observation_shape(model) == (1,)
    assert list(model.parameters()) == []
    assert {name for name, _ in model.named_buffers()} == {"prior_var", "process_var", "obs_var"}


def test_step_counter_and_dynamics():
    model = NonlinearGrowth(prior_var=4.0, process_var=9.0)
    state = model.initial_state(2)
    prior = model.prior(state)
    assert state[1].tolist() == [1.0, 1.0] and state[2].all()
    assert torch.allclose(prior.mean, torch.zeros(2, 1))
    assert torch.allclose(prior.stddev, torch.full((2, 1), 2.0))
    z1 = torch.tensor([[1.0], [-3.0]])
    state = model.transition(state, z1, torch.zeros(2, 1))
    assert state[1].tolist() == [2.0, 2.0] and not state[2].any()
    prior = model.prior(state)
    expected = z1 / 2 + 25 * z1 / (1 + z1**2) + 8 * math.cos(1.2 * 2)
    assert torch.allclose(prior.mean, expected)
    assert torch.allclose(prior.stddev, torch.full((2, 1), 3.0))
    state = model.transition(state, prior.mean, torch.zeros(2, 1))
    assert state[1].tolist() == [3.0, 3.0]


def test_likelihood_accepts_sample_dimensions():
    model = NonlinearGrowth(obs_var=0.25)
    state = model.initial_state(3)
    z = torch.randn(5, 3, 1)
    lik = model.likelihood(z, state)
    assert lik.batch_shape == (5, 3) and lik.event_shape == (1,)
    assert torch.allclose(lik.mean, z**2 / 20)
    assert torch.allclose(lik.stddev, torch.full_like(z, 0.5))
    assert model.likelihood(z[0], state).batch_shape == (3,)


def test_rejects_non_positive_variance():
    with pytest.raises(ValueError, match="obs_var"):
        NonlinearGrowth(obs_var=0.0)


def test_filtering_posterior_is_bimodal():
    """x_t sees z_t² only: somewhere the particle cloud holds both signs of a large |z_t|."""
    model = NonlinearGrowth()
    x, z = _sample(model, 1, 30, seed=0)
    out = particle_filter(model, x, n_particles=2000, keep_particles=True,
                          generator=torch.Generator().manual_seed(0))
    w = out.log_weights[0].exp()  # [T, N]
    particles = out.particles[0, :, :, 0]
    above = (w * (particles > 3)).sum(1)
    below = (w * (particles < -3)).sum(1)
    bimodal = (above > 0.1) & (below > 0.1) & (z[0, :, 0].abs() > 5)
    assert bimodal.any()
    # at t = 1 the prior is symmetric, so the posterior is too
    assert abs(float((w[0] * (particles[0] > 0)).sum()) - 0.5) < 0.05

"""Discretised Gaussian scoring: bin masses against scipy, tiling, tails, gradients, the switch.

References are computed independently in float64 with scipy: differences of the normal CDF
(of the survival function above the mean, where CDF differences cancel), and the midpoint rule
where bins are so narrow that any difference of CDFs loses its digits.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from avf.discretized import DiscretizedNormal, discretized, gaussian_observation
from avf.models import VRNN

F64 = torch.float64


def t64(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=F64)


def scipy_log_mass(x: np.ndarray, loc: np.ndarray, scale: np.ndarray, width: float) -> np.ndarray:
    """log P(x − w/2 < X < x + w/2) for X ~ N(loc, scale²), by scipy CDF/SF differences."""
    lo, hi = (x - width / 2 - loc) / scale, (x + width / 2 - loc) / scale
    upper = lo + hi > 0
    lower_mass = norm.cdf(hi) - norm.cdf(lo)
    upper_mass = norm.sf(lo) - norm.sf(hi)
    return np.log(np.where(upper, upper_mass, lower_mass))


def log_prob(x, loc, scale, width, **edges) -> np.ndarray:
    return DiscretizedNormal(t64(loc), t64(scale), width, **edges).log_prob(t64(x)).numpy()


def test_ordinary_bins_match_scipy():
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=200), rng.uniform(0.05, 3.0, size=200)
    x = loc + scale * rng.uniform(-4, 4, size=200)
    for width in (2.0, 0.3, 1e-2, 1e-3):
        np.testing.assert_allclose(log_prob(x, loc, scale, width),
                                   scipy_log_mass(x, loc, scale, width), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("side", [-1.0, 1.0])
def test_tail_bins_30_sigma_away_match_scipy(side):
    """Masses near 1e-196 on both sides: scipy's CDF below, SF above, no cancellation."""
    loc, scale = np.array([0.5, -2.0, 0.0]), np.array([0.2, 1.5, 1.0])
    x = loc + side * 30.0 * scale
    for width in (0.5, 1e-2, 1e-4):
        got = log_prob(x, loc, scale, width)
        assert np.all(got < -400)
        np.testing.assert_allclose(got, scipy_log_mass(x, loc, scale, width), rtol=1e-11)


@pytest.mark.parametrize("z", [0.0, 2.5, -7.0, 30.0, -30.0])
@pytest.mark.parametrize("width", [1.05e-5, 0.95e-5])
def test_either_side_of_the_narrow_bin_switch_matches_scipy(z, width):
    """Just above and below the width (in σ) where the narrow-bin formula takes over.

    Here differences of the CDF still hold ~12 digits, so they check that formula even in the
    tails, where the plain midpoint rule is off by w²(z² − 1)/24 (3e-9 nats at z = 30).
    """
    got = log_prob([z], [0.0], [1.0], width)
    np.testing.assert_allclose(got, scipy_log_mass(np.array([z]), 0.0, 1.0, width),
                               rtol=0, atol=2e-10)


@pytest.mark.parametrize("z", [0.0, 1.0, -3.0, 30.0, -30.0])
def test_tiny_bins_follow_the_midpoint_rule(z):
    """At w = 1e-9 σ the mass is density · width to ~1e-16 relative (midpoint-rule error
    w²(z² − 1)/24), while a difference of CDFs would keep only a few digits."""
    loc, scale, width = 1.0, 2.0, 2e-9
    x = loc + z * scale
    want = norm.logpdf(x, loc, scale) + math.log(width)
    np.testing.assert_allclose(log_prob([x], [loc], [scale], width), [want], rtol=1e-14)


def test_narrow_bins_are_density_times_width():
    """log P ≈ log(p(x) w) for narrow bins, below it near the mode (where the density is
    concave), and off by the midpoint rule's error w²(z² − 1)/24 (w in σ) to leading order."""
    rng = np.random.default_rng(1)
    loc, scale = rng.normal(size=100), rng.uniform(0.5, 2.0, size=100)
    z = rng.uniform(-3, 3, size=100)
    x, width = loc + z * scale, 1e-3
    got = log_prob(x, loc, scale, width)
    approx = norm.logpdf(x, loc, scale) + math.log(width)
    np.testing.assert_allclose(got, approx, rtol=0, atol=3e-6)
    assert np.all(got[np.abs(z) < 1] < approx[np.abs(z) < 1])
    w = width / scale
    np.testing.assert_allclose(got - approx, w**2 * (z**2 - 1) / 24, rtol=0, atol=1e-10)


@pytest.mark.parametrize(("loc", "scale"), [
    (0.5, 0.1), (0.0, 0.01), (1.3, 0.3), (0.3, 1e-4), (0.5, 10.0), (-2.0, 0.05), (0.77, 1e-7),
])
def test_pixel_grid_with_edges_sums_to_one(loc, scale):
    """256 values k/255 with bins of 1/255: the edge bins take the tails, so the total is 1."""
    grid = t64(np.arange(256) / 255)
    dist = DiscretizedNormal(t64(loc), t64(scale), 1 / 255, low=0.0, high=1.0)
    total = dist.log_prob(grid).exp().sum()
    assert abs(float(total) - 1.0) < 1e-9
    inner = DiscretizedNormal(t64(loc), t64(scale), 1 / 255).log_prob(grid).exp().sum()
    assert float(inner) <= 1.0 + 1e-12  # without edges the tails are missing


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1e-6, 1e3])
def test_extreme_scales_stay_finite(dtype, scale):
    g = torch.Generator().manual_seed(2)
    loc = torch.randn(64, generator=g, dtype=dtype).requires_grad_()
    sigma = torch.full((64,), scale, dtype=dtype, requires_grad=True)
    x = torch.cat([loc.detach()[:8], 3 * torch.randn(56, generator=g, dtype=dtype)])
    lp = DiscretizedNormal(loc, sigma, 1e-3).log_prob(x)
    assert lp.dtype == dtype
    assert torch.isfinite(lp).all() and (lp <= 0).all()
    grads = torch.autograd.grad(lp.sum(), [loc, sigma])
    assert all(torch.isfinite(gr).all() for gr in grads)


@pytest.mark.parametrize(("width", "z", "edges"), [
    (0.4, [0.3, -1.2, 2.5, 0.0], {}),
    (1e-7, [0.3, -1.2, 2.5, 0.0], {}),
    (0.2, [-30.0, 30.0, 12.0, -4.0], {}),
    (0.25, [-3.0, -0.5, 0.5, 3.0], {"low": -0.9, "high": 0.9}),
])
def test_gradients_match_finite_differences(width, z, edges):
    loc = t64([0.2, -0.4, 0.1, 0.0]).requires_grad_()
    scale = t64([0.5, 1.0, 0.8, 2.0]).requires_grad_()
    x = loc.detach() + t64(z) * scale.detach()
    if edges:
        x = t64([-1.0, -0.25, 0.25, 1.0])  # grid 0.5 apart, edges at ±1
    assert torch.autograd.gradcheck(
        lambda m, s: DiscretizedNormal(m, s, width, **edges).log_prob(x), (loc, scale))


def test_observation_is_a_density_or_a_binned_probability():
    loc, scale = torch.zeros(2, 5), torch.ones(2, 5)
    dens = gaussian_observation(loc, scale)
    binned = gaussian_observation(loc, scale, bin_width=1e-3)
    assert dens.event_shape == binned.event_shape == (5,)
    x = torch.randn(2, 5)
    torch.testing.assert_close(binned.log_prob(x), dens.log_prob(x) + 5 * math.log(1e-3))
    frames = gaussian_observation(torch.zeros(2, 1, 3, 3), torch.ones(2, 1, 3, 3), 0.1, 3)
    assert (frames.batch_shape, frames.event_shape) == ((2,), (1, 3, 3))


def test_bin_width_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        DiscretizedNormal(torch.zeros(3), torch.ones(3), 0.0)
    with pytest.raises(ValueError, match="positive"):
        DiscretizedNormal(torch.zeros(3), torch.ones(3), torch.tensor([0.1, -0.1, 0.1]))


def gaussian_vrnn() -> VRNN:
    return VRNN(x_dim=4, latent_dim=2, rnn_dim=4, feature_dim=4, hidden=4,
                output="gaussian", bin_width=0.01)


def test_discretized_switches_the_flag_and_restores_it_after_an_error():
    model = gaussian_vrnn()
    with discretized(model) as scored:
        assert scored is model and model.discretized
    assert model.discretized is False
    with pytest.raises(RuntimeError, match="boom"), discretized(model):
        assert model.discretized
        raise RuntimeError("boom")
    assert model.discretized is False
    with discretized(model, enabled=False):
        assert model.discretized is False
    model.discretized = True  # nested use returns to the outer setting
    with discretized(model):
        pass
    assert model.discretized is True


def test_discretized_refuses_models_without_a_bin():
    bernoulli = VRNN(x_dim=4, latent_dim=2, rnn_dim=4, feature_dim=4, hidden=4)
    with pytest.raises(ValueError, match="bin_width"), discretized(bernoulli):
        pass
    assert bernoulli.discretized is False
    no_bin = VRNN(x_dim=4, latent_dim=2, rnn_dim=4, feature_dim=4, hidden=4, output="gaussian")
    with pytest.raises(ValueError, match="quantisation bin"), discretized(no_bin):
        pass
    with pytest.raises(ValueError, match="quantisation bin"), discretized(torch.nn.Linear(2, 2)):
        pass

"""VRNN and SRNN with Gaussian observations (raw speech frames): shapes, limits, SRNN's two
paths on continuous data, learning with the baseline encoders and AVF, discretised scores."""

import copy
import math

import pytest
import torch
from torch.distributions import Normal

from avf import Iterative, StreamingFilter, backward, filter_sequences
from avf.discretized import DiscretizedNormal, discretized
from avf.evaluation import evaluate
from avf.models import SRNN, VRNN
from avf.models.observations import LOG_VAR_RANGE, soft_clamp

X, Z, B, T = 200, 4, 3, 6
BIN = 1e-3
BUILD = {
    "vrnn": lambda **kw: VRNN(x_dim=X, latent_dim=Z, rnn_dim=16, feature_dim=16, hidden=16, **kw),
    "srnn": lambda **kw: SRNN(x_dim=X, latent_dim=Z, rnn_dim=16, hidden=16, **kw),
}
NAMES = list(BUILD)


def gaussian(name: str, **options):
    torch.manual_seed(0)
    return BUILD[name](output="gaussian", **options)


def speech(batch: int = B, steps: int = T, seed: int = 1) -> torch.Tensor:
    """Standardised-looking frames: a per-sequence sinusoid, plus a level and a noise scale
    for each position in the frame (which even a few optimiser steps can pick up)."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(batch, 1, 1, generator=g) * 2 * math.pi
    samples = torch.arange(steps * X, dtype=torch.float32).reshape(1, steps, X)
    level = torch.linspace(-2, 2, X)
    noise = torch.linspace(0.1, 1.0, X) * torch.randn(batch, steps, X, generator=g)
    return level + 0.5 * torch.sin(0.05 * samples + phase) + noise


@pytest.mark.parametrize("name", NAMES)
def test_likelihood_is_a_gaussian_over_the_frame(name):
    model = gaussian(name)
    state = model.initial_state(B)
    z = model.prior(state).rsample((2,))
    lik = model.likelihood(z, state)
    assert isinstance(lik.base_dist, Normal)
    assert (lik.batch_shape, lik.event_shape) == ((2, B), (X,))
    lp = lik.log_prob(lik.sample())
    assert lp.shape == (2, B) and torch.isfinite(lp).all()
    low, high = LOG_VAR_RANGE
    log_var = 2 * lik.base_dist.scale.log()
    assert bool(((log_var > low - 1e-3) & (log_var < high)).all())
    assert model.discretized is False
    assert not any("discret" in key or "bin" in key for key in model.state_dict())


def test_log_variance_is_soft_limited():
    """Identity inside the range, never past it, and a gradient everywhere (unlike clamp)."""
    low, high = LOG_VAR_RANGE
    x = torch.tensor([-1e4, low - 5, -3.0, 0.0, 2.0, high + 5, 1e4], requires_grad=True)
    y = soft_clamp(x, low, high)
    torch.testing.assert_close(y[2:5], x[2:5], atol=0.05, rtol=0)
    assert bool(((y >= low - 1e-6) & (y <= high)).all())
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert bool((grad[1:-1] > 0).all()) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_default_output_stays_bernoulli(name):
    model = BUILD[name]()
    assert (model.output, model.bin_width, model.discretized) == ("bernoulli", None, False)
    assert model.decoder_head.out_features == X  # music checkpoints keep their shapes


@pytest.mark.parametrize("name", NAMES)
def test_bad_output_options_fail_when_built(name):
    with pytest.raises(ValueError, match="output='gaussian'"):
        BUILD[name](bin_width=BIN)
    with pytest.raises(ValueError, match="'bernoulli' or 'gaussian'"):
        BUILD[name](output="laplace")
    with pytest.raises(ValueError, match="positive"):
        BUILD[name](output="gaussian", bin_width=0.0)
    with pytest.raises(ValueError, match="log_var_range"):
        BUILD[name](output="gaussian", log_var_range=(2.0, -2.0))


def test_srnn_precompute_stepwise_and_streaming_agree_on_continuous_data():
    model = gaussian("srnn")
    encoder = model.baseline_encoder(hidden=16)
    twin = copy.deepcopy(model)
    twin.precompute = lambda _x: None  # the LSTM then steps in ``transition``
    x = speech()
    with torch.no_grad():
        torch.manual_seed(7)
        whole = filter_sequences(model, encoder, x)
        torch.manual_seed(7)
        stepwise = filter_sequences(twin, encoder, x)
        torch.manual_seed(7)
        stream = StreamingFilter(model, encoder, batch_size=B)
        steps = [stream.step(x[:, t]) for t in range(T)]
    torch.testing.assert_close(stepwise.free_energy, whole.free_energy)
    streamed = torch.stack([s.free_energy for s in steps], 1)
    torch.testing.assert_close(streamed, whole.free_energy)
    assert steps[-1].prediction.shape == (B, X)


def inference_for(model, kind: str):
    torch.manual_seed(1)
    if kind == "baseline":
        return model.baseline_encoder(hidden=16)
    return Iterative(Z, iterations=1, hidden=16)


@pytest.mark.parametrize("kind", ["baseline", "iterative"])
@pytest.mark.parametrize("name", NAMES)
def test_training_lowers_the_free_energy(name, kind):
    model = gaussian(name)
    inference = inference_for(model, kind)
    x = speech(batch=4, seed=2)
    params = [*model.parameters(), *inference.parameters()]
    optimiser = torch.optim.Adam(params, lr=1e-2)

    def score() -> float:
        torch.manual_seed(0)
        return evaluate(model, inference, [(x, None)]).free_energy

    before = score()
    for _ in range(8):
        optimiser.zero_grad()
        backward(filter_sequences(model, inference, x), model, inference)
        optimiser.step()
    after = score()
    assert after < before - 0.1 * abs(before), (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_discretised_score_is_the_density_times_the_bin(name):
    """With bins 1e-3 wide and σ near 1, log P(bin) = log p(x) + log w per sample to ~1e-7."""
    model = gaussian(name, bin_width=BIN)
    encoder = model.baseline_encoder(hidden=16)
    x = speech()
    torch.manual_seed(3)
    density = evaluate(model, encoder, [(x, None)])
    torch.manual_seed(3)
    with discretized(model):
        state = model.initial_state(B)
        assert isinstance(model.likelihood(model.prior(state).mean, state).base_dist,
                          DiscretizedNormal)
        binned = evaluate(model, encoder, [(x, None)])
    assert model.discretized is False
    shift = -X * math.log(BIN)  # −log w for each of the frame's samples
    assert binned.free_energy == pytest.approx(density.free_energy + shift, abs=1e-2)
    assert binned.recon == pytest.approx(density.recon + shift, abs=1e-2)
    assert binned.kl == pytest.approx(density.kl, abs=1e-4)

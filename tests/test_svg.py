"""SVG-LP: the step contract on frames, its posterior baseline, what learns, streaming, scoring."""

import pytest
import torch
from torch.distributions import Independent

from avf import Iterative, StreamingFilter, backward, filter_sequences, filter_step
from avf.discretized import DiscretizedNormal, discretized
from avf.model import latent_dim, sample_sequences, state_tensors
from avf.models.svg import SVG, SVGPosterior

B, T, Z, SIZE = 3, 4, 3, 64


def tiny(image_size: int = SIZE) -> SVG:
    torch.manual_seed(0)
    return SVG(latent_dim=Z, g_dim=8, rnn_dim=16, nf=4, image_size=image_size)


def squares(batch: int = B, steps: int = T, size: int = SIZE, seed: int = 1) -> torch.Tensor:
    """Moving-square videos [batch, steps, 1, size, size]: a bright square bouncing off walls."""
    g = torch.Generator().manual_seed(seed)
    side = size // 5
    span = size - side
    start = torch.randint(0, span, (batch, 2), generator=g)
    velocity = torch.randint(2, 6, (batch, 2), generator=g) * (torch.randint(0, 2, (batch, 2),
                                                                             generator=g) * 2 - 1)
    x = torch.zeros(batch, steps, 1, size, size)
    for t in range(steps):
        pos = (start + velocity * t) % (2 * span)
        pos = torch.where(pos > span, 2 * span - pos, pos)  # reflect at the walls
        for b in range(batch):
            r, c = pos[b].tolist()
            x[b, t, 0, r:r + side, c:c + side] = 1.0
    return x


def padded_mask() -> torch.Tensor:
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 2:] = False
    return mask


@pytest.mark.parametrize("image_size", [64, 32])
def test_prior_likelihood_and_transition_shapes(image_size):
    model = tiny(image_size)
    frame = (1, image_size, image_size)
    state = model.initial_state(B)
    assert all(t.shape[0] == B for t in state_tensors(state))
    prior = model.prior(state)
    assert (prior.batch_shape, prior.event_shape) == ((B,), (Z,))
    assert latent_dim(model) == Z
    z = prior.rsample()
    lik = model.likelihood(z, state)
    assert (lik.batch_shape, lik.event_shape) == ((B,), frame)
    x = squares(size=image_size)[:, 0]
    assert lik.log_prob(x).shape == (B,)
    nxt = model.transition(state, z, x)
    assert [t.shape for t in state_tensors(nxt)] == [t.shape for t in state_tensors(state)]
    frames, zs = sample_sequences(model, B, 2)
    assert frames.shape == (B, 2, *frame) and zs.shape == (B, 2, Z)


def test_likelihood_with_sample_dimension_matches_one_sample_at_a_time():
    model = tiny()
    state = model.transition(model.initial_state(B), torch.randn(B, Z), squares()[:, 0])
    zs = torch.randn(2, B, Z)
    many = model.likelihood(zs, state)
    assert many.batch_shape == (2, B)
    x = squares()[:, 1]
    assert many.log_prob(x).shape == (2, B)
    for s in range(2):
        one = model.likelihood(zs[s], state)
        torch.testing.assert_close(many.mean[s], one.mean)
        torch.testing.assert_close(many.log_prob(x)[s], one.log_prob(x))


def test_mean_is_a_frame_and_the_variance_stays_in_range():
    model = tiny()
    state = model.initial_state(B)
    lik = model.likelihood(model.prior(state).sample(), state)
    assert bool(((lik.mean > 0) & (lik.mean < 1)).all())
    low, high = model.log_var_range
    log_var = lik.variance.log()
    assert bool(((log_var >= low - 1e-4) & (log_var <= high + 1e-4)).all())


@pytest.mark.parametrize("kind", ["baseline", "iterative"])
def test_filters_a_masked_batch_with_finite_free_energy(kind):
    model = tiny()
    inference = model.baseline_encoder() if kind == "baseline" else Iterative(Z, 2, hidden=16)
    mask = padded_mask()
    out = filter_sequences(model, inference, squares(), mask)
    assert out.free_energy.shape == (B, T)
    assert bool(torch.isfinite(out.free_energy).all())
    assert float(out.free_energy.detach()[~mask].abs().sum()) == 0.0
    assert out.trace.shape[-1] == inference.iterations + 1
    backward(out, model, inference)
    assert all(p.grad is not None for p in model.encoder.parameters())


def test_posterior_learns_from_the_inference_loss_and_the_encoder_from_the_model_loss():
    model = tiny()
    posterior = model.baseline_encoder()
    assert isinstance(posterior, SVGPosterior)
    x = squares()
    theta, phi = list(model.parameters()), list(posterior.parameters())
    assert not {id(p) for p in theta} & {id(p) for p in phi}  # E stays with the model
    # λ has no path back to θ (E(x_t) is read as a constant), at any step
    state, carry = model.initial_state(B), posterior.initial_carry(B, x.device)
    for t in range(2):
        step = filter_step(model, posterior, state, carry, x[:, t])
        state, carry = step.state, step.carry
        assert all(g is None for g in torch.autograd.grad(step.params.sum(), theta,
                                                          allow_unused=True))
    out = filter_sequences(model, posterior, x, padded_mask())
    want_theta = torch.autograd.grad(out.model_loss, theta, retain_graph=True)
    want_phi = torch.autograd.grad(out.inference_loss, phi, retain_graph=True)
    backward(out, model, posterior)
    for p, g in zip(theta, want_theta, strict=True):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(phi, want_phi, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert all(float(p.grad.abs().sum()) > 0 for p in phi)
    assert all(float(p.grad.abs().sum()) > 0 for p in model.encoder.parameters())


def test_training_the_posterior_alone_leaves_the_model_untouched():
    model = tiny()
    posterior = model.baseline_encoder()
    backward(filter_sequences(model, posterior, squares()), None, posterior)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is not None for p in posterior.parameters())


def test_posterior_carry_is_the_lstm_state():
    model = tiny()
    posterior = model.baseline_encoder()
    x = squares()
    state, carry = model.initial_state(B), posterior.initial_carry(B, x.device)
    for t in range(2):
        out = filter_step(model, posterior, state, carry, x[:, t])
        assert out.carry[0].shape == (B, 1, model.rnn_dim)
        assert not torch.equal(out.carry[0], carry[0])
        state, carry = out.state, out.carry


def test_streaming_matches_whole_sequences():
    model = tiny()
    posterior = model.baseline_encoder()
    x = squares()
    torch.manual_seed(7)
    with torch.no_grad():
        whole = filter_sequences(model, posterior, x)
    torch.manual_seed(7)
    stream = StreamingFilter(model, posterior, batch_size=B)
    steps = [stream.step(x[:, t]) for t in range(T)]
    torch.testing.assert_close(torch.stack([s.free_energy for s in steps], 1), whole.free_energy)
    torch.testing.assert_close(torch.stack([s.params for s in steps], 1), whole.params)
    assert steps[-1].prediction.shape == (B, 1, SIZE, SIZE)


def test_a_few_adam_steps_lower_the_free_energy():
    model = tiny()
    posterior = model.baseline_encoder()
    x = squares(batch=4)
    optimiser = torch.optim.Adam([*model.parameters(), *posterior.parameters()], lr=1e-2)

    def evaluate() -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return filter_sequences(model, posterior, x).per_step()

    before = evaluate()
    for _ in range(5):
        optimiser.zero_grad()
        backward(filter_sequences(model, posterior, x), model, posterior)
        optimiser.step()
    after = evaluate()
    assert after < 0.9 * before, (before, after)


def test_discretised_scoring_is_a_probability():
    model = tiny()
    posterior = model.baseline_encoder()
    x = torch.round(squares() * 255) / 255
    state = model.initial_state(B)
    with discretized(model):
        lik = model.likelihood(model.prior(state).sample(), state)
        assert isinstance(lik, Independent) and isinstance(lik.base_dist, DiscretizedNormal)
        assert bool((lik.base_dist.log_prob(x[:, 0]) <= 0).all())  # −log P ≥ 0 per pixel
        with torch.no_grad():
            scored = filter_sequences(model, posterior, x)
    assert not model.discretized
    assert bool(torch.isfinite(scored.free_energy).all())
    assert bool((scored.recon >= 0).all())
    assert bool((scored.free_energy >= scored.recon).all())


def test_paper_sizes():
    options = {"channels": 1, "latent_dim": 24, "g_dim": 128, "rnn_dim": 256, "nf": 64,
               "predictor_layers": 2, "prior_layers": 1}
    from avf.models.svg import PAPER_SIZES

    assert PAPER_SIZES["kth"] == options
    assert PAPER_SIZES["smmnist"]["latent_dim"] == 10
    with pytest.raises(ValueError, match="unknown dataset"):
        SVG.paper("bair")
    with pytest.raises(ValueError, match="power of two"):
        SVG(image_size=48)

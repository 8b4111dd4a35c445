"""SRNN, VRNN and DMM: the step contract, SRNN's two equal paths, baselines, what learns."""

import copy

import pytest
import torch
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from avf import (
    Direct,
    GradientDescent,
    Iterative,
    StreamingFilter,
    backward,
    filter_sequences,
    filter_step,
    sample_sequences,
)
from avf.builders import build_inference, build_model
from avf.config import InferenceConfig, ModelConfig
from avf.model import state_dim, state_tensors
from avf.models import DMM, SRNN, VRNN
from avf.models.encoders import DMMEncoder, SRNNEncoder, VRNNEncoder

X, Z, B, T = 6, 3, 4, 5
SMALL = {
    "srnn": lambda: SRNN(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8),
    "vrnn": lambda: VRNN(x_dim=X, latent_dim=Z, rnn_dim=8, feature_dim=8, hidden=8),
    "vrnn_gru": lambda: VRNN(x_dim=X, latent_dim=Z, rnn_dim=8, feature_dim=8, hidden=8,
                             rnn="gru"),
    "dmm": lambda: DMM(x_dim=X, latent_dim=Z, transition_dim=8, emission_dim=8),
}
ENCODER_OPTIONS = {"srnn": {"hidden": 8}, "vrnn": {"hidden": 8}, "vrnn_gru": {"hidden": 8},
                   "dmm": {"rnn_dim": 8}}
NAMES = list(SMALL)


def small(name: str):
    torch.manual_seed(0)
    model = SMALL[name]()
    return model, model.baseline_encoder(**ENCODER_OPTIONS[name])


def data(batch: int = B, steps: int = T, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, steps, X, generator=g) < 0.4).float()


def padded_mask() -> torch.Tensor:
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 1:] = False
    return mask


@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_sample_dimensions(name):
    model, _ = small(name)
    assert (model.x_dim, model.latent_dim) == (X, Z)
    state = model.initial_state(B)
    prior = model.prior(state)
    assert isinstance(prior, Distribution)
    assert (prior.batch_shape, prior.event_shape) == ((B,), (Z,))
    z = prior.rsample()
    lik = model.likelihood(z, state)
    assert (lik.batch_shape, lik.event_shape) == ((B,), (X,))
    many = model.likelihood(prior.rsample((2,)), state)
    assert many.batch_shape == (2, B)
    assert many.log_prob(data()[:, 0]).shape == (2, B)
    nxt = model.transition(state, z, data()[:, 0])
    assert [t.shape for t in state_tensors(nxt)] == [t.shape for t in state_tensors(state)]
    x, zs = sample_sequences(model, B, T)
    assert x.shape == (B, T, X) and zs.shape == (B, T, Z)


@pytest.mark.parametrize("name", NAMES)
def test_likelihood_of_sample_dimensions_scores_each_sample_as_alone(name):
    """The decoders meet the state once and broadcast it over z's samples (avf.nn.concat):
    scoring S samples at once must give each sample's own score."""
    model, _ = small(name)
    state = model.initial_state(B)
    state = model.transition(state, model.prior(state).sample(), data()[:, 0])
    z = model.prior(state).sample((3,))
    together = model.likelihood(z, state).log_prob(data()[:, 1])
    alone = torch.stack([model.likelihood(z_s, state).log_prob(data()[:, 1]) for z_s in z])
    torch.testing.assert_close(together, alone)


def test_srnn_fused_lstm_gives_the_stepwise_states():
    model, _ = small("srnn")
    x = data()
    context = model.precompute(x)
    state = model.initial_state(B)
    for t in range(T):
        torch.testing.assert_close(context["d"][:, t], state["d"])
        torch.testing.assert_close(context["c"][:, t], state["c"])
        state = model.transition(state, torch.randn(B, Z), x[:, t])


def stepwise(model: SRNN) -> SRNN:
    """The same SRNN without the precompute hook (the LSTM then steps in ``transition``)."""
    twin = copy.deepcopy(model)
    twin.precompute = lambda _x: None
    return twin


@pytest.mark.parametrize("inference", ["baseline", "direct"])
def test_srnn_precompute_and_stepwise_paths_agree(inference):
    """Same free energies, same trace and the same θ gradient (BPTT through either path)."""
    model, encoder = small("srnn")
    if inference == "direct":
        encoder = Direct(X, Z, state_dim(model), hidden=8)  # reads d, c and z from the state
    twin = stepwise(model)
    x, mask = data(), padded_mask()
    outs, grads = [], []
    for m in (model, twin):
        torch.manual_seed(3)
        out = filter_sequences(m, encoder, x, mask)
        outs.append(out)
        grads.append(torch.autograd.grad(out.model_loss, list(m.parameters())))
    torch.testing.assert_close(outs[0].free_energy, outs[1].free_energy)
    torch.testing.assert_close(outs[0].trace, outs[1].trace)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_srnn_streaming_matches_whole_sequences():
    model, encoder = small("srnn")
    x = data()
    torch.manual_seed(7)
    with torch.no_grad():
        whole = filter_sequences(model, encoder, x)
    torch.manual_seed(7)
    stream = StreamingFilter(model, encoder, batch_size=B)
    steps = [stream.step(x[:, t]) for t in range(T)]
    torch.testing.assert_close(torch.stack([s.free_energy for s in steps], 1), whole.free_energy)
    torch.testing.assert_close(torch.stack([s.params for s in steps], 1), whole.params)
    assert steps[-1].prediction.shape == (B, X)


def procedures(model, encoder):
    return {
        "iterative": Iterative(Z, iterations=2, hidden=8),
        "direct": Direct(X, Z, state_dim(model), hidden=8),
        "gradient": GradientDescent(iterations=2),
        "baseline": encoder,
    }


@pytest.mark.parametrize("name", NAMES)
def test_every_procedure_filters_a_masked_batch(name):
    model, encoder = small(name)
    mask = padded_mask()
    for label, inference in procedures(model, encoder).items():
        out = filter_sequences(model, inference, data(), mask)
        assert out.free_energy.shape == (B, T), label
        assert torch.isfinite(out.free_energy).all(), label
        assert float(out.free_energy.detach()[~mask].abs().sum()) == 0.0, label
        assert bool((out.free_energy.detach()[mask] > 0).all()), label
        backward(out, model, inference)


@pytest.mark.parametrize("name", NAMES)
def test_baseline_encoder_learns_only_from_the_inference_loss(name):
    model, encoder = small(name)
    out = filter_sequences(model, encoder, data(), padded_mask())
    theta, phi = list(model.parameters()), list(encoder.parameters())
    assert not {id(p) for p in theta} & {id(p) for p in phi}  # φ_x etc. stay with the model
    want_theta = torch.autograd.grad(out.model_loss, theta, retain_graph=True)
    want_phi = torch.autograd.grad(out.inference_loss, phi, retain_graph=True)
    backward(out, model, encoder)
    for p, g in zip(theta, want_theta, strict=True):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(phi, want_phi, strict=True):
        torch.testing.assert_close(p.grad, g)
    assert all(float(p.grad.abs().sum()) > 0 for p in phi)


@pytest.mark.parametrize("name", NAMES)
def test_baseline_posterior_does_not_depend_on_theta(name):
    """θ learns with λ held fixed: VRNN's encoder reads φ_x(x_t) as a constant."""
    model, encoder = small(name)
    x = data()
    state = model.initial_state(B)
    carry = encoder.initial_carry(B, x.device)
    for t in range(2):
        out = filter_step(model, encoder, state, carry, x[:, t])
        state, carry = out.state, out.carry
    grads = torch.autograd.grad(out.params.sum(), list(model.parameters()), allow_unused=True)
    assert all(g is None for g in grads)


def test_dmm_encoder_carry_skips_masked_steps():
    """The GRU over x_≤t advances only on scored steps, whatever the sequence lengths."""
    model, encoder = small("dmm")
    x, mask = data(), padded_mask()
    seen = []
    encoder.register_forward_hook(lambda _mod, args, out: seen.append((args[1], out.carry)))
    filter_sequences(model, encoder, x, mask)
    lengths = mask.sum(1).tolist()
    for b, length in enumerate(lengths):
        h = encoder.h_0[None]
        for t in range(length):
            h = encoder.rnn(x[b:b + 1, t], h)
        final = seen[-1][1] if length == T else seen[-1][0]  # carry after step `length`
        torch.testing.assert_close(final[b], h[0])


def test_dmm_prior_scale_is_softly_bounded():
    """A huge z_{t-1} cannot push σ past e² or down to 0; inside the range little changes."""
    torch.manual_seed(0)
    bounded = DMM(x_dim=X, latent_dim=Z, transition_dim=8, emission_dim=8,
                  prior_log_var_range=(-14.0, 4.0))
    free = DMM(x_dim=X, latent_dim=Z, transition_dim=8, emission_dim=8)  # the paper's: no bound
    free.load_state_dict(bounded.state_dict())
    z = torch.randn(64, Z)
    inside, raw = bounded.prior(z).base_dist.scale, free.prior(z).base_dist.scale
    torch.testing.assert_close(inside, raw, rtol=0.01, atol=0.0)
    with torch.no_grad():  # a scale head that swings σ to both extremes for a large input
        for net in (bounded, free):
            net.transition_net.scale.weight.copy_(torch.linspace(-50, 50, Z)[:, None].expand(Z, Z))
    huge = (1e4 * torch.randn(16, Z)).requires_grad_()
    scale = bounded.prior(huge).base_dist.scale
    assert torch.isfinite(scale).all() and (scale > 0).all()
    assert scale.max() <= torch.tensor(2.0).exp() and scale.min() >= torch.tensor(-7.0).exp()
    _, raw_scale = free.transition_net(huge)
    assert raw_scale.min() == 0 and raw_scale.max() > 1e4  # what the bound prevents
    scale.sum().backward()
    assert torch.isfinite(huge.grad).all()


@pytest.mark.parametrize("bounds", [[4.0, -14.0], [1.0], ["a", 2.0]])
def test_dmm_prior_bounds_are_checked(bounds):
    with pytest.raises(ValueError, match="prior_log_var_range must be \\[low, high\\]"):
        DMM(prior_log_var_range=bounds)


def test_srnn_prior_log_variance_is_softly_bounded_when_asked():
    """Off by default; with the bound, a prior head that swings log σ² to ±90 stays in range,
    and the KL to a posterior a little off the prior's mean keeps finite gradients."""
    torch.manual_seed(0)
    sizes = dict(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8)
    bounded = SRNN(**sizes, prior_log_var_range=(-14.0, 4.0))
    free = SRNN(**sizes)  # the paper's: no bound
    free.load_state_dict(bounded.state_dict())
    state = {k: v.detach() for k, v in bounded.initial_state(16).items()}
    torch.testing.assert_close(bounded.prior(state).base_dist.scale,
                               free.prior(state).base_dist.scale, rtol=0.01, atol=0.0)
    with torch.no_grad():
        for net in (bounded, free):
            net.prior_head.bias[Z:] = torch.linspace(-90, 90, Z)
    for net, finite in ((bounded, True), (free, False)):
        prior = net.prior(state)
        log_var = 2 * prior.base_dist.scale.log()
        if finite:
            assert log_var.min() > -14.5 and log_var.max() < 4.5
        else:
            assert log_var.min() < -80 and log_var.max() > 80
        q = Independent(Normal(prior.mean.detach() + 0.01, torch.ones_like(prior.mean)), 1)
        net.zero_grad()
        kl_divergence(q, prior).sum().backward()
        assert bool(torch.isfinite(net.prior_head.bias.grad).all()) == finite


@pytest.mark.parametrize("bounds", [[4.0, -14.0], [1.0]])
def test_srnn_prior_bounds_are_checked(bounds):
    with pytest.raises(ValueError, match="prior_log_var_range must be \\[low, high\\]"):
        SRNN(prior_log_var_range=bounds)


@pytest.mark.parametrize("name", ["srnn", "vrnn", "dmm"])
def test_training_lowers_the_free_energy(name):
    model, encoder = small(name)
    g = torch.Generator().manual_seed(2)
    probs = torch.linspace(0.05, 0.95, X)
    x = (torch.rand(8, T, X, generator=g) < probs).float()
    optimiser = torch.optim.Adam([*model.parameters(), *encoder.parameters()], lr=1e-2)

    def evaluate() -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return filter_sequences(model, encoder, x).per_step()

    before = evaluate()
    for _ in range(30):
        optimiser.zero_grad()
        backward(filter_sequences(model, encoder, x), model, encoder)
        optimiser.step()
    after = evaluate()
    assert after < before - 0.5, (before, after)


@pytest.mark.parametrize(("name", "encoder_type", "options"), [
    ("srnn", SRNNEncoder, {"hidden": 8, "layers": 1}),
    ("vrnn", VRNNEncoder, {"hidden": 8}),
    ("dmm", DMMEncoder, {"rnn_dim": 8}),
])
def test_builders_make_the_models_and_their_baselines(name, encoder_type, options):
    model = build_model(ModelConfig(name, {"x_dim": X, "latent_dim": Z}))
    assert type(model).__name__ == name.upper()
    encoder = build_inference(InferenceConfig("baseline", options), model, X)
    assert isinstance(encoder, encoder_type)
    with pytest.raises(ValueError, match="unknown option 'nope'"):
        build_inference(InferenceConfig("baseline", {"nope": 1}), model, X)


def test_srnn_dropout_drops_d_in_training_but_not_the_lstm_recurrence():
    torch.manual_seed(0)
    plain = SRNN(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8)
    dropped = SRNN(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8, dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = data()
    h = plain.precompute(x)["d"]
    context = dropped.precompute(x)
    torch.testing.assert_close(context["h"], h)
    kept = context["d"] != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(context["d"][kept], 2 * h[kept])  # inverted dropout, p = 0.5
    state = dropped.initial_state(B)  # the stepwise path carries the undropped output too
    for t in range(T):
        torch.testing.assert_close(state["h"], h[:, t])
        state = dropped.transition(state, torch.randn(B, Z), x[:, t])
    dropped.eval()
    assert torch.equal(dropped.precompute(x)["d"], h)
    with pytest.raises(ValueError, match="dropout"):
        SRNN(dropout=1.0)


def test_srnn_dropout_mask_is_shared_by_the_iterations_of_a_step():
    torch.manual_seed(0)
    model = SRNN(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8, dropout=0.5)
    seen = []
    likelihood = model.likelihood

    def spy(z, state):
        if state["d"].shape[0] == B:  # not the batch-1 probe of the model's sizes
            seen.append(state["d"].detach().clone())
        return likelihood(z, state)

    model.likelihood = spy
    filter_sequences(model, Iterative(Z, iterations=3, hidden=8), data())
    distinct = []
    for d in seen:
        if not any(torch.equal(d, e) for e in distinct):
            distinct.append(d)
    assert len(seen) > T and len(distinct) == T


@pytest.mark.parametrize("stepwise_twin", [False, True], ids=["fused", "stepwise"])
def test_srnn_with_dropout_scores_like_without_it_in_eval_mode(stepwise_twin):
    torch.manual_seed(0)
    plain = SRNN(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8)
    dropped = SRNN(x_dim=X, latent_dim=Z, rnn_dim=8, hidden=8, dropout=0.3)
    dropped.load_state_dict(plain.state_dict())
    if stepwise_twin:
        dropped = stepwise(dropped)
    encoder = plain.baseline_encoder(hidden=8)
    x, mask = data(), padded_mask()
    outs = []
    for m in (plain.eval(), dropped.eval()):
        torch.manual_seed(3)
        outs.append(filter_sequences(m, encoder, x, mask))
    torch.testing.assert_close(outs[0].free_energy, outs[1].free_energy)

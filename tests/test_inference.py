"""Inference procedures: interchangeable, and each does what it claims."""

import pytest
import torch

from avf import Direct, GradientDescent, Iterative, PriorOnly, filter_sequences, sample_sequences
from avf.inference.base import StepProblem
from avf.model import state_dim
from avf.models import LinearGaussian
from avf.posteriors import DiagonalGaussian
from conftest import ExactLGSSMPosterior, TinyDeepModel, frozen


def test_gradient_descent_finds_the_exact_posterior():
    torch.manual_seed(0)
    model = frozen(LinearGaussian.random(4, 4, seed=0))
    state = model.initial_state(8)
    x = torch.randn(8, 4)
    prior = model.prior(state)
    problem = StepProblem(model, state, prior, x, DiagonalGaussian())
    gd = GradientDescent(iterations=300, lr=0.05, n_samples=16)
    found = gd(problem).params
    exact = ExactLGSSMPosterior(model)(problem).params
    torch.testing.assert_close(found, exact, atol=0.1, rtol=0.0)
    trace = torch.stack(gd(problem).trace, -1).mean(0)
    assert trace[-1] < trace[0] - 1.0


@pytest.mark.parametrize("encoding", ["signlog", "layernorm", "hybrid", "raw"])
@pytest.mark.parametrize("update", ["highway", "learned_step", "residual"])
def test_iterative_variants_run_on_any_model(encoding, update, binary_data):
    torch.manual_seed(0)
    model = TinyDeepModel()
    inference = Iterative(3, iterations=2, hidden=16, encoding=encoding, update=update, x_dim=5)
    out = filter_sequences(model, inference, binary_data)
    assert out.trace.shape == (*binary_data.shape[:2], 3)
    assert torch.isfinite(out.inference_loss)


def test_every_procedure_works_unchanged_on_two_models():
    torch.manual_seed(0)
    lgssm = frozen(LinearGaussian.random(2, 2, seed=0))
    deep = TinyDeepModel(x_dim=2, z_dim=2)
    for model in (lgssm, deep):
        x, _ = sample_sequences(model, 3, 4)
        procedures = [PriorOnly(), Direct(2, 2, state_dim(model), hidden=8),
                      Iterative(2, 2, hidden=8), GradientDescent(3)]
        for proc in procedures:
            out = filter_sequences(model, proc, x)
            assert out.free_energy.shape == (3, 4)


def test_iterative_learns_to_beat_the_prior():
    """A short training run of AVF on a fixed LGSSM closes most of the prior's gap."""
    torch.manual_seed(0)
    model = frozen(LinearGaussian.random(2, 2, seed=0))
    x, _ = sample_sequences(model, 64, 10)
    inference = Iterative(2, iterations=1, hidden=64)
    opt = torch.optim.Adam(inference.parameters(), lr=3e-3)
    for _ in range(150):
        out = filter_sequences(model, inference, x)
        opt.zero_grad()
        out.inference_loss.backward()
        opt.step()
    with torch.no_grad():
        learned = filter_sequences(model, inference, x).per_step()
        prior_only = filter_sequences(model, PriorOnly(), x).per_step()
    best = float(model.optimal_filtering_free_energy(x).mean())
    assert learned - best < 0.3 * (prior_only - best)


@pytest.mark.parametrize("encoding", ["signlog", "layernorm", "hybrid", "raw"])
def test_each_encoding_treats_parameters_gradients_and_data_as_documented(encoding):
    """Blocks: means, log-variances (3 each), then their gradients, then x_t (2)."""
    torch.manual_seed(0)
    inference = Iterative(3, hidden=8, encoding=encoding, x_dim=2)
    params, grad, x = torch.randn(4, 6), 100 * torch.randn(4, 6), torch.randn(4, 2)
    with torch.no_grad():
        out = inference._encode(params, grad, x)
        scaled = inference._encode(10 * params, 10 * grad, 10 * x)

    def normalised(block):  # layer norm at its initial unit gain and zero bias
        return (block - block.mean(-1, keepdim=True)) / block.std(-1, unbiased=False,
                                                                   keepdim=True)

    expect_params = params if encoding in ("signlog", "raw") else torch.cat(
        [normalised(params[:, :3]), normalised(params[:, 3:])], -1)
    expect_grad = {"layernorm": torch.cat([normalised(grad[:, :3]), normalised(grad[:, 3:])], -1),
                   "raw": grad}.get(encoding, torch.sign(grad) * torch.log1p(grad.abs()))
    expect_x = normalised(x) if encoding == "layernorm" else x
    torch.testing.assert_close(out, torch.cat([expect_params, expect_grad, expect_x], -1),
                               atol=1e-4, rtol=1e-4)
    # only layer-normalised blocks forget the scale of their input
    forgets = [encoding != "signlog" and encoding != "raw"] * 6 + [encoding == "layernorm"] * 6
    forgets += [encoding == "layernorm"] * 2
    same = (out - scaled).abs().amax(0) < 1e-3
    assert same.tolist() == forgets


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="iterations"):
        Iterative(2, iterations=0)
    with pytest.raises(ValueError, match="encoding"):
        Iterative(2, encoding="batchnorm")
    with pytest.raises(ValueError, match="update"):
        Iterative(2, update="adam")
    with pytest.raises(ValueError, match="grad_samples must be at least 1"):
        Iterative(2, grad_samples=0)
    with pytest.raises(ValueError, match="grad_samples must be even"):
        Iterative(2, grad_samples=3, antithetic=True)
    with pytest.raises(ValueError, match="optimizer"):
        GradientDescent(optimizer="lbfgs")


@pytest.mark.parametrize("gate_bias", [1.0, -1.0])
def test_the_first_highway_update_keeps_sigmoid_gate_bias_of_the_prior(gate_bias):
    torch.manual_seed(0)
    inference = Iterative(3, hidden=8, gate_bias=gate_bias)
    with torch.no_grad():  # silence the body: the update is then the bare gate
        inference.gate.weight.zero_()
        inference.output.weight.zero_()
        inference.output.bias.zero_()
    params = torch.randn(4, 6)
    new = inference.step(params, torch.randn(4, 6), torch.zeros(4, 0))
    keep = torch.sigmoid(torch.tensor(gate_bias))
    torch.testing.assert_close(new, keep * params)


def test_the_residual_update_starts_at_the_prior_and_then_learns(binary_data):
    torch.manual_seed(0)
    model = TinyDeepModel()
    inference = Iterative(3, iterations=1, hidden=16, update="residual", x_dim=5)
    assert inference.gate is None
    params = torch.randn(4, 6)
    assert torch.equal(inference.step(params, torch.randn(4, 6), torch.randn(4, 5)), params)
    out = filter_sequences(model, inference, binary_data)
    out.inference_loss.backward(inputs=list(inference.parameters()))
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in
               (inference.output.weight, inference.output.bias))


def test_antithetic_gradient_samples_reach_the_update_and_train(binary_data, monkeypatch):
    import avf.objectives

    drawn = []
    pairs = avf.objectives.antithetic_rsample

    def spy(q, n_samples):
        z = pairs(q, n_samples)
        drawn.append(z)
        return z

    monkeypatch.setattr(avf.objectives, "antithetic_rsample", spy)
    torch.manual_seed(0)
    model = TinyDeepModel()
    inference = Iterative(3, iterations=2, hidden=16, grad_samples=4, antithetic=True)
    out = filter_sequences(model, inference, binary_data)
    steps = binary_data.shape[1]
    assert len(drawn) == 2 * steps  # one gradient input per iteration and step
    for z in drawn:
        assert z.shape[0] == 4
        torch.testing.assert_close(z[:2] + z[2:], 2 * z.mean(0, keepdim=True).expand(2, -1, -1))
    out.inference_loss.backward()
    assert all(p.grad is not None for p in inference.parameters())

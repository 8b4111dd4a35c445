"""What learns from what: θ from the final posterior (BPTT), φ from every iteration, locally."""

import pytest
import torch

from avf import Direct, Iterative, backward, filter_sequences, filter_step
from avf.inference.iterative import Iterative as IterativeClass
from avf.model import state_dim


def theta_phi(model, inference):
    return list(model.parameters()), list(inference.parameters())


@pytest.fixture
def iterative():
    torch.manual_seed(1)
    return Iterative(latent_dim=3, iterations=3, hidden=16)


def test_model_update_alone_leaves_phi_without_gradient(tiny_model, iterative, binary_data):
    """The θ loss shares its graph with the φ loss, but its gradient never lands in φ."""
    out = filter_sequences(tiny_model, iterative, binary_data)
    backward(out, tiny_model, None)
    assert all(p.grad is None for p in iterative.parameters())
    assert all(p.grad is not None for p in tiny_model.parameters())


def test_backward_sends_each_loss_to_its_own_parameters(tiny_model, iterative, binary_data):
    out = filter_sequences(tiny_model, iterative, binary_data)
    theta, phi = theta_phi(tiny_model, iterative)
    want_theta = torch.autograd.grad(out.model_loss, theta, retain_graph=True)
    want_phi = torch.autograd.grad(out.inference_loss, phi, retain_graph=True)
    backward(out, tiny_model, iterative)
    for p, g in zip(theta, want_theta, strict=True):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(phi, want_phi, strict=True):
        torch.testing.assert_close(p.grad, g)
    # and the φ loss differs from the θ loss, so the split is not a no-op
    assert float(out.inference_loss.detach()) > float(out.model_loss.detach())


def test_inference_loss_counts_every_iteration(tiny_model, iterative, binary_data):
    out = filter_sequences(tiny_model, iterative, binary_data)
    n = out.mask.sum()
    # trace[..., k] is F_t(λ_k); the φ loss is Σ_{k=1..K} F_t(λ_k), the θ loss only k = K
    extra = out.trace[..., 1:-1].sum() / n
    torch.testing.assert_close(out.inference_loss - out.model_loss, extra.to(out.model_loss.dtype))
    assert out.trace.shape[-1] == iterative.iterations + 1


def test_posterior_parameters_do_not_depend_on_theta(tiny_model, iterative, binary_data):
    """θ learns with λ held fixed: no path from λ back to the model (prior is a constant)."""
    state = tiny_model.initial_state(binary_data.shape[0])
    out = filter_step(tiny_model, iterative, state, None, binary_data[:, 0])
    grads = torch.autograd.grad(out.params.sum(), list(tiny_model.parameters()),
                                allow_unused=True)
    assert all(g is None for g in grads)


def test_phi_gets_no_gradient_from_later_steps(tiny_model, iterative, binary_data):
    """The sample fed to the next state is detached, so step t's loss never reaches λ_{t-1}."""
    state = tiny_model.initial_state(binary_data.shape[0])
    first = filter_step(tiny_model, iterative, state, None, binary_data[:, 0])
    second = filter_step(tiny_model, iterative, first.state, None, binary_data[:, 1])
    loss = second.terms.objective.sum() + second.extra_loss.sum()
    (g,) = torch.autograd.grad(loss, [first.params], allow_unused=True)
    assert g is None


def test_model_loss_backpropagates_through_time(tiny_model, iterative, binary_data):
    """θ's loss at step 2 reaches the state computed at step 1 (BPTT through the state)."""
    state = tiny_model.initial_state(binary_data.shape[0])
    first = filter_step(tiny_model, iterative, state, None, binary_data[:, 0])
    second = filter_step(tiny_model, iterative, first.state, None, binary_data[:, 1])
    (g,) = torch.autograd.grad(second.terms.objective.sum(), [first.state], retain_graph=True)
    assert g is not None and float(g.abs().sum()) > 0
    gates = torch.autograd.grad(second.terms.objective.sum(), [tiny_model.cell.weight_ih])
    assert float(gates[0].abs().sum()) > 0


def test_gradient_inputs_are_constants(tiny_model, binary_data, monkeypatch):
    seen = []
    original = IterativeClass.step

    def spy(self, params, grad, x):
        seen.append(grad)
        return original(self, params, grad, x)

    monkeypatch.setattr(IterativeClass, "step", spy)
    inference = Iterative(latent_dim=3, iterations=2, hidden=16)
    filter_sequences(tiny_model, inference, binary_data)
    assert len(seen) == 2 * binary_data.shape[1]
    assert all(not g.requires_grad and g.grad_fn is None for g in seen)


def test_direct_encoder_sees_a_constant_state(tiny_model, binary_data):
    torch.manual_seed(0)
    direct = Direct(x_dim=5, latent_dim=3, state_dim=state_dim(tiny_model), hidden=16)
    state = tiny_model.initial_state(binary_data.shape[0]) + 0.1
    state.requires_grad_(True)
    out = filter_step(tiny_model, direct, state, None, binary_data[:, 0])
    (g,) = torch.autograd.grad(out.params.sum(), [state], allow_unused=True)
    assert g is None


def test_training_only_inference_leaves_theta_untouched(tiny_model, iterative, binary_data):
    out = filter_sequences(tiny_model, iterative, binary_data)
    backward(out, None, iterative)
    assert all(p.grad is None for p in tiny_model.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in iterative.parameters())


def test_evaluation_keeps_no_graph(tiny_model, iterative, binary_data):
    with torch.no_grad():
        out = filter_sequences(tiny_model, iterative, binary_data)
    assert out.free_energy.grad_fn is None and out.model_loss.grad_fn is None
    # AVF still improved on the prior at test time, which needs gradients inside no_grad
    assert torch.isfinite(out.trace).all()


def test_kl_weight_scales_objective_not_reported_free_energy(tiny_model, iterative, binary_data):
    torch.manual_seed(5)
    full = filter_sequences(tiny_model, iterative, binary_data, beta=1.0)
    torch.manual_seed(5)
    half = filter_sequences(tiny_model, iterative, binary_data, beta=0.0)
    n = full.mask.sum()
    torch.testing.assert_close(half.model_loss, half.recon.sum() / n)
    torch.testing.assert_close(full.model_loss, full.free_energy.sum() / n)
    assert torch.all(half.free_energy >= half.recon)

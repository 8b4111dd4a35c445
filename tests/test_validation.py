"""Bad input is refused with a message that names the problem."""

import pytest
import torch
from torch import nn

from avf import NonFiniteError, PriorOnly, StreamingFilter, filter_sequences


def test_wrong_rank(tiny_model):
    with pytest.raises(ValueError, match="batch-first"):
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(6, 5))


def test_wrong_feature_size(tiny_model):
    with pytest.raises(ValueError, match=r"per-step shape \(4,\).*\(5,\)"):
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(2, 6, 4))


def test_nan_and_inf_in_x_name_the_position(tiny_model):
    x = torch.zeros(2, 6, 5)
    x[1, 3, 2] = float("nan")
    with pytest.raises(ValueError, match="sequence 1, step 3"):
        filter_sequences(tiny_model, PriorOnly(), x)
    x[1, 3, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        filter_sequences(tiny_model, PriorOnly(), x)


def test_nan_in_padding_is_fine(tiny_model):
    x = torch.zeros(2, 6, 5)
    x[1, 5] = float("nan")
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 5] = False
    out = filter_sequences(tiny_model, PriorOnly(), x, mask)
    assert torch.isfinite(out.free_energy).all()


def test_empty_sequences(tiny_model):
    with pytest.raises(ValueError, match="empty sequences"):
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(2, 0, 5))
    with pytest.raises(ValueError, match="batch size 0"):
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(0, 3, 5))
    mask = torch.ones(2, 3)
    mask[0] = 0
    with pytest.raises(ValueError, match=r"sequence\(s\) \[0\].*empty"):
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(2, 3, 5), mask)


def test_mask_that_does_not_match(tiny_model):
    with pytest.raises(ValueError, match=r"mask must have shape \[B, T\] = \(2, 3\)"):
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(2, 3, 5), torch.ones(2, 4))
    with pytest.raises(ValueError, match="0/1"):
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(2, 3, 5), torch.full((2, 3), 0.5))


def test_not_a_model():
    with pytest.raises(TypeError, match="missing initial_state, prior, likelihood, transition"):
        filter_sequences(nn.Linear(2, 2), PriorOnly(), torch.zeros(1, 2, 2))


def test_not_a_tensor(tiny_model):
    with pytest.raises(TypeError, match=r"torch.Tensor"):
        filter_sequences(tiny_model, PriorOnly(), [[0.0] * 5])


def test_streaming_refuses_wrong_shape_and_nan(tiny_model):
    stream = StreamingFilter(tiny_model, PriorOnly(), batch_size=2)
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        stream.step(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        stream.step(torch.full((2, 5), float("nan")))


def test_non_finite_free_energy_names_step_and_term():
    from avf.models import LinearGaussian

    model = LinearGaussian.random(2, 2, seed=0)
    x = torch.zeros(2, 4, 2)
    x[0, 2, 0] = 1e30  # finite, but its squared error overflows float32
    with pytest.raises(NonFiniteError, match="reconstruction at time step 2"):
        filter_sequences(model, PriorOnly(), x)


def test_distribution_errors_name_the_step(tiny_model):
    x = torch.zeros(2, 4, 5)
    x[0, 2, 0] = 3.0  # outside a Bernoulli's support
    with pytest.raises(ValueError, match="at time step 2") as info:
        filter_sequences(tiny_model, PriorOnly(), x)
    assert "outside the likelihood's support" in str(info.value)
    assert "tensor(" not in str(info.value)  # torch's dump of the whole batch is cut


def test_an_invalid_model_parameter_is_reported_as_divergence(tiny_model, monkeypatch):
    calls = []
    prior = type(tiny_model).prior

    def prior_that_breaks(state):  # fine for the model check and step 0, NaN scale after that
        calls.append(1)
        if len(calls) > 2:
            state = state * float("nan")
        return prior(tiny_model, state)

    monkeypatch.setattr(tiny_model, "prior", prior_that_breaks)
    with pytest.raises(NonFiniteError, match="at time step 1: Expected parameter loc") as info:
        filter_sequences(tiny_model, PriorOnly(), torch.zeros(2, 4, 5))
    assert "lower the learning rates" in str(info.value) and "tensor(" not in str(info.value)

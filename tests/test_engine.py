"""The filtering engine: masks, streaming, the precompute hook."""

import pytest
import torch
from torch import Tensor

from avf import Iterative, PriorOnly, StreamingFilter, filter_sequences, sample_sequences
from avf.models import LinearGaussian
from conftest import TinyDeepModel, frozen


def test_padding_content_and_masked_steps_do_not_matter(tiny_model, binary_data):
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, 5:] = False
    inference = Iterative(3, iterations=2, hidden=16)
    other = binary_data.clone()
    other[1, 3:] = 1 - other[1, 3:]
    other[2, 5:] = 1 - other[2, 5:]
    torch.manual_seed(0)
    a = filter_sequences(tiny_model, inference, binary_data, mask)
    torch.manual_seed(0)
    b = filter_sequences(tiny_model, inference, other, mask)
    torch.testing.assert_close(a.free_energy, b.free_energy)
    assert float(a.free_energy.detach()[1, 3:].abs().sum()) == 0.0
    assert float(a.trace[1, 3:].abs().sum()) == 0.0
    assert int(a.steps) == int(mask.sum())


def test_masked_prefix_equals_the_short_sequence_alone():
    """A sequence of length 3 padded to 6 scores exactly like the same 3 steps alone."""
    model = frozen(LinearGaussian.random(2, 2, seed=0))
    x, _ = sample_sequences(model, 1, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    torch.manual_seed(1)
    padded = filter_sequences(model, PriorOnly(), x, mask)
    torch.manual_seed(1)
    alone = filter_sequences(model, PriorOnly(), x[:, :3])
    torch.testing.assert_close(padded.free_energy[:, :3], alone.free_energy)


def test_streaming_equals_whole_sequence_filtering(tiny_model, binary_data):
    inference = Iterative(3, iterations=2, hidden=16)
    torch.manual_seed(7)
    with torch.no_grad():
        whole = filter_sequences(tiny_model, inference, binary_data)
    torch.manual_seed(7)
    stream = StreamingFilter(tiny_model, inference, batch_size=4)
    steps = [stream.step(binary_data[:, t]) for t in range(binary_data.shape[1])]
    torch.testing.assert_close(torch.stack([s.free_energy for s in steps], 1), whole.free_energy)
    torch.testing.assert_close(torch.stack([s.params for s in steps], 1), whole.params)
    assert steps[-1].prediction.shape == (4, 5)
    assert not stream.state.requires_grad  # nothing from the past is kept in a graph


def test_streaming_inactive_streams_keep_their_state(tiny_model, binary_data):
    stream = StreamingFilter(tiny_model, PriorOnly(), batch_size=4)
    stream.step(binary_data[:, 0])
    before = stream.state.clone()
    stream.step(binary_data[:, 1], active=torch.tensor([True, False, True, False]))
    torch.testing.assert_close(stream.state[[1, 3]], before[[1, 3]])
    assert not torch.equal(stream.state[[0, 2]], before[[0, 2]])


class CountingModel(TinyDeepModel):
    """Adds a running count of active inputs to the state, either stepwise or precomputed."""

    def __init__(self, use_precompute: bool) -> None:
        super().__init__()
        self.use_precompute = use_precompute
        self.precompute_calls = 0

    def initial_state(self, batch_size: int):
        return {"h": torch.zeros(batch_size, self.h_dim), "count": torch.zeros(batch_size, 1)}

    def prior(self, state):
        return super().prior(state["h"] + state["count"])

    def likelihood(self, z: Tensor, state):
        return super().likelihood(z, state["h"])

    def transition(self, state, z, x):
        count = state["count"] if self.use_precompute else state["count"] + x.sum(-1, True)
        return {"h": super().transition(state["h"], z, x), "count": count}

    def precompute(self, x: Tensor):
        if not self.use_precompute:
            return None
        self.precompute_calls += 1
        return torch.cumsum(x.sum(-1, keepdim=True), dim=1) - x.sum(-1, keepdim=True)

    def use_precomputed(self, state, context_t):
        return {"h": state["h"], "count": context_t}


def test_precompute_hook_gives_the_same_result(binary_data):
    stepwise, fused = CountingModel(False), CountingModel(True)
    fused.load_state_dict(stepwise.state_dict())
    torch.manual_seed(3)
    a = filter_sequences(stepwise, PriorOnly(), binary_data)
    torch.manual_seed(3)
    b = filter_sequences(fused, PriorOnly(), binary_data)
    assert fused.precompute_calls == 1
    torch.testing.assert_close(a.free_energy, b.free_energy)


def test_mask_with_holes_skips_the_precompute_path():
    """A fused pass over x cannot skip a masked step in the middle; the engine steps instead."""
    from avf.models import SRNN

    torch.manual_seed(0)
    fused = SRNN(x_dim=5, latent_dim=3, rnn_dim=8, hidden=8)
    stepwise = SRNN(x_dim=5, latent_dim=3, rnn_dim=8, hidden=8)
    stepwise.load_state_dict(fused.state_dict())
    stepwise.precompute = lambda _x: None
    x = (torch.rand(2, 6, 5) < 0.4).float()
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[0, 2] = False  # a hole, with observed steps after it
    torch.manual_seed(1)
    a = filter_sequences(fused, PriorOnly(), x, mask)
    torch.manual_seed(1)
    b = filter_sequences(stepwise, PriorOnly(), x, mask)
    torch.testing.assert_close(a.free_energy, b.free_energy)


def test_forecast_rolls_the_model_out_from_the_filter_state():
    """E[x_{t+h} | state] = C A^{h-1} m for the linear-Gaussian model, whose state is m = A z_t."""
    torch.manual_seed(0)
    model = LinearGaussian.random(latent_dim=2, obs_dim=3, diagonal=False, seed=0)
    x, _ = sample_sequences(model, batch_size=2, steps=4)
    stream = StreamingFilter(model, PriorOnly(), batch_size=2)
    for t in range(4):
        stream.step(x[:, t])
    before = [s.clone() for s in stream.state]
    n, horizon = 20000, 3
    future = stream.forecast(horizon, samples=n)
    assert future.x.shape == (2, n, horizon, 3) and future.z.shape == (2, n, horizon, 2)
    mean = before[0].double()  # [B, Dz], the prior mean of z_{t+1}
    A, C = model.A.detach().double(), model.C.detach().double()
    for h in range(horizon):
        expected = mean @ C.T
        spread = future.x[:, :, h].double().std(1) / n ** 0.5
        assert ((future.x[:, :, h].double().mean(1) - expected).abs() < 5 * spread).all()
        mean = mean @ A.T
    assert all(torch.equal(a, b) for a, b in zip(stream.state, before, strict=True))  # untouched
    means = stream.forecast(2, samples=3, observations="mean").x  # the likelihood's mean
    assert means.shape == (2, 3, 2, 3)
    stream.step(x[:, 0])  # filtering goes on with real data


def test_forecast_refuses_bad_arguments():
    stream = StreamingFilter(LinearGaussian.random(2, 2, seed=0), PriorOnly(), batch_size=1)
    for kwargs in ({"horizon": 0}, {"horizon": 2, "samples": 0},
                   {"horizon": 2, "observations": "mode"}):
        with pytest.raises(ValueError):
            stream.forecast(**kwargs)

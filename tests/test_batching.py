"""Sequences: padding, masks, batches cut to their longest member, splits, synthetic data."""

from __future__ import annotations

import pytest
import torch

from avf.data import Sequences, sample_dataset
from avf.filtering import filter_sequences
from avf.inference import PriorOnly
from avf.models import LinearGaussian


def ragged(lengths=(3, 5, 1, 4), dim: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(n, dim, generator=g) for n in lengths]


def test_from_list_pads_and_masks() -> None:
    seqs = ragged()
    data = Sequences.from_list(seqs)
    assert len(data) == 4
    assert data.x.shape == (4, 5, 2)
    assert data.lengths.tolist() == [3, 5, 1, 4]
    assert data.steps == 13
    for i, s in enumerate(seqs):
        n = s.shape[0]
        assert torch.equal(data.x[i, :n], s)
        assert bool(data.mask[i, :n].all()) and not bool(data.mask[i, n:].any())
        assert bool((data.x[i, n:] == 0).all())


def test_batches_are_cut_to_their_longest_sequence() -> None:
    data = Sequences.from_list(ragged())
    batches = list(data.batches(2))
    assert [tuple(x.shape) for x, _ in batches] == [(2, 5, 2), (2, 4, 2)]
    for x, mask in batches:
        assert mask.dtype == torch.bool and mask.shape == x.shape[:2]
        assert bool(mask.any(0)[-1])  # the last column holds a real step
    x, mask = batches[1]
    assert mask.sum(1).tolist() == [1, 4]


def test_shuffled_batches_cover_every_sequence_once_and_follow_the_generator() -> None:
    seqs = ragged((2, 3, 4, 5, 6, 7, 8))
    data = Sequences.from_list(seqs)

    def order(seed: int) -> list[int]:
        g = torch.Generator().manual_seed(seed)
        return [int(n) for _, m in data.batches(3, shuffle=True, generator=g) for n in m.sum(1)]

    assert sorted(order(0)) == [2, 3, 4, 5, 6, 7, 8]
    assert order(0) == order(0)
    assert order(0) != order(1)


def test_padding_is_zeroed_and_nan_in_real_steps_is_named() -> None:
    x = torch.zeros(2, 3, 1)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    x[0, 2] = float("nan")  # padding: harmless, replaced by zero
    data = Sequences(x, mask)
    assert bool(torch.isfinite(data.x).all())
    x[1, 1] = float("nan")
    with pytest.raises(ValueError, match="sequence 1, step 1"):
        Sequences(x, mask)


@pytest.mark.parametrize(
    ("sequences", "match"),
    [
        ([], "empty list"),
        ([torch.zeros(3, 2), torch.zeros(2, 2), torch.zeros(4, 3)], "sequence 2 has per-step"),
        ([torch.zeros(3, 2), torch.zeros(0, 2)], "sequence 1 is empty"),
        ([torch.zeros(3)], r"sequence 0 must be \[T, features"),
    ],
)
def test_from_list_errors(sequences, match) -> None:
    with pytest.raises(ValueError, match=match):
        Sequences.from_list(sequences)


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match="mask must have shape"):
        Sequences(torch.zeros(2, 3, 1), torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"sequence\(s\) \[1\] are empty"):
        Sequences(torch.zeros(2, 3, 1), torch.tensor([[1, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="features"):
        Sequences(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch_size"):
        next(Sequences(torch.zeros(2, 3, 1)).batches(0))


def test_split_by_sizes_and_fractions() -> None:
    data = Sequences.from_list(ragged((1, 2, 3, 4, 5)))
    a, b = data.split([2, 3])
    assert a.lengths.tolist() == [1, 2] and b.lengths.tolist() == [3, 4, 5]
    assert a.x.shape[1] == 2  # trimmed to the longest member
    parts = data.split([0.6, 0.4], generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [3, 2]
    assert sorted(parts[0].lengths.tolist() + parts[1].lengths.tolist()) == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="sum to 4"):
        data.split([2, 2])
    with pytest.raises(ValueError, match="at least one"):
        data.split([0.99, 0.01])


def test_sample_dataset_is_seeded_and_leaves_the_global_rng_alone() -> None:
    model = LinearGaussian.random(latent_dim=2, obs_dim=2, seed=0)
    before = torch.get_rng_state()
    a = sample_dataset(model, 3, 4, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    b = sample_dataset(model, 3, 4, seed=5)
    c = sample_dataset(model, 3, 4, seed=6)
    assert a.x.shape == (3, 4, 2) and bool(a.mask.all())
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)


def test_batches_feed_the_filtering_engine() -> None:
    model = LinearGaussian.random(latent_dim=2, obs_dim=2, seed=0)
    data = Sequences.from_list(ragged((3, 5, 2)))
    steps = 0
    for x, mask in data.batches(2):
        out = filter_sequences(model, PriorOnly(), x, mask)
        steps += int(out.steps)
        assert bool((out.free_energy[~mask] == 0).all())
    assert steps == data.steps

"""Variable-length sequences held as one padded tensor plus a mask, cut into batches.

The filtering engine takes batch-first tensors with a mask; this class is where sequences of
different lengths become such tensors, once, with the checks that belong to the data (empty
sequences, mismatched shapes, NaN) rather than to every training step.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from itertools import pairwise

import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence


class Sequences:
    """N sequences x [N, T, ...] with a mask [N, T] marking the real (unpadded) steps.

    Padded positions are set to zero: the engine still computes the terms of masked steps
    (and then ignores them), so a NaN left in the padding would poison the batch.
    """

    def __init__(self, x: Tensor, mask: Tensor | None = None) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor [N, T, ...], got {type(x).__name__}")
        if x.dim() < 3:
            raise ValueError(
                f"x must be [N, T, features...]; got shape {tuple(x.shape)} "
                "(add a feature dimension with x.unsqueeze(-1))"
            )
        n, steps = x.shape[:2]
        if n == 0:
            raise ValueError("no sequences (N = 0)")
        if steps == 0:
            raise ValueError("the sequences have no time steps (T = 0)")
        mask = _as_mask(mask, n, steps, x.device)
        lengths = mask.sum(1)
        empty = (lengths == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"sequence(s) {empty[:10]} are empty (mask all false)")
        pad = mask.reshape(n, steps, *([1] * (x.dim() - 2)))
        if x.is_floating_point():
            bad = ~torch.isfinite(x) & pad
            if bad.any():
                i, t = bad.nonzero()[0, :2].tolist()
                raise ValueError(f"the data contain NaN or inf (first at sequence {i}, step {t})")
            if not bool(mask.all()):
                x = torch.where(pad, x, torch.zeros((), dtype=x.dtype, device=x.device))
        self.x = x
        self.mask = mask
        self.lengths = lengths
        # one past the last real step: a batch only needs to be this long
        self._ends = steps - mask.flip(1).int().argmax(1)

    @classmethod
    def from_list(cls, sequences: Sequence[Tensor]) -> Sequences:
        """Pad sequences [T_i, ...] (same per-step shape) to [N, max T_i, ...] with a mask."""
        if len(sequences) == 0:
            raise ValueError("no sequences given (empty list)")
        first = sequences[0]
        for i, s in enumerate(sequences):
            if not isinstance(s, Tensor):
                raise TypeError(f"sequence {i} is a {type(s).__name__}, not a torch.Tensor")
            if s.dim() < 2:
                raise ValueError(
                    f"sequence {i} must be [T, features...]; got shape {tuple(s.shape)}"
                )
            if s.shape[1:] != first.shape[1:]:
                raise ValueError(
                    f"sequence {i} has per-step shape {tuple(s.shape[1:])} but sequence 0 has "
                    f"{tuple(first.shape[1:])}"
                )
            if s.shape[0] == 0:
                raise ValueError(f"sequence {i} is empty (0 time steps)")
        dtype = first.dtype
        for s in sequences[1:]:
            dtype = torch.promote_types(dtype, s.dtype)
        lengths = torch.tensor([s.shape[0] for s in sequences])
        x = pad_sequence([s.to(dtype) for s in sequences], batch_first=True)
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        return cls(x, mask.to(x.device))

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        return (f"Sequences(n={len(self)}, max_length={self.x.shape[1]}, "
                f"step_shape={tuple(self.x.shape[2:])}, steps={self.steps})")

    @property
    def steps(self) -> int:
        """Total number of real time steps."""
        return int(self.lengths.sum())

    def num_batches(self, batch_size: int) -> int:
        return math.ceil(len(self) / _check_batch_size(batch_size))

    def subset(self, index: Tensor | Sequence[int]) -> Sequences:
        """The sequences at ``index``, trimmed to the longest of them."""
        index = torch.as_tensor(index, dtype=torch.long)
        end = int(self._ends[index].max())
        return Sequences(self.x[index, :end], self.mask[index, :end])

    def to(self, device: torch.device | str) -> Sequences:
        return Sequences(self.x.to(device), self.mask.to(device))

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (x [B, T', ...], mask [B, T'] bool); T' is the longest sequence of the batch.

        With ``shuffle``, the order comes from ``generator`` (CPU), so a trainer that saves the
        generator's state can resume mid-run with the same batches.
        """
        _check_batch_size(batch_size)
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(self.x.device)
        for start in range(0, n, batch_size):
            index = order[start:start + batch_size]
            end = int(self._ends[index].max())
            yield self.x[index, :end], self.mask[index, :end]

    def split(
        self, parts: Sequence[int] | Sequence[float], generator: torch.Generator | None = None
    ) -> list[Sequences]:
        """Split into parts given as sizes (summing to N) or fractions (summing to 1).

        Without ``generator`` the split keeps the order; with one it is a random permutation.
        """
        sizes = _split_sizes(parts, len(self))
        order = torch.randperm(len(self), generator=generator) if generator is not None else (
            torch.arange(len(self)))
        out, start = [], 0
        for size in sizes:
            out.append(self.subset(order[start:start + size]))
            start += size
        return out


def _as_mask(mask: Tensor | None, n: int, steps: int, device: torch.device) -> Tensor:
    if mask is None:
        return torch.ones(n, steps, dtype=torch.bool, device=device)
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor [N, T], got {type(mask).__name__}")
    if tuple(mask.shape) != (n, steps):
        raise ValueError(f"mask must have shape [N, T] = {(n, steps)}, got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold only 0/1 (or booleans)")
        mask = mask.bool()
    return mask.to(device)


def _check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def _split_sizes(parts: Sequence[int] | Sequence[float], n: int) -> list[int]:
    if len(parts) == 0:
        raise ValueError("split needs at least one part")
    if all(isinstance(p, int) and not isinstance(p, bool) for p in parts):
        sizes = list(parts)
        if sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} sum to {sum(sizes)}, not to the {n} sequences")
    else:
        fractions = [float(p) for p in parts]
        if any(f < 0 for f in fractions) or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
            raise ValueError(f"split fractions {fractions} must be non-negative and sum to 1")
        bounds, total = [0], 0.0
        for f in fractions:
            total += f
            bounds.append(round(total * n))
        bounds[-1] = n
        sizes = [b - a for a, b in pairwise(bounds)]
    if any(s <= 0 for s in sizes):
        raise ValueError(f"split into {sizes} sequences per part: every part needs at least one")
    return sizes

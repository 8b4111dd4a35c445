"""Stochastic Moving MNIST (SVG, Denton & Fergus 2018), generated on the fly from MNIST digits.

Each sequence comes from its own seed, so a data set of any size costs no disk and the same
(seed, index) always gives the same sequence. Clips are float32 [T, 1, 64, 64] in [0, 1], and a
set of them is a :class:`~avf.data.batching.Sequences` of x [N, T, 1, 64, 64], as in SVG and the
AVF paper's video experiments (Marino et al. 2018).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor

from avf.data.batching import Sequences
from avf.data.file_splits import SPLITS, named_split_seed
from avf.data.mnist import mnist_images
from avf.validation import check_integer


class Trajectory(NamedTuple):
    """Which digits a sequence shows and where: the ground truth behind its frames."""

    digits: np.ndarray  # [D] indices into the digit images
    positions: np.ndarray  # [T, D, 2] top-left corner (row, column) in each frame
    velocities: np.ndarray  # [T, D, 2] the move attempted from frame t to t + 1


class StochasticMovingMNIST:
    """Stochastic Moving MNIST (SVG, Denton & Fergus 2018): digits that bounce at random.

    Each of ``num_digits`` digits (28×28, drawn uniformly from ``images``) starts at a uniform
    position inside the ``size``×``size`` canvas with a velocity whose row and column parts are
    integers of random sign and speed in {1, …, ``max_speed``}. A digit moves by its velocity
    each frame and keeps it until it meets a wall: then it is stopped at the wall (touching
    counts) and gets a new random velocity, pointing away from that wall in the direction
    across it (speed in {1, …, max_speed}) and of random sign and speed along it. This is SVG's
    rule, except that SVG also allows a speed of 0 (a digit could stand still forever) and
    bounces only once a digit has gone past a wall. As in SVG, digits are added and the sum is
    clipped to 1 (SVG scales digits to 32×32; here they keep MNIST's 28×28).

    Sequence ``i`` is drawn from its own generator, seeded by (``seed``, ``epoch``, ``i``), so
    it is the same whatever order items are asked for in; :meth:`for_epoch` gives a fresh set
    for each training epoch. ``images`` is [N, h, w], uint8 (0–255) or float in [0, 1].
    """

    def __init__(self, images: np.ndarray | Tensor, num_frames: int = 20, num_digits: int = 2,
                 size: int = 64, seed: int = 0, *, num_sequences: int = 10_000, epoch: int = 0,
                 max_speed: int = 4) -> None:
        for name, value in (("num_frames", num_frames), ("num_digits", num_digits),
                            ("size", size), ("num_sequences", num_sequences),
                            ("max_speed", max_speed)):
            check_integer(name, value, 1)
        check_integer("seed", seed, 0)
        check_integer("epoch", epoch, 0)
        self.images, self._scale = _digit_images(images)
        digit = self.images.shape[1:]
        if max(digit) > size:
            raise ValueError(f"digits of {digit[0]}×{digit[1]} do not fit a {size}×{size} canvas")
        self.num_frames, self.num_digits, self.size = num_frames, num_digits, size
        self.seed, self.epoch, self.max_speed = seed, epoch, max_speed
        self.num_sequences = num_sequences
        self._limit = np.array([size - digit[0], size - digit[1]])  # largest top-left corner

    def __len__(self) -> int:
        return self.num_sequences

    def __repr__(self) -> str:
        return (f"StochasticMovingMNIST(n={len(self)}, digits={len(self.images)}, "
                f"num_frames={self.num_frames}, num_digits={self.num_digits}, size={self.size}, "
                f"seed={self.seed}, epoch={self.epoch})")

    def __getitem__(self, i: int) -> Tensor:
        """Sequence ``i`` as [T, 1, size, size] float32 in [0, 1]."""
        canvas = np.zeros((1, self.num_frames, self.size, self.size), np.float32)
        return torch.from_numpy(self._render(np.array([self._index(i)]), canvas)[0]).unsqueeze(1)

    def trajectory(self, i: int) -> Trajectory:
        """The digits, positions and velocities behind sequence ``i``."""
        digits, positions, velocities = self._trajectories(np.array([self._index(i)]))
        return Trajectory(digits[0], positions[0], velocities[0])

    def sequences(self, n: int, start: int = 0) -> Sequences:
        """Items ``start`` … ``start + n - 1`` as one ``Sequences`` (x [n, T, 1, size, size]).

        Float32 frames take ``4 · size²`` bytes each: 1,000 sequences of 20 frames are 330 MB.
        """
        check_integer("n", n, 1)
        check_integer("start", start, 0)
        if start + n > len(self):
            raise IndexError(f"items {start}…{start + n - 1} asked for, but there are "
                             f"{len(self)} (num_sequences)")
        canvas = np.zeros((n, self.num_frames, self.size, self.size), np.float32)
        chunk = 64  # small enough for the canvases to stay in cache while digits are added
        for a in range(0, n, chunk):
            items = np.arange(start + a, start + min(a + chunk, n))
            self._render(items, canvas[a:a + len(items)])
        return Sequences(torch.from_numpy(canvas).unsqueeze(2))

    def for_epoch(self, epoch: int) -> StochasticMovingMNIST:
        """The same digits, settings and seed with the sequences of ``epoch``: one call per
        training epoch gives fresh sequences, the same ones on every run."""
        return StochasticMovingMNIST(
            self.images, self.num_frames, self.num_digits, self.size, self.seed,
            num_sequences=self.num_sequences, epoch=epoch, max_speed=self.max_speed)

    def _index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"index must be an integer, got {type(i).__name__}")
        j = int(i) + len(self) if i < 0 else int(i)
        if not 0 <= j < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} sequences")
        return j

    def _draws(self, items: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every random number sequence i needs, from its own generator (order-independent)."""
        shape = (self.num_frames, self.num_digits, 2)
        out: list[list[np.ndarray]] = [[], [], [], []]
        for i in items.tolist():
            seq = np.random.SeedSequence(self.seed, spawn_key=(self.epoch, i))
            rng = np.random.Generator(np.random.PCG64(seq))
            out[0].append(rng.integers(len(self.images), size=self.num_digits))
            out[1].append(rng.integers(0, self._limit + 1, size=(self.num_digits, 2)))
            out[2].append(rng.integers(1, self.max_speed + 1, size=shape))
            out[3].append(rng.integers(0, 2, size=shape) * 2 - 1)
        return tuple(np.stack(parts) for parts in out)

    def _trajectories(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        digits, start, speed, sign = self._draws(items)
        positions, velocities = bounce(start, speed, sign, self._limit)
        return digits, positions, velocities

    def _render(self, items: np.ndarray, canvas: np.ndarray) -> np.ndarray:
        digits, positions, _ = self._trajectories(items)
        images = self.images[digits].astype(np.float32) * self._scale  # [n, D, h, w]
        return render(images, positions, canvas)


def bounce(start: np.ndarray, speed: np.ndarray, sign: np.ndarray,
           limit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities [n, T, D, 2] under the stochastic bounce rule.

    ``start`` [n, D, 2] is the first top-left corner, in [0, ``limit``] per axis; ``speed``
    (1…max) and ``sign`` (±1), [n, T, D, 2], give the velocity at t = 0 and the fresh one
    drawn when a digit meets a wall between frames t - 1 and t. Kept separate from the
    drawing of random numbers so that the rule can be checked on its own.
    """
    steps = speed.shape[1]
    positions = np.empty_like(speed)
    velocities = np.empty_like(speed)
    p, v = start, speed[:, 0] * sign[:, 0]
    for t in range(steps):
        positions[:, t], velocities[:, t] = p, v
        if t + 1 == steps:
            break
        q = p + v
        low, high = q <= 0, q >= limit
        p = np.clip(q, 0, limit)
        fresh = np.where(low, speed[:, t + 1], np.where(
            high, -speed[:, t + 1], speed[:, t + 1] * sign[:, t + 1]))
        v = np.where((low | high).any(-1, keepdims=True), fresh, v)
    return positions, velocities


def render(images: np.ndarray, positions: np.ndarray, canvas: np.ndarray) -> np.ndarray:
    """Add each digit [n, D, h, w] at its positions [n, T, D, 2] to ``canvas`` [n, T, H, W]
    (zeros, float32) and clip to 1, in place: SVG's way of combining overlapping digits."""
    n, steps, num_digits, _ = positions.shape
    # a writable view of every h×w window: frame (i, t) takes one digit per assignment, so no
    # element is written twice in one assignment and "+=" is exact
    windows = sliding_window_view(canvas, images.shape[2:], axis=(2, 3), writeable=True)
    item, step = np.arange(n)[:, None], np.arange(steps)[None, :]
    for d in range(num_digits):
        rows, cols = positions[:, :, d, 0], positions[:, :, d, 1]
        windows[item, step, rows, cols] += images[:, d, None]
    return np.minimum(canvas, 1.0, out=canvas)


def moving_mnist(split: str = "train", mnist_dir: str | Path | None = None, *,
                 images: np.ndarray | None = None, num_frames: int = 20,
                 num_sequences: int = 10_000, num_digits: int = 2, size: int = 64,
                 seed: int = 0) -> StochasticMovingMNIST:
    """The ``train``, ``valid`` or ``test`` Stochastic Moving MNIST of :func:`moving_mnist_splits`.

    Train and valid both use the MNIST training digits (all 60,000, as SVG trains on) but
    different seed streams, so they share no sequence; test uses the t10k digits. For training,
    ``moving_mnist("train").for_epoch(e).sequences(n)`` gives fresh sequences every epoch.
    ``images`` skips reading MNIST again (the digits of the matching file).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if images is None:
        images = mnist_images("test" if split == "test" else "train", mnist_dir)
    return StochasticMovingMNIST(images, num_frames, num_digits, size,
                                 named_split_seed(seed, split), num_sequences=num_sequences)


def moving_mnist_splits(mnist_dir: str | Path | None = None, num_frames: int = 20,
                        train_size: int = 1000, valid_size: int = 200, test_size: int = 500, *,
                        num_digits: int = 2, size: int = 64,
                        seed: int = 0) -> dict[str, Sequences]:
    """Fixed train/valid/test sets of Stochastic Moving MNIST, from the digits in ``mnist_dir``.

    The splits are those of :func:`moving_mnist`. A fixed train set is what a quick run needs;
    for the paper's setting (fresh sequences every epoch) use :func:`moving_mnist` instead.
    """
    sizes = {"train": train_size, "valid": valid_size, "test": test_size}
    digits = {"train": mnist_images("train", mnist_dir), "test": mnist_images("test", mnist_dir)}
    out = {}
    for split, n in sizes.items():
        data = moving_mnist(split, images=digits["test" if split == "test" else "train"],
                            num_frames=num_frames, num_sequences=n, num_digits=num_digits,
                            size=size, seed=seed)
        out[split] = data.sequences(n)
    return out


def _digit_images(images: np.ndarray | Tensor) -> tuple[np.ndarray, float]:
    """The digits as a numpy array [N, h, w] and the factor that maps them to [0, 1]."""
    arr = images.numpy() if isinstance(images, Tensor) else np.asarray(images)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"digit images must be [N, height, width] with N ≥ 1; got shape "
                         f"{arr.shape}")
    if arr.dtype == np.uint8:
        return arr, 1 / 255
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"digit images must be uint8 (0–255) or float in [0, 1], got {arr.dtype}")
    if not (np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1):
        raise ValueError("float digit images must lie in [0, 1]")
    return arr, 1.0

"""Video data for SVG-style models: Stochastic Moving MNIST (generated) and KTH Actions (read).

Every clip is a float32 tensor [T, 1, 64, 64] of grayscale values in [0, 1], and a set of
clips is a :class:`~avf.data.batching.Sequences` of x [N, T, 1, 64, 64], as in SVG (Denton &
Fergus 2018) and the AVF paper's video experiments (Marino et al. 2018).

* MNIST comes as IDX files (``load_mnist_images``); Stochastic Moving MNIST is generated from
  the digits on the fly, each sequence from its own seed, so a data set of any size costs no
  disk and the same (seed, index) always gives the same sequence.
* KTH Actions is not shipped (its authors distribute it); ``load_kth`` reads the ``.avi``
  files from ``<data-dir>/kth/`` with PyAV (``pip install avf[video]``).
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor

from avf.data.batching import Sequences
from avf.data.datadir import data_dir_origin, resolve_data_dir
from avf.optional import optional_import

SPLITS = ("train", "valid", "test")

# -- MNIST (IDX files) ------------------------------------------------------------------------
MNIST_FOLDER = "mnist"
IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801  # 0x08 = unsigned bytes, then the number of dims
# per split, the names tried in order: the standard gzipped file, gunzipped, the dotted variant
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
}
_MNIST_HINT = ("MNIST goes under <data-dir>/mnist/ as train-images-idx3-ubyte.gz and "
               "t10k-images-idx3-ubyte.gz (gzipped or not; the labels are optional)")


def load_mnist_images(path: str | Path) -> np.ndarray:
    """Images [N, rows, cols] uint8 (28×28 for MNIST) from an IDX file, gzipped or plain.

    Whether the file is gzipped is read from its first bytes, not its name, since copies of
    MNIST circulate both ways under both names.
    """
    return _read_idx(path, IMAGES_MAGIC, "images")


def load_mnist_labels(path: str | Path) -> np.ndarray:
    """Labels [N] uint8 from an IDX file, gzipped or plain (magic number 0x801)."""
    return _read_idx(path, LABELS_MAGIC, "labels")


def mnist_images(split: str = "train", mnist_dir: str | Path | None = None) -> np.ndarray:
    """The MNIST ``train`` (60,000) or ``test`` (t10k, 10,000) digits as [N, 28, 28] uint8.

    ``mnist_dir`` is the folder with the IDX files, or a data directory that has a ``mnist/``
    folder; ``None`` means ``<data-dir>/mnist/`` (see :func:`avf.data.datadir.resolve_data_dir`).
    """
    if split not in MNIST_FILES:
        raise ValueError(f"MNIST split must be 'train' or 'test', got {split!r}")
    if mnist_dir is None:
        root = resolve_data_dir(None)
        folders = [root / MNIST_FOLDER]
        where = f"{folders[0]} (data directory from {data_dir_origin(None)})"
    else:
        root = Path(mnist_dir).expanduser()
        folders = [root, root / MNIST_FOLDER]
        where = f"{root} or {root / MNIST_FOLDER}"
    for folder in folders:
        for name in MNIST_FILES[split]:
            if (folder / name).is_file():
                return load_mnist_images(folder / name)
    names = ", ".join(MNIST_FILES[split])
    raise FileNotFoundError(f"no MNIST {split} images in {where}: looked for {names}. "
                            f"{_MNIST_HINT}")


def _read_idx(path: str | Path, magic: int, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such MNIST {what} file: {path}. {_MNIST_HINT}")
    raw = _read_maybe_gzip(path)
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        shown = "none (the file is shorter than 4 bytes)" if found is None else f"0x{found:08x}"
        raise ValueError(f"{path}: IDX magic number {shown}, expected 0x{magic:08x} for "
                         f"{what} (is this the right file, or an HTML page or LFS pointer?)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, shorter than the "
                         f"{header}-byte header of IDX {what})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims)
    if len(raw) < expected:
        raise ValueError(f"{path}: truncated IDX file: the header says {dims} ({expected} bytes "
                         f"in all) but the file has {len(raw)}")
    if len(raw) > expected:
        raise ValueError(f"{path}: {len(raw) - expected} bytes more than the header's {dims}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path}: truncated or corrupt gzip file ({err})") from err


# -- Stochastic Moving MNIST ------------------------------------------------------------------
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
            _check_int(name, value, 1)
        _check_int("seed", seed, 0)
        _check_int("epoch", epoch, 0)
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
        _check_int("n", n, 1)
        _check_int("start", start, 0)
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
    return StochasticMovingMNIST(images, num_frames, num_digits, size, _split_seed(seed, split),
                                 num_sequences=num_sequences)


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


def _split_seed(seed: int, split: str) -> int:
    _check_int("seed", seed, 0)
    state = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split),)).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


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


def _check_int(name: str, value: Any, lowest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
        raise ValueError(f"{name} must be an integer ≥ {lowest}, got {value!r}")


# -- KTH Actions ------------------------------------------------------------------------------
KTH_FOLDER = "kth"
KTH_ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
KTH_TRAIN_PERSONS = tuple(range(1, 17))  # SVG's split: persons 1–16 train, 17–25 test
KTH_TEST_PERSONS = tuple(range(17, 26))
KTH_VALID_PERSONS = (15, 16)  # held out of SVG's training persons, for early stopping
_KTH_NAME = re.compile(r"person(\d+)_([a-z]+)_d(\d+)(?:_uncomp)?\.(?:avi|mp4)", re.IGNORECASE)


@dataclass(frozen=True)
class KTHVideo:
    """One KTH file: ``personNN_<action>_dK_uncomp.avi`` (scenario K in 1–4)."""

    path: Path
    person: int
    action: str
    scenario: int


def find_kth_videos(root: str | Path | None = None,
                    actions: Iterable[str] = KTH_ACTIONS) -> list[KTHVideo]:
    """Every KTH video under ``root`` (searched recursively, so per-action folders work).

    ``root=None`` means ``<data-dir>/kth/``. Files whose names do not follow the KTH pattern
    are ignored; if nothing matches, the error lists some of what was there.
    """
    root = resolve_data_dir(None) / KTH_FOLDER if root is None else Path(root).expanduser()
    actions = tuple(a.lower() for a in actions)
    unknown = sorted(set(actions) - set(KTH_ACTIONS))
    if unknown:
        raise ValueError(f"unknown KTH action(s) {unknown}; known: {', '.join(KTH_ACTIONS)}")
    if not root.is_dir():
        raise FileNotFoundError(
            f"no KTH folder at {root}. KTH Actions is not shipped with avf: get the .avi files "
            f"from the authors' site and put them (or their per-action folders) in "
            f"<data-dir>/{KTH_FOLDER}/")
    found: dict[tuple[int, str, int], KTHVideo] = {}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for path in files:
        match = _KTH_NAME.fullmatch(path.name)
        if not match or match[2].lower() not in actions:
            continue
        video = KTHVideo(path, int(match[1]), match[2].lower(), int(match[3]))
        key = (video.person, video.action, video.scenario)
        if key in found:
            raise ValueError(f"two files for the same KTH video: {found[key].path} and {path}")
        found[key] = video
    if not found:
        some = ", ".join(str(p.relative_to(root)) for p in files[:10]) or "nothing"
        raise FileNotFoundError(
            f"no KTH videos (personNN_<action>_dK_uncomp.avi, actions {', '.join(actions)}) "
            f"under {root}; found {len(files)} file(s): {some}")
    return [found[key] for key in sorted(found)]


def read_video(path: str | Path, size: int = 64) -> Tensor:
    """All frames of a video as grayscale [T, size, size] uint8, resized with antialiasing.

    KTH's 160×120 frames are squeezed to a square, as SVG does. Decoding needs PyAV.
    """
    av = optional_import("av", "reading videos", "video", package="av (PyAV)")
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    except (av.FFmpegError, OSError, IndexError) as err:  # IndexError: no video stream
        raise ValueError(f"{path}: cannot decode video ({err})") from err
    if not frames:
        raise ValueError(f"{path}: the video has no frames")
    return _resize(torch.from_numpy(np.stack(frames)), size)


def _resize(frames: Tensor, size: int) -> Tensor:
    if tuple(frames.shape[1:]) == (size, size):
        return frames
    out = torch.empty(len(frames), size, size, dtype=torch.uint8)
    for a in range(0, len(frames), 256):  # bounded float memory for long videos
        x = frames[a:a + 256, None].float()
        y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
        out[a:a + 256] = y[:, 0].round().clamp(0, 255).to(torch.uint8)
    return out




class KTHActions:
    """Some KTH videos, decoded once (on first use) and kept in memory, cut into clips.

    A clip is ``clip_length`` consecutive frames [L, 1, size, size] in [0, 1]. The default
    of 21 is the AVF paper's setting: one conditioning frame and 20 to predict. The
    conditioning frame is simply the clip's first frame: the filter scores every step, so
    score from step 1 on when reporting, rather than masking step 0 (a masked step would not
    update the model's state either). SVG's own setting is 10 + 10 = 20 frames. Windows span
    whole videos; the subsequence boundaries of KTH's ``sequences.txt`` are not used. The
    frames take ``size²`` bytes each as uint8: about 1.2 GB at 64×64 for all of KTH.
    """

    def __init__(self, videos: Sequence[KTHVideo], clip_length: int = 21, size: int = 64) -> None:
        if len(videos) == 0:
            raise ValueError("no KTH videos given")
        _check_int("clip_length", clip_length, 1)
        _check_int("size", size, 1)
        self.videos = list(videos)
        self.clip_length, self.size = clip_length, size
        self._frames: list[Tensor] | None = None

    def __len__(self) -> int:
        return len(self.videos)

    def __repr__(self) -> str:
        persons = sorted({v.person for v in self.videos})
        return (f"KTHActions(videos={len(self)}, persons={persons}, "
                f"clip_length={self.clip_length}, size={self.size})")

    @property
    def frames(self) -> list[Tensor]:
        """Each video's frames [T_i, size, size] uint8 (decoded on first access)."""
        if self._frames is None:
            self._frames = [read_video(v.path, self.size) for v in self.videos]
        return self._frames

    def random_windows(self, generator: torch.Generator | None = None,
                       per_video: int = 1) -> list[tuple[int, int]]:
        """(video, first frame) of ``per_video`` random windows per long-enough video.

        Draw once per epoch for fresh training clips; the same ``generator`` state gives the
        same windows. Videos shorter than ``clip_length`` are skipped.
        """
        _check_int("per_video", per_video, 1)
        videos = self._long_enough()
        room = torch.tensor([len(self.frames[i]) - self.clip_length + 1 for i in videos])
        draws = torch.rand(len(videos), per_video, generator=generator)
        starts = (draws * room[:, None]).long().clamp_max(room[:, None] - 1)
        return [(i, int(s)) for i, row in zip(videos, starts, strict=True) for s in row]

    def fixed_windows(self, stride: int | None = None,
                      max_per_video: int | None = None) -> list[tuple[int, int]]:
        """(video, first frame) of windows every ``stride`` frames (default: non-overlapping)
        from each video's start, at most ``max_per_video`` per video: the same every time."""
        stride = self.clip_length if stride is None else stride
        _check_int("stride", stride, 1)
        if max_per_video is not None:
            _check_int("max_per_video", max_per_video, 1)
        out = []
        for i in self._long_enough():
            starts = range(0, len(self.frames[i]) - self.clip_length + 1, stride)
            out.extend((i, s) for s in list(starts)[:max_per_video])
        return out

    def clips(self, windows: Sequence[tuple[int, int]]) -> Sequences:
        """The clips at ``windows`` as x [N, clip_length, 1, size, size] float32 in [0, 1]."""
        if len(windows) == 0:
            raise ValueError("no windows given")
        length = self.clip_length
        for i, s in windows:
            if not (0 <= i < len(self) and 0 <= s <= len(self.frames[i]) - length):
                raise IndexError(f"window (video {i}, first frame {s}) of {length} frames is "
                                 f"not inside the {len(self)} videos (or that video's frames)")
        x = torch.stack([self.frames[i][s:s + length] for i, s in windows])
        return Sequences(x.unsqueeze(2).float().div_(255))

    def _long_enough(self) -> list[int]:
        keep = [i for i, f in enumerate(self.frames) if len(f) >= self.clip_length]
        if not keep:
            longest = max(len(f) for f in self.frames)
            raise ValueError(f"no video has {self.clip_length} frames (the longest has {longest})")
        return keep


def load_kth(root: str | Path | None = None, *, clip_length: int = 21, size: int = 64,
             valid_persons: Iterable[int] = KTH_VALID_PERSONS,
             actions: Iterable[str] = KTH_ACTIONS) -> dict[str, KTHActions]:
    """KTH split by person, as in SVG: 1–16 train and 17–25 test, minus ``valid_persons``.

    By default persons 15 and 16 are held out of training as ``valid``, so that early stopping
    never looks at test; ``valid_persons=()`` gives SVG's training set and no ``valid`` key.
    Splits with no video present are left out. Nothing is decoded until clips are asked for.
    """
    valid = sorted(set(valid_persons))
    wrong = [p for p in valid if p not in KTH_TRAIN_PERSONS]
    if wrong:
        raise ValueError(f"valid persons must come from the training persons 1–16, got {wrong}")
    persons = {"train": [p for p in KTH_TRAIN_PERSONS if p not in valid], "valid": valid,
               "test": list(KTH_TEST_PERSONS)}
    videos = find_kth_videos(root, actions)
    out = {}
    for split, who in persons.items():
        chosen = [v for v in videos if v.person in who]
        if chosen:
            out[split] = KTHActions(chosen, clip_length, size)
    return out


def kth_splits(root: str | Path | None = None, *, clip_length: int = 21, size: int = 64,
               valid_persons: Iterable[int] = KTH_VALID_PERSONS, seed: int = 0,
               max_per_video: int | None = None) -> dict[str, Sequences]:
    """Clips of :func:`load_kth`'s splits: one random window per training video (from
    ``seed``), fixed non-overlapping windows for valid and test (``max_per_video`` each).

    For fresh training windows each epoch, keep the ``KTHActions`` of :func:`load_kth` and
    call ``clips(random_windows(generator))`` per epoch instead.
    """
    data = load_kth(root, clip_length=clip_length, size=size, valid_persons=valid_persons)
    out = {}
    for split, videos in data.items():
        if split == "train":
            generator = torch.Generator().manual_seed(_split_seed(seed, split) % 2**63)
            out[split] = videos.clips(videos.random_windows(generator))
        else:
            out[split] = videos.clips(videos.fixed_windows(max_per_video=max_per_video))
    return out

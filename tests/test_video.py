"""Video data: IDX files written here, Stochastic Moving MNIST's bounce rule checked against
the frames, KTH on tiny videos encoded here, and (when the shared data folder is there) the
real MNIST."""

from __future__ import annotations

import gzip
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avf.data import Sequences
from avf.data.kth import find_kth_videos, kth_splits, load_kth
from avf.data.mnist import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    load_mnist_images,
    load_mnist_labels,
    mnist_images,
)
from avf.data.moving_mnist import StochasticMovingMNIST, bounce, moving_mnist, moving_mnist_splits

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def write_idx(path: Path, data: np.ndarray, magic: int, gz: bool = False) -> Path:
    raw = struct.pack(">I", magic) + struct.pack(f">{data.ndim}I", *data.shape)
    raw += data.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


def random_digits(n: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28), dtype=np.uint8)


# -- IDX --------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images, labels = random_digits(5), np.arange(5, dtype=np.uint8)
    got = load_mnist_images(write_idx(tmp_path / "img", images, IMAGES_MAGIC, gz))
    assert got.dtype == np.uint8 and got.shape == (5, 28, 28)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(
        load_mnist_labels(write_idx(tmp_path / "lab", labels, LABELS_MAGIC, gz)), labels)


def test_idx_errors(tmp_path: Path) -> None:
    labels = write_idx(tmp_path / "labels", np.arange(3), LABELS_MAGIC)
    with pytest.raises(ValueError, match="magic number 0x00000801, expected 0x00000803"):
        load_mnist_images(labels)
    whole = write_idx(tmp_path / "img", random_digits(2), IMAGES_MAGIC).read_bytes()
    (tmp_path / "cut").write_bytes(whole[:-10])
    with pytest.raises(ValueError, match="truncated IDX file"):
        load_mnist_images(tmp_path / "cut")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(whole)[:-20])
    with pytest.raises(ValueError, match="truncated or corrupt gzip"):
        load_mnist_images(tmp_path / "cut.gz")
    with pytest.raises(FileNotFoundError, match=r"nothing\.gz.*<data-dir>/mnist/"):
        load_mnist_images(tmp_path / "nothing.gz")
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte\.gz"):
        mnist_images("train", tmp_path)


# -- Stochastic Moving MNIST ------------------------------------------------------------------
def test_smmnist_shapes_and_determinism() -> None:
    digits = random_digits()
    data = StochasticMovingMNIST(digits, num_frames=12, seed=3, num_sequences=10)
    x = data[4]
    assert x.shape == (12, 1, 64, 64) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0
    again = StochasticMovingMNIST(digits, num_frames=12, seed=3, num_sequences=10)
    assert [again[i] for i in (9, 4)][1].equal(x)  # another object, another order
    assert not data[5].equal(x)
    assert not StochasticMovingMNIST(digits, num_frames=12, seed=4, num_sequences=10)[4].equal(x)
    batch = data.sequences(3, start=3)
    assert isinstance(batch, Sequences) and batch.x.shape == (3, 12, 1, 64, 64)
    assert batch.x[1].equal(x) and bool(batch.mask.all())
    assert data.for_epoch(0)[4].equal(x) and not data.for_epoch(1)[4].equal(x)
    with pytest.raises(IndexError):
        data.sequences(2, start=9)


def test_smmnist_frames_show_the_trajectory() -> None:
    # one all-white digit: its top-left corner can be read off every frame
    block = np.full((1, 28, 28), 255, np.uint8)
    data = StochasticMovingMNIST(block, num_frames=30, num_digits=1, seed=1, num_sequences=20)
    for i in range(len(data)):
        frames, positions = data[i][:, 0], data.trajectory(i).positions[:, 0]
        assert (positions >= 0).all() and (positions <= 64 - 28).all()
        assert (frames.sum((1, 2)) == 28 * 28).all()  # the whole digit is inside the canvas
        rows = frames.amax(2).argmax(1).numpy()
        cols = frames.amax(1).argmax(1).numpy()
        np.testing.assert_array_equal(np.stack([rows, cols], 1), positions)


def test_smmnist_overlapping_digits_add_and_clip() -> None:
    half = np.full((1, 28, 28), 0.6, np.float32)
    data = StochasticMovingMNIST(half, num_frames=30, seed=2, num_sequences=30)
    values = torch.cat([data[i].unique() for i in range(len(data))]).unique()
    assert torch.allclose(values, torch.tensor([0.0, 0.6, 1.0]))  # 0.6 + 0.6 clipped to 1


def test_bounce_rule() -> None:
    data = StochasticMovingMNIST(random_digits(), num_frames=40, seed=5, num_sequences=200)
    _, p, v = data._trajectories(np.arange(len(data)))  # [n, T, D, 2]
    limit = 64 - 28
    speed = np.abs(v)
    assert (speed >= 1).all() and (speed <= 4).all()
    moved = p[:, 1:] - p[:, :-1]
    at_low, at_high = p[:, 1:] == 0, p[:, 1:] == limit
    at_wall = (at_low | at_high).any(-1, keepdims=True)
    free = np.broadcast_to(~at_wall, moved.shape)
    # away from the walls a digit moves by its velocity and keeps it
    np.testing.assert_array_equal(moved[free], v[:, :-1][free])
    np.testing.assert_array_equal(v[:, 1:][free], v[:, :-1][free])
    # on reaching a wall it moved towards it, and its new velocity points away from it
    assert (moved[at_low] <= 0).all() and (v[:, 1:][at_low] > 0).all()
    assert (moved[at_high] >= 0).all() and (v[:, 1:][at_high] < 0).all()
    # stochastic: the speed after a bounce is redrawn, not reflected
    hit = at_low | at_high
    assert len(np.unique(speed[:, 1:][hit])) == 4
    assert (speed[:, 1:][hit] != speed[:, :-1][hit]).any()


def test_bounce_on_a_known_path() -> None:
    start = np.array([[[1, 30]]])  # one digit at row 1, column 30; corners go up to 36
    speed = np.full((1, 5, 1, 2), 3)
    speed[0, 1], speed[0, 4] = [2, 1], [4, 2]  # fresh speeds, used after the bounces
    sign = np.array([-1, 1])[None, None, None, :].repeat(5, 1)
    positions, velocities = bounce(start, speed, sign, np.array([36, 36]))
    # row 1 - 3 < 0: stopped at the top wall, then down at the fresh speed 2 (away from it)
    # and right at 1 (its drawn sign); column 35 + 1 touches the right wall: left at 2, and
    # the row velocity is redrawn too (speed 4, sign -1)
    np.testing.assert_array_equal(positions[0, :, 0],
                                  [[1, 30], [0, 33], [2, 34], [4, 35], [6, 36]])
    np.testing.assert_array_equal(velocities[0, :, 0],
                                  [[-3, 3], [2, 1], [2, 1], [2, 1], [-4, -2]])


def test_moving_mnist_splits(tmp_path: Path) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", np.full((6, 28, 28), 51), IMAGES_MAGIC, True)
    write_idx(folder / "t10k-images-idx3-ubyte", np.full((4, 28, 28), 102), IMAGES_MAGIC)
    splits = moving_mnist_splits(tmp_path, num_frames=5, train_size=4, valid_size=3, test_size=2)
    assert {k: len(v) for k, v in splits.items()} == {"train": 4, "valid": 3, "test": 2}
    assert splits["train"].x.shape == (4, 5, 1, 64, 64)
    assert not splits["train"].x[:3].equal(splits["valid"].x)  # another seed stream
    assert splits["test"].x.max() == pytest.approx(min(2 * 102 / 255, 1.0))  # t10k digits
    assert splits["train"].x.max() == pytest.approx(2 * 51 / 255)
    again = moving_mnist("valid", folder, num_frames=5, num_sequences=3)
    assert again.sequences(3).x.equal(splits["valid"].x)


def test_real_mnist() -> None:
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the shared MNIST files are not at {SHARED_MNIST}")
    assert load_mnist_labels(SHARED_MNIST / "t10k-labels-idx1-ubyte.gz").shape == (10_000,)
    train, test = mnist_images("train", SHARED_MNIST), mnist_images("test", SHARED_MNIST)
    assert train.shape == (60_000, 28, 28) and test.shape == (10_000, 28, 28)
    x = moving_mnist("test", images=test, num_sequences=4).sequences(4).x
    assert x.shape == (4, 20, 1, 64, 64) and x.min() >= 0 and x.max() == 1


# -- KTH --------------------------------------------------------------------------------------
PERSONS, ACTIONS, FRAMES = (1, 15, 17), ("boxing", "walking"), 30


def write_video(path: Path, person: int) -> None:
    """160×120: top band gray level 10·person, a moving square, bottom band level 10 + 8·t.

    Losslessly encoded (FFV1 in AVI, x264 at CRF 0 in MP4), so the levels can be read back.
    """
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        if path.suffix == ".mp4":
            stream = container.add_stream("libx264", rate=25, options={"crf": "0"})
        else:
            stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for t in range(FRAMES):
            frame = np.zeros((120, 160), np.uint8)
            frame[:40] = 10 * person
            frame[50:70, 4 * t:4 * t + 20] = 255
            frame[80:] = 10 + 8 * t
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def kth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("av")
    root = tmp_path_factory.mktemp("kth")
    (root / "walking").mkdir()
    for person in PERSONS:
        write_video(root / f"person{person:02d}_boxing_d1_uncomp.avi", person)
        write_video(root / "walking" / f"person{person:02d}_walking_d2_uncomp.mp4", person)
    (root / "00sequences.txt").write_text("not a video\n")
    return root


def person_and_start(clip: torch.Tensor) -> tuple[int, int]:
    """Read back which person a clip is from and its first frame, from the gray levels
    (away from the bands' edges, which the resize blurs)."""
    person = clip[0, 0, 3:18].mean() * 255 / 10
    first = (clip[0, 0, 47:62].mean() * 255 - 10) / 8
    steps = (clip[:, 0, 47:62].mean((1, 2)) * 255 - 10) / 8 - first
    # a level can be off by one: yuv420p keeps gray levels in 16–235, so some merge
    assert torch.allclose(steps, torch.arange(len(clip)).float(), atol=0.25)
    return round(float(person)), round(float(first))


def test_find_kth_videos(kth_root: Path) -> None:
    videos = find_kth_videos(kth_root)
    assert [(v.person, v.action, v.scenario) for v in videos] == [
        (p, a, 1 if a == "boxing" else 2) for p in PERSONS for a in ACTIONS]
    assert [v.person for v in find_kth_videos(kth_root, ["walking"])] == list(PERSONS)
    with pytest.raises(FileNotFoundError, match="no KTH folder"):
        find_kth_videos(kth_root / "missing")
    with pytest.raises(FileNotFoundError, match=r"found 7 file\(s\): 00sequences\.txt, person01"):
        find_kth_videos(kth_root, ["running"])


def test_kth_split_by_person(kth_root: Path) -> None:
    data = load_kth(kth_root)  # persons 15 and 16 held out as valid
    assert {k: sorted({v.person for v in d.videos}) for k, d in data.items()} == {
        "train": [1], "valid": [15], "test": [17]}
    svg = load_kth(kth_root, valid_persons=())
    assert set(svg) == {"train", "test"} and len(svg["train"]) == 4
    with pytest.raises(ValueError, match="training persons"):
        load_kth(kth_root, valid_persons=(17,))


def test_kth_clips(kth_root: Path) -> None:
    splits = kth_splits(kth_root, seed=0)
    for split, person in (("train", 1), ("valid", 15), ("test", 17)):
        x = splits[split].x
        assert x.shape == (2, 21, 1, 64, 64) and x.dtype == torch.float32
        assert x.min() >= 0 and x.max() <= 1
        assert {person_and_start(clip)[0] for clip in x} == {person}
    assert [person_and_start(clip)[1] for clip in splits["test"].x] == [0, 0]
    test = load_kth(kth_root)["test"]
    assert test.fixed_windows(stride=4) == [(0, 0), (0, 4), (0, 8), (1, 0), (1, 4), (1, 8)]
    assert test.frames[0].shape == (FRAMES, 64, 64) and test.frames[0].dtype == torch.uint8
    with pytest.raises(IndexError, match="window"):
        test.clips([(0, FRAMES - 20)])


def test_kth_random_windows_are_reproducible(kth_root: Path) -> None:
    train = load_kth(kth_root)["train"]
    windows = train.random_windows(torch.Generator().manual_seed(7), per_video=20)
    assert windows == train.random_windows(torch.Generator().manual_seed(7), per_video=20)
    starts = {s for _, s in windows}
    assert starts <= set(range(FRAMES - 21 + 1)) and len(starts) > 3
    clips = train.clips(windows[:3])
    assert [person_and_start(c) for c in clips.x] == [(1, s) for _, s in windows[:3]]
    assert kth_splits(kth_root, seed=0)["train"].x.equal(kth_splits(kth_root, seed=0)["train"].x)


def test_kth_unreadable_video(tmp_path: Path) -> None:
    pytest.importorskip("av")
    bad = tmp_path / "person03_running_d1_uncomp.avi"
    bad.write_bytes(b"RIFF not really a video")
    data = load_kth(tmp_path)
    with pytest.raises(ValueError, match=r"person03_running_d1_uncomp\.avi: cannot decode"):
        data["train"].clips([(0, 0)])


def test_missing_pyav_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avf.data.kth import read_video

    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` fail
    with pytest.raises(ImportError, match=r"pip install 'avf\[video\]'"):
        read_video(tmp_path / "any.avi")

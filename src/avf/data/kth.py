"""KTH Actions (Schuldt et al. 2004) read from its ``.avi`` files, split by person as in SVG.

KTH is not shipped with avf (its authors distribute it): ``load_kth`` reads the files from
``<data-dir>/kth/`` with PyAV (``pip install avf[video]``). Clips are float32
[T, 1, 64, 64] grayscale in [0, 1], as Stochastic Moving MNIST's are, so SVG takes either.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avf.data.batching import Sequences
from avf.data.datadir import resolve_data_dir
from avf.data.file_splits import named_split_seed
from avf.optional import optional_import
from avf.validation import check_integer

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
        check_integer("clip_length", clip_length, 1)
        check_integer("size", size, 1)
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
        check_integer("per_video", per_video, 1)
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
        check_integer("stride", stride, 1)
        if max_per_video is not None:
            check_integer("max_per_video", max_per_video, 1)
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
            generator = torch.Generator().manual_seed(named_split_seed(seed, split) % 2**63)
            out[split] = videos.clips(videos.random_windows(generator))
        else:
            out[split] = videos.clips(videos.fixed_windows(max_per_video=max_per_video))
    return out

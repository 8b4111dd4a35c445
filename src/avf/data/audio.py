"""Raw-waveform speech for VRNN/SRNN: reading, splits, framing and standardisation.

The AVF paper (Marino et al. 2018), like VRNN and SRNN before it, models TIMIT as raw 16 kHz
samples cut into non-overlapping frames of 200, standardised with the training set's mean and
standard deviation. TIMIT is licensed by the LDC and not shipped, so the Free Spoken Digit
Dataset (FSDD, 8 kHz) stands in for it; any folder of WAV/FLAC files works too.

Choices, and why:

* Samples are ``int16 / 32768`` (soundfile's scaling), so one 16-bit step is exactly 1/32768;
  :meth:`Standardizer.step` turns that into standardised units for scores per sample. Loaders
  keep the waves as float32, which holds any PCM sample of up to 24 bits exactly, at half the
  memory of float64.
* Multi-channel audio is an error, not averaged: a mean of two channels falls between the
  16-bit steps that the scores assume, and FSDD and TIMIT are mono. Downmix explicitly first.
* Nothing is resampled: files of different rates are an error naming two of them.
* FSDD: the official split puts takes 0–4 in test and 5–49 in train. Validation is takes 5–9:
  the test set holds the same six speakers as train (other takes), and a held-out speaker
  would remove a sixth of the training voices, so valid mirrors test's relation to train
  (sizes 2400 / 300 / 300, balanced over digits and speakers). A ``.wav`` whose name is not
  ``{digit}_{speaker}_{take}.wav`` is an error: silently skipping it would change the counts.
* TIMIT: valid is whole speakers held out of TRAIN (5% of them by default, drawn by seed), so
  no voice is in two splits (TIMIT's TRAIN and TEST speakers are already disjoint). Marino's
  conversion script drew 5% of training *files* instead, which lets speakers overlap. Test is
  the full TEST folder (168 speakers, not the 24-speaker core set), and the SA1/SA2 sentences,
  read by every speaker, are kept by default, as in that script (``include_sa=False`` drops
  them).
* Frames drop the trailing partial frame (fewer than ``frame_size`` samples): padding it would
  invent samples the model would be scored on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from avf.data.batching import Sequences
from avf.data.datadir import data_dir_origin, resolve_data_dir
from avf.data.file_splits import SPLITS, child_dir, split_files, stream_seed
from avf.data.music import random_crops
from avf.optional import optional_import

AUDIO_SUFFIXES = (".wav", ".flac")
FSDD_FOLDER = Path("speech") / "fsdd"
FSDD_NAME = re.compile(r"(?P<digit>\d)_(?P<speaker>[A-Za-z0-9]+)_(?P<take>\d+)\.wav")
FSDD_TEST_TAKES = range(0, 5)
FSDD_VALID_TAKES = range(5, 10)

Array = TypeVar("Array", np.ndarray, Tensor)


# -- reading ----------------------------------------------------------------------------------


def read_audio(path: str | Path, dtype: Any = np.float64) -> tuple[np.ndarray, int]:
    """A mono file's samples in [-1, 1) (16-bit PCM / 32768) and its sample rate.

    Reads whatever libsndfile reads: WAV, FLAC, and uncompressed NIST SPHERE (TIMIT's
    ``.WAV`` files). Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for an
    unreadable, multi-channel (see the module docstring), empty or non-finite one.
    """
    sf = optional_import("soundfile", "reading audio", "audio")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    try:
        wave, rate = sf.read(path, dtype=dtype, always_2d=True)
    except sf.SoundFileError as err:
        hint = ""
        if _magic(path) == b"NIST":
            hint = " (a SPHERE file compressed with shorten? decompress it first, e.g. sph2pipe)"
        raise ValueError(f"{path}: not a readable audio file ({err}){hint}") from err
    if wave.shape[1] != 1:
        raise ValueError(f"{path}: has {wave.shape[1]} channels; only mono audio is supported "
                         "(downmix it first: averaging would leave the 16-bit sample grid)")
    if wave.shape[0] == 0:
        raise ValueError(f"{path}: holds no samples")
    wave = wave[:, 0]
    if not np.isfinite(wave).all():
        raise ValueError(f"{path}: holds NaN or infinite samples")
    return np.ascontiguousarray(wave), int(rate)


def _magic(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4)


def frame_waveform(wave: np.ndarray | Tensor, frame_size: int = 200,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """[T, frame_size]: consecutive non-overlapping frames, T = len(wave) // frame_size.

    A model emits one frame per step, as in VRNN/SRNN. The last ``len % frame_size`` samples
    are dropped rather than padded, so no invented sample is ever scored.
    """
    if isinstance(frame_size, bool) or not isinstance(frame_size, int) or frame_size < 1:
        raise ValueError(f"frame_size must be a positive integer, got {frame_size!r}")
    wave = torch.as_tensor(wave)
    if wave.dim() != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {tuple(wave.shape)}")
    steps = wave.shape[0] // frame_size
    if steps == 0:
        raise ValueError(f"the waveform has {wave.shape[0]} samples, fewer than one frame of "
                         f"{frame_size}")
    return wave[:steps * frame_size].reshape(steps, frame_size).to(dtype)


# -- data sets --------------------------------------------------------------------------------
@dataclass
class AudioData:
    """Waveforms per split (1-D float32 numpy arrays) with their file names and speakers.

    ``names`` are paths relative to the data set's folder; ``speakers`` (one per utterance, or
    ``None`` when unknown) let a report say which voices each split holds.
    """

    waves: dict[str, list[np.ndarray]]
    sample_rate: int
    names: dict[str, list[str]]
    speakers: dict[str, list[str]] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for split in SPLITS:
            if not self.waves.get(split):
                raise ValueError(f"{self.source or 'audio data'}: the {split} split is empty")
            if len(self.names.get(split, ())) != len(self.waves[split]):
                raise ValueError(f"{split}: {len(self.waves[split])} waves but "
                                 f"{len(self.names.get(split, ()))} names")
            if self.speakers is not None and (
                    len(self.speakers.get(split, ())) != len(self.waves[split])):
                raise ValueError(f"{split}: the speakers do not match the waves one to one")
            for name, wave in zip(self.names[split], self.waves[split], strict=True):
                if wave.ndim != 1 or wave.shape[0] == 0:
                    raise ValueError(f"{name}: expected a non-empty 1-D waveform, got shape "
                                     f"{tuple(wave.shape)}")

    def speaker_set(self, split: str) -> list[str]:
        """The distinct speakers of ``split``, sorted (empty when speakers are unknown)."""
        return sorted(set(self.speakers[split])) if self.speakers is not None else []

    def summary(self) -> dict[str, dict[str, float]]:
        """Per split: utterances, speakers, samples and seconds (total, min, mean, max)."""
        out = {}
        for split in SPLITS:
            lengths = np.array([w.shape[0] for w in self.waves[split]])
            seconds = lengths / self.sample_rate
            out[split] = {"utterances": len(lengths), "speakers": len(self.speaker_set(split)),
                          "samples": int(lengths.sum()), "seconds": float(seconds.sum()),
                          "min_seconds": float(seconds.min()),
                          "mean_seconds": float(seconds.mean()),
                          "max_seconds": float(seconds.max())}
        return out


def _read_splits(files: dict[str, list[Path]], root: Path,
                 speakers: dict[str, list[str]] | None, source: str) -> AudioData:
    """Read every file (float32); all must share one sample rate."""
    first: tuple[Path, int] | None = None
    waves: dict[str, list[np.ndarray]] = {}
    for split in SPLITS:
        waves[split] = []
        for path in files[split]:
            wave, rate = read_audio(path, dtype=np.float32)
            if first is None:
                first = (path, rate)
            elif rate != first[1]:
                raise ValueError(f"sample rates differ: {first[0]} is {first[1]} Hz but {path} "
                                 f"is {rate} Hz (avf does not resample: convert them first)")
            waves[split].append(wave)
    if first is None:
        raise ValueError(f"{root}: no audio files")
    names = {s: [p.relative_to(root).as_posix() for p in files[s]] for s in SPLITS}
    return AudioData(waves, first[1], names, speakers, source)


# -- FSDD -------------------------------------------------------------------------------------
def load_fsdd(root: str | Path | None = None, *, data_dir: str | Path | None = None
              ) -> AudioData:
    """The Free Spoken Digit Dataset with the official test split and takes 5–9 as valid.

    ``root`` is FSDD's folder (holding ``recordings/``), the recordings folder itself, or a
    data directory; without it, ``<data_dir>/speech/fsdd`` (see ``resolve_data_dir``).
    """
    folder = _fsdd_recordings(root, data_dir)
    files: dict[str, list[Path]] = {s: [] for s in SPLITS}
    speakers: dict[str, list[str]] = {s: [] for s in SPLITS}
    keyed = []
    bad = []
    for path in sorted(folder.iterdir()):
        if not (path.is_file() and path.suffix.lower() == ".wav"):
            continue
        match = FSDD_NAME.fullmatch(path.name)
        if match is None:
            bad.append(path.name)
            continue
        keyed.append(((match["speaker"], int(match["digit"]), int(match["take"])), path))
    if bad:
        raise ValueError(f"{folder}: {len(bad)} .wav file(s) not named "
                         f"{{digit}}_{{speaker}}_{{take}}.wav, e.g. {', '.join(bad[:3])}")
    for (speaker, _, take), path in sorted(keyed):
        split = ("test" if take in FSDD_TEST_TAKES else
                 "valid" if take in FSDD_VALID_TAKES else "train")
        files[split].append(path)
        speakers[split].append(speaker)
    return _read_splits(files, folder, speakers, f"FSDD ({folder})")


def _fsdd_recordings(root: str | Path | None, data_dir: str | Path | None) -> Path:
    base = Path(root).expanduser() if root is not None else (
        resolve_data_dir(data_dir) / FSDD_FOLDER)
    for folder in (base / "recordings", base / FSDD_FOLDER / "recordings", base):
        if folder.is_dir() and any(p.suffix.lower() == ".wav" for p in folder.iterdir()):
            return folder
    origin = "" if root is not None else f" (data directory from {data_dir_origin(data_dir)})"
    raise FileNotFoundError(
        f"no FSDD recordings in {base}{origin}: FSDD's files are expected under "
        "<data-dir>/speech/fsdd/recordings ({digit}_{speaker}_{take}.wav, from "
        "github.com/Jakobovski/free-spoken-digit-dataset)")


# -- any folder of audio files ----------------------------------------------------------------
def load_wav_directory(root: str | Path, valid_fraction: float = 0.05,
                       test_fraction: float = 0.05, seed: int = 0) -> AudioData:
    """All .wav/.flac files under ``root`` (recursively), split into train/valid/test.

    Subfolders ``train/``, ``valid/`` and ``test/`` (any case) are used as given; without a
    ``valid/`` one, ``valid_fraction`` of train's files become valid. Without such folders the
    split is a random one by file, fixed by ``seed``. Speakers are unknown here, so a random
    split may put one voice in several splits: give folders when that matters.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no such audio folder: {root}")
    files = split_files(root, AUDIO_SUFFIXES, valid_fraction, test_fraction, seed, "audio")
    return _read_splits(files, root, None, str(root))


# -- TIMIT ------------------------------------------------------------------------------------
def load_timit(root: str | Path, valid_speakers: int | float = 0.05, seed: int = 0,
               include_sa: bool = True) -> AudioData:
    """TIMIT from its LDC layout ``TRAIN|TEST/DR1..DR8/<speaker>/<utterance>.WAV``.

    Valid holds whole TRAIN speakers: ``valid_speakers`` of them (an int) or that fraction
    (a float; 5% of TIMIT's 462 is 23), drawn by ``seed``. Test is all of TEST. Folder and
    extension case do not matter; where both a SPHERE ``X.WAV`` and a converted RIFF
    ``X.WAV.wav`` exist, the RIFF one is read. ``root`` may also be a folder holding a
    ``TIMIT/`` or ``data/`` folder with that layout.
    """
    root = Path(root).expanduser()
    train_dir, test_dir = _timit_split_dirs(root)
    train = _timit_utterances(train_dir, include_sa)
    test = _timit_utterances(test_dir, include_sa)
    held = _held_out_speakers(sorted({s for s, _ in train}), valid_speakers, seed)
    parts = {"train": [u for u in train if u[0] not in held],
             "valid": [u for u in train if u[0] in held], "test": test}
    files = {s: [p for _, p in parts[s]] for s in SPLITS}
    speakers = {s: [k for k, _ in parts[s]] for s in SPLITS}
    return _read_splits(files, train_dir.parent, speakers, f"TIMIT ({train_dir.parent})")


def _timit_split_dirs(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise FileNotFoundError(f"no such TIMIT folder: {root}")
    candidates = [root] + [c for c in (child_dir(root, "timit"), child_dir(root, "data")) if c]
    for folder in candidates:
        train, test = child_dir(folder, "train"), child_dir(folder, "test")
        if train is not None and test is not None:
            return train, test
    raise FileNotFoundError(
        f"no TRAIN and TEST folders in {root} (nor in its TIMIT/ or data/): expected TIMIT's "
        "layout TRAIN|TEST/DR1..DR8/<speaker>/<utterance>.WAV")


def _timit_utterances(split_dir: Path, include_sa: bool) -> list[tuple[str, Path]]:
    """(``DRx/speaker``, file) per utterance, one file each (RIFF preferred), sorted."""
    chosen: dict[tuple[str, str], Path] = {}
    for path in split_dir.rglob("*"):
        if not (path.is_file() and path.name.lower().endswith(".wav")):
            continue
        speaker = f"{path.parent.parent.name}/{path.parent.name}".upper()
        utterance = path.name.split(".")[0].upper()
        if not include_sa and utterance.startswith("SA"):
            continue
        key = (speaker, utterance)
        if key not in chosen or _prefer(path, chosen[key]):
            chosen[key] = path
    if not chosen:
        raise ValueError(f"{split_dir}: no .WAV files under DR*/<speaker>/")
    return [(speaker, chosen[speaker, u]) for speaker, u in sorted(chosen)]


def _prefer(path: Path, other: Path) -> bool:
    """Whether ``path`` beats ``other`` for the same utterance: RIFF first, then by name."""
    riff, other_riff = _magic(path) == b"RIFF", _magic(other) == b"RIFF"
    return riff > other_riff or (riff == other_riff and path.name < other.name)


def _held_out_speakers(speakers: list[str], count: int | float, seed: int) -> set[str]:
    n = len(speakers)
    if isinstance(count, bool) or not isinstance(count, (int, float)):
        raise ValueError(f"valid_speakers must be a count or a fraction, got {count!r}")
    if isinstance(count, float):
        if not 0 < count < 1:
            raise ValueError(f"valid_speakers as a fraction must be in (0, 1), got {count}")
        count = max(1, round(count * n))
    if not 1 <= count < n:
        raise ValueError(f"valid_speakers = {count} must leave train at least one of its {n} "
                         "speakers and take at least one")
    order = np.random.default_rng(seed).permutation(n)
    return {speakers[i] for i in order[:count]}


# -- standardisation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Standardizer:
    """x ↦ (x − mean) / std with one scalar mean and std, fitted on the training samples only.

    Both are plain floats, so they go into a checkpoint or a JSON report as they are.
    """

    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", float(self.mean))
        object.__setattr__(self, "std", float(self.std))
        if not math.isfinite(self.mean) or not math.isfinite(self.std) or self.std <= 0:
            raise ValueError(f"need a finite mean and a positive std, got {self.mean}, {self.std}")

    @classmethod
    def fit(cls, waves: Sequence[np.ndarray | Tensor]) -> Standardizer:
        """Mean and (population) std over every sample of ``waves``, in float64, two passes."""
        arrays = [np.asarray(w, dtype=np.float64).ravel() for w in waves]
        count = sum(a.size for a in arrays)
        if count == 0:
            raise ValueError("no samples to fit a standardizer on")
        mean = sum(float(a.sum()) for a in arrays) / count
        var = sum(float(np.square(a - mean).sum()) for a in arrays) / count
        if var == 0:
            raise ValueError("the training audio is constant (std 0): cannot standardise it")
        return cls(mean, math.sqrt(var))

    def apply(self, x: Array) -> Array:
        return (x - self.mean) / self.std

    def invert(self, x: Array) -> Array:
        return x * self.std + self.mean

    def step(self, bits: int = 16) -> float:
        """One quantisation step of ``bits``-bit PCM (2 / 2**bits) in standardised units."""
        return 2.0 ** (1 - bits) / self.std

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Standardizer:
        return cls(values["mean"], values["std"])


# -- splits for training ----------------------------------------------------------------------
@dataclass
class AudioSplits:
    """What :func:`audio_splits` returns: the batches, the scaling, and the whole utterances.

    ``frames`` holds each split's standardised utterances [T_i, frame_size], whole, so that
    :meth:`crops` can draw fresh windows each epoch; ``dropped`` counts utterances too short
    for the crop that were left out of a cropped split.
    """

    splits: dict[str, Sequences]
    standardizer: Standardizer
    frames: dict[str, list[Tensor]]
    frame_size: int
    dropped: dict[str, int] = field(default_factory=dict)
    sample_rate: int | None = None  # of the waveforms, for plots and reports

    def crops(self, length: int, generator: torch.Generator | None = None,
              split: str = "train") -> Sequences:
        """One random ``length``-frame window per utterance of ``split`` (shorter ones dropped).

        Call it once per epoch; the same ``generator`` state gives the same windows.
        """
        return random_crops(self.frames[split], length, generator)


def audio_splits(data: AudioData, frame_size: int = 200, crop_steps: int | None = None,
                 seed: int = 0, standardizer: Standardizer | None = None) -> AudioSplits:
    """Framed, standardised splits: test whole; train and valid whole or cropped.

    The standardizer is fitted on train unless given, and applied to every split. With
    ``crop_steps``, train and valid are one random window of that many frames per utterance
    (each split from its own seed; shorter utterances dropped and counted) — the VRNN/SRNN
    TIMIT setup is 16 kHz, frames of 200 and 0.5 s windows, i.e. ``crop_steps=40``. The
    default keeps them whole with a mask, which suits FSDD (clips of 5 to 91 frames of 200).
    """
    scale = standardizer if standardizer is not None else Standardizer.fit(data.waves["train"])
    frames = {s: _framed(data, s, frame_size, scale) for s in SPLITS}
    splits: dict[str, Sequences] = {}
    dropped: dict[str, int] = {}
    for i, split in enumerate(SPLITS):
        if split == "test" or crop_steps is None:
            splits[split] = Sequences.from_list(frames[split])
            continue
        generator = torch.Generator().manual_seed(stream_seed(seed, i))
        try:
            splits[split] = random_crops(frames[split], crop_steps, generator)
        except ValueError as err:
            raise ValueError(f"{split} split (frames of {frame_size} samples): {err}") from err
        dropped[split] = sum(f.shape[0] < crop_steps for f in frames[split])
    return AudioSplits(splits, scale, frames, frame_size, dropped, data.sample_rate)


def _framed(data: AudioData, split: str, frame_size: int, scale: Standardizer) -> list[Tensor]:
    out = []
    for name, wave in zip(data.names[split], data.waves[split], strict=True):
        try:
            out.append(frame_waveform(scale.apply(wave.astype(np.float64)), frame_size))
        except ValueError as err:
            raise ValueError(f"{split} utterance {name}: {err}") from err
    return out

"""Polyphonic music as 88-key piano rolls: the four Boulanger-Lewandowski (2012) data sets.

Every loader returns ``{"train": [...], "valid": [...], "test": [...]}``, each a list of float32
tensors [T_i, 88] of 0/1, where column j is MIDI note j + 21 (the piano keys A0 = 21 … C8 = 108).
The same splits exist in several formats: TCN's ``.mat`` files (dense rolls), the original
pickles and JSON copies (a list of MIDI note numbers per step), and users' own MIDI files.

Pickles can run code when loaded, and these come from the internet: they are read with an
unpickler that knows only the two numpy globals such files hold and refuses anything else.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from avf.atomic import atomic_write
from avf.data.batching import Sequences
from avf.data.datadir import data_dir_origin, resolve_data_dir
from avf.data.file_splits import SPLITS
from avf.optional import optional_import

LOWEST, HIGHEST = 21, 108  # MIDI notes of the piano's lowest and highest keys
KEYS = HIGHEST - LOWEST + 1

# file names per data set, in order of preference: the .mat files are what `avf data download`
# fetches; the original pickles are accepted when someone has a copy
FILE_NAMES: dict[str, tuple[str, ...]] = {
    "jsb": ("JSB_Chorales.mat", "JSB Chorales.pickle", "jsb-chorales-quarter.pkl",
            "jsb-chorales-quarter.json"),
    "nottingham": ("Nottingham.mat", "Nottingham.pickle"),
    "musedata": ("MuseData.mat", "MuseData.pickle"),
    "piano": ("Piano_midi.mat", "Piano-midi.de.pickle"),
}
FOLDER = "polyphonic"

MusicData = dict[str, list[Tensor]]


# -- finding ----------------------------------------------------------------------------------
def load_music(name_or_path: str | Path, data_dir: str | Path | None = None) -> MusicData:
    """A data set by name (``jsb``, ``nottingham``, ``musedata``, ``piano``) or a file's path.

    A name is looked up in ``data_dir/polyphonic/`` and then ``data_dir/`` (``data_dir`` as
    resolved by :func:`avf.data.datadir.resolve_data_dir`), trying the names in
    :data:`FILE_NAMES` in order. Raises ``FileNotFoundError`` saying where it looked.
    """
    key = str(name_or_path).strip().lower()
    if isinstance(name_or_path, str) and key in FILE_NAMES:
        root = resolve_data_dir(data_dir)
        folders = (root / FOLDER, root)
        for folder in folders:
            for name in FILE_NAMES[key]:
                if (folder / name).is_file():
                    return load_file(folder / name)
        looked = ", ".join(repr(n) for n in FILE_NAMES[key])
        raise FileNotFoundError(
            f"no {key} data found: looked for {looked} in {folders[0]} and {root} (data "
            f"directory from {data_dir_origin(data_dir)}). Fetch it with `avf data download "
            f"{key}`, or use --data-dir or the AVF_DATA_DIR environment variable to point at a "
            f"folder that has one of these files")
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return load_file(path)
    raise FileNotFoundError(
        f"no such music file {str(name_or_path)!r}, and it is not a data set name "
        f"(known: {', '.join(FILE_NAMES)})")


def load_file(path: str | Path) -> MusicData:
    """Read one file, by its extension: ``.mat``, ``.pickle``/``.pkl`` or ``.json``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return load_mat(path)
    if suffix in (".pickle", ".pkl"):
        return load_pickle(path)
    if suffix == ".json":
        return load_json(path)
    raise ValueError(f"{path}: unknown music file type {suffix!r} (use .mat, .pickle, .pkl or "
                     ".json; MIDI files go through midi_to_piano_roll)")


# -- formats ----------------------------------------------------------------------------------
def load_mat(path: str | Path) -> MusicData:
    """TCN's layout: ``traindata``/``validdata``/``testdata``, 1×N cells of T_i×88 0/1 arrays."""
    from scipy.io import loadmat  # scipy is slow to import and only needed here

    path = Path(path)
    try:
        mat = loadmat(path)
    except (ValueError, TypeError, NotImplementedError) as err:
        raise ValueError(f"{path}: not a readable MATLAB file ({err})") from err
    out: MusicData = {}
    for split in SPLITS:
        var = f"{split}data"
        if var not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise ValueError(f"{path}: no variable {var!r} (found: {', '.join(found)})")
        rolls = []
        for i, cell in enumerate(np.asarray(mat[var], dtype=object).ravel()):
            roll = np.asarray(cell)
            check_roll(roll, f"{path} ({split} sequence {i})")
            rolls.append(torch.from_numpy(roll.astype(np.float32)))
        out[split] = rolls
    return out


def load_json(path: str | Path) -> MusicData:
    """``{"train": [...], ...}``; each sequence a list of steps, each a list of MIDI notes."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    return from_note_lists(raw, str(path))


def save_json(data: MusicData, path: str | Path) -> Path:
    """Write splits in :func:`load_json`'s layout; the file appears whole or not at all."""
    path = Path(path)
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise ValueError(f"no {', '.join(map(repr, missing))} split to write to {path}")
    raw = {s: [roll_to_notes(roll, f"{s} sequence {i}") for i, roll in enumerate(data[s])]
           for s in SPLITS}
    text = json.dumps(raw, separators=(",", ":"))
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
    return path


def roll_to_notes(roll: Tensor, where: str = "<roll>") -> list[list[int]]:
    """The inverse of :func:`notes_to_roll`: the MIDI notes on at each step of a [T, 88] roll."""
    check_roll(roll, where)
    return [[LOWEST + k for k in row.nonzero().flatten().tolist()] for row in roll]


def check_roll(roll: np.ndarray | Tensor, where: str) -> None:
    """A [T, 88] array (numpy or torch) of 0s and 1s, or a ValueError that says what is not."""
    if roll.ndim != 2 or roll.shape[1] != KEYS:
        raise ValueError(f"{where}: expected a T×{KEYS} piano roll, got shape "
                         f"{tuple(roll.shape)}")
    if not bool(((roll == 0) | (roll == 1)).all()):
        raise ValueError(f"{where}: the piano roll holds values other than 0 and 1")


def load_pickle(path: str | Path) -> MusicData:
    """The original Boulanger-Lewandowski pickles (and copies), read without running code.

    They are Python 2 pickles of numpy scalars, hence ``encoding="latin1"``. Any global other
    than a numpy scalar or dtype raises ``pickle.UnpicklingError`` naming it.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            raw = _NotesUnpickler(fh, encoding="latin1").load()
        except pickle.UnpicklingError as err:
            raise pickle.UnpicklingError(f"{path}: {err}") from err
        except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise ValueError(f"{path}: not a readable pickle ({err})") from err
    return from_note_lists(raw, str(path))


def _numpy_scalar_factory() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import scalar
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core.multiarray import scalar
    return scalar


class _NotesUnpickler(pickle.Unpickler):
    """Resolves only numpy's scalar and dtype; any other global is refused before it is used."""

    _SCALAR = frozenset({("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._SCALAR:
            return _safe_scalar
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(
            f"blocked global {module}.{name}: a music pickle may only hold numpy scalars, so "
            "this file is not one (or has been tampered with)")


def _safe_scalar(dtype: Any, *args: Any) -> Any:
    # an object-dtype "scalar" would be an arbitrary object: numbers are all these files hold
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError(f"refused a numpy scalar of dtype {dtype!r}")
    return _numpy_scalar_factory()(dtype, *args)


def from_note_lists(raw: Any, source: str = "<data>") -> MusicData:
    """Piano rolls from the note-list layout (a dict of splits; steps are lists of notes)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a dict of splits, got {type(raw).__name__}")
    out: MusicData = {}
    for split in SPLITS:
        if split not in raw:
            raise ValueError(f"{source}: no {split!r} split (found: "
                             f"{', '.join(map(str, raw))})")
        songs = raw[split]
        if not isinstance(songs, (list, tuple)):
            raise ValueError(f"{source}: split {split!r} is a {type(songs).__name__}, not a list")
        out[split] = [notes_to_roll(s, f"{source} ({split} sequence {i})")
                      for i, s in enumerate(songs)]
    return out


def notes_to_roll(steps: Sequence[Sequence[int]], where: str = "<data>") -> Tensor:
    """[T, 88] float32 0/1 from T lists of MIDI notes; a note off the keyboard is an error."""
    if not isinstance(steps, (list, tuple)):
        raise ValueError(f"{where}: a sequence must be a list of steps, got {type(steps).__name__}")
    rows: list[int] = []
    cols: list[int] = []
    for t, notes in enumerate(steps):
        if not isinstance(notes, (list, tuple, set, frozenset, np.ndarray)):
            raise ValueError(f"{where}, step {t}: expected a list of MIDI notes, got "
                             f"{type(notes).__name__}")
        for note in notes:
            rows.append(t)
            cols.append(_key(note, where, t))
    roll = torch.zeros(len(steps), KEYS)
    roll[rows, cols] = 1.0
    return roll


def _key(note: Any, where: str, step: int) -> int:
    try:
        number = int(note)
        exact = number == note
    except (TypeError, ValueError):
        exact = False
    if not exact:
        raise ValueError(f"{where}, step {step}: {note!r} is not a MIDI note number")
    if not LOWEST <= number <= HIGHEST:
        raise ValueError(f"{where}, step {step}: MIDI note {number} is outside the piano's "
                         f"range {LOWEST}–{HIGHEST}")
    return number - LOWEST


# -- splits for training ----------------------------------------------------------------------
CROP_SAMPLING = ("song", "step")


def random_crops(songs: Sequence[Tensor], length: int,
                 generator: torch.Generator | None = None, *, per: str = "song") -> Sequences:
    """Random windows of ``length`` steps, as many as there are songs that long (others dropped).

    ``per="song"`` takes one window from each such song, so a short song is trained on as often
    as a long one. ``per="step"`` draws every window from all windows of all songs alike (songs
    picked with replacement, in proportion to the windows they hold), so each time step is
    equally likely to be seen: the weighting of a test score averaged over all steps (micro),
    where long songs count in proportion to their length. Call it once per epoch for fresh
    windows; with the same ``generator`` state, the same ones.
    """
    if per not in CROP_SAMPLING:
        raise ValueError(f"unknown crop sampling {per!r}: use {' or '.join(CROP_SAMPLING)}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"crop length must be a positive integer, got {length!r}")
    if len(songs) == 0:
        raise ValueError("no songs to crop")
    kept = [s for s in songs if s.shape[0] >= length]
    if not kept:
        longest = max(s.shape[0] for s in songs)
        raise ValueError(f"no song has {length} steps or more (the longest has {longest})")
    room = torch.tensor([s.shape[0] - length + 1 for s in kept])
    if per == "step":
        picks = torch.multinomial(room.double(), len(kept), replacement=True, generator=generator)
        kept, room = [kept[i] for i in picks.tolist()], room[picks]
    starts = (torch.rand(len(kept), generator=generator) * room).long().clamp_max(room - 1)
    return Sequences(torch.stack([s[a:a + length] for s, a in zip(kept, starts.tolist(),
                                                                  strict=True)]))


def transpose_rolls(rolls: Tensor, shifts: Tensor) -> Tensor:
    """Piano rolls [N, T, K] with roll n moved up by ``shifts[n]`` keys (down when negative).

    Notes pushed past the lowest or highest key are dropped, not wrapped round: a transposed
    song keeps its shape but may lose a few extreme notes.
    """
    if rolls.dim() != 3 or shifts.shape != (rolls.shape[0],):
        raise ValueError(f"transpose_rolls takes rolls [N, T, K] and one shift per roll, got "
                         f"{tuple(rolls.shape)} and {tuple(shifts.shape)}")
    keys = rolls.shape[-1]
    out = torch.zeros_like(rolls)
    for n, shift in enumerate(shifts.tolist()):
        if abs(shift) >= keys:
            continue  # every note leaves the keyboard
        if shift >= 0:
            out[n, :, shift:] = rolls[n, :, :keys - shift]
        else:
            out[n, :, :keys + shift] = rolls[n, :, -shift:]
    return out


def music_splits(data: MusicData, crop: int | None = 25, seed: int = 0, *,
                 whole_valid: bool = False, per: str = "song") -> dict[str, Sequences]:
    """Train and valid as random ``crop``-step windows (one per song by default); test whole.

    Windows make batches of equal length (fast, as in the paper's training); the test split is
    always scored whole, padded with a mask. ``crop=None`` keeps every split whole, and
    ``whole_valid`` the valid split, so that validation measures what the test score does.
    Each split draws from its own seed, so the valid windows do not depend on the size of train.
    ``per`` is :func:`random_crops`' choice between one window per song and per time step.
    """
    out = {}
    for i, split in enumerate(SPLITS):
        if split == "test" or crop is None or (split == "valid" and whole_valid):
            out[split] = Sequences.from_list(data[split])
        else:
            state = np.random.SeedSequence([seed % 2**63, i]).generate_state(1, np.uint64)[0]
            generator = torch.Generator().manual_seed(int(state % 2**63))
            out[split] = random_crops(data[split], crop, generator, per=per)
    return out


# -- MIDI -------------------------------------------------------------------------------------
def midi_to_piano_roll(path: str | Path, steps_per_quarter: int = 1, *, drums: bool = False,
                       out_of_range: Literal["error", "drop"] = "error") -> Tensor:
    """[T, 88] float32 piano roll of a MIDI file, on a grid of ``steps_per_quarter`` per beat.

    The grid is in beats, not seconds, so tempo changes do not matter; one step per quarter
    note is the resolution of the four data sets. A note is on at every step whose start it
    covers; a note too short to cover any step start is on at the step where it begins, so
    no note is lost. Channel 10 (drums) is left out unless ``drums``. Needs ``mido``.
    """
    if isinstance(steps_per_quarter, bool) or not isinstance(steps_per_quarter, int) or (
            steps_per_quarter < 1):
        raise ValueError(f"steps_per_quarter must be a positive integer, got {steps_per_quarter!r}")
    mido = optional_import("mido", "reading MIDI files", "midi")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such MIDI file: {path}")
    try:
        midi = mido.MidiFile(path)
    except (OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise ValueError(f"{path}: not a readable MIDI file ({err})") from err
    per_beat = midi.ticks_per_beat
    cells: set[tuple[int, int]] = set()
    last = 0
    for pitch, start, end in _midi_notes(midi, drums):
        if not LOWEST <= pitch <= HIGHEST:
            if out_of_range == "drop":
                continue
            raise ValueError(f"{path}: MIDI note {pitch} is outside the piano's range "
                             f"{LOWEST}–{HIGHEST} (pass out_of_range='drop' to skip such notes)")
        first = -(-start * steps_per_quarter // per_beat)  # ceil: first step start it covers
        stop = -(-end * steps_per_quarter // per_beat)
        if stop <= first:
            first = start * steps_per_quarter // per_beat
            stop = first + 1
        cells.update((t, pitch - LOWEST) for t in range(first, stop))
        last = max(last, stop)
    if not cells:
        raise ValueError(f"{path}: no notes on the piano's keys")
    roll = torch.zeros(last, KEYS)
    rows, cols = zip(*cells, strict=True)
    roll[list(rows), list(cols)] = 1.0
    return roll


def _midi_notes(midi: Any, drums: bool) -> list[tuple[int, int, int]]:
    """(pitch, start tick, end tick) of every note; one still held at the end stops there."""
    notes = []
    for track in midi.tracks:
        tick = 0
        held: dict[tuple[int, int], list[int]] = {}
        for msg in track:
            tick += msg.time
            if msg.type not in ("note_on", "note_off") or (msg.channel == 9 and not drums):
                continue
            key = (msg.channel, msg.note)
            if msg.type == "note_on" and msg.velocity > 0:
                held.setdefault(key, []).append(tick)
            elif held.get(key):
                notes.append((msg.note, held[key].pop(0), tick))
        notes.extend((note, start, tick) for (_, note), starts in held.items() for start in starts)
    return notes



"""Polyphonic music loaders: every format on tiny files written here, the safe unpickler, crops,
MIDI import, and (when the team's shared data folder is there) the real splits' statistics."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from scipy.io import savemat

from avf.data import Sequences
from avf.data.music import (
    FILE_NAMES,
    KEYS,
    SPLITS,
    load_file,
    load_music,
    load_pickle,
    midi_to_piano_roll,
    music_splits,
    random_crops,
    roll_to_notes,
    save_json,
)
from conftest import music_data_dir

# note lists in the original layout: a list of steps, each a tuple of MIDI notes (may be empty)
SONGS = {
    "train": [[(60, 64, 67), (62,), ()], [(21, 108), (48, 52)]],
    "valid": [[(70,)]],
    "test": [[(55, 59), (55,), (57, 60, 64), ()]],
}


def expected_roll(song: list[tuple[int, ...]]) -> torch.Tensor:
    roll = torch.zeros(len(song), KEYS)
    for t, notes in enumerate(song):
        for note in notes:
            roll[t, note - 21] = 1.0
    return roll


def assert_same_as_songs(data: dict[str, list[torch.Tensor]]) -> None:
    assert set(data) == set(SPLITS)
    for split in SPLITS:
        assert len(data[split]) == len(SONGS[split])
        for got, song in zip(data[split], SONGS[split], strict=True):
            assert got.dtype == torch.float32 and got.shape == (len(song), KEYS)
            assert torch.equal(got, expected_roll(song))


def numpy_songs() -> dict[str, list[list[tuple[np.int64, ...]]]]:
    return {split: [[tuple(np.int64(n) for n in step) for step in song] for song in songs]
            for split, songs in SONGS.items()}


# -- formats on tiny files --------------------------------------------------------------------
def test_json(tmp_path: Path) -> None:
    path = tmp_path / "songs.json"
    path.write_text(json.dumps(SONGS))
    assert_same_as_songs(load_file(path))


class _Python2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the original pickles hold them.

    Python 3's protocol 2 writes bytes through ``_codecs.encode`` instead, a global the safe
    unpickler rightly refuses; Python 2 had no such call.
    """

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_str2(self, obj: bytes) -> None:
        size = len(obj)
        head = (pickle.SHORT_BINSTRING + bytes([size]) if size < 256
                else pickle.BINSTRING + struct.pack("<i", size))
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_str2


def python2_pickle(obj: object) -> bytes:
    out = io.BytesIO()
    _Python2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


@pytest.mark.parametrize("module", [b"numpy._core.multiarray", b"numpy.core.multiarray"])
@pytest.mark.parametrize("style", ["python2", "python3"])
def test_pickle_of_numpy_scalars(tmp_path: Path, module: bytes, style: str) -> None:
    songs = numpy_songs()
    # protocol 3 names globals as text (GLOBAL), so either numpy spelling can be put in place
    blob = python2_pickle(songs) if style == "python2" else pickle.dumps(songs, protocol=3)
    for name in (b"numpy._core.multiarray", b"numpy.core.multiarray"):
        blob = blob.replace(name + b"\nscalar", module + b"\nscalar")
    assert module + b"\nscalar" in blob
    path = tmp_path / "songs.pickle"
    path.write_bytes(blob)
    assert_same_as_songs(load_file(path))


def test_mat(tmp_path: Path) -> None:
    cells = {}
    for split, songs in SONGS.items():
        cell = np.empty((1, len(songs)), dtype=object)
        for i, song in enumerate(songs):
            cell[0, i] = expected_roll(song).numpy().astype(np.uint8)
        cells[f"{split}data"] = cell
    path = tmp_path / "songs.mat"
    savemat(path, cells)
    assert_same_as_songs(load_file(path))


def test_mat_with_wrong_width(tmp_path: Path) -> None:
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = np.zeros((4, 12), dtype=np.uint8)
    savemat(tmp_path / "bad.mat", {"traindata": cell, "validdata": cell, "testdata": cell})
    with pytest.raises(ValueError, match=r"bad\.mat \(train sequence 0\).*T×88.*\(4, 12\)"):
        load_file(tmp_path / "bad.mat")


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({"train": [_Evil(marker)]}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"blocked global (os|posix|nt)\.system"):
        load_pickle(path)
    assert not marker.exists()
    path.write_bytes(pickle.dumps(eval, protocol=4))
    with pytest.raises(pickle.UnpicklingError, match=r"blocked global builtins\.eval"):
        load_pickle(path)


class _ObjectScalar:
    def __reduce__(self):
        scalar = np.int64(0).__reduce__()[0]  # numpy's scalar constructor, as numpy spells it
        return scalar, (np.dtype(object), None)


def test_object_dtype_scalar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "object.pickle"
    path.write_bytes(pickle.dumps([_ObjectScalar()], protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="dtype"):
        load_pickle(path)


@pytest.mark.parametrize("note", [20, 109, 128])
def test_note_off_the_keyboard(tmp_path: Path, note: int) -> None:
    songs = {"train": [[(60,), (note, 64)]], "valid": [], "test": []}
    path = tmp_path / "wide.json"
    path.write_text(json.dumps(songs))
    with pytest.raises(ValueError, match=rf"wide\.json \(train sequence 0\), step 1: MIDI note "
                                         rf"{note} is outside the piano's range 21–108"):
        load_file(path)


def test_bad_layouts(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"train": [], "valid": []}))
    with pytest.raises(ValueError, match="no 'test' split"):
        load_file(path)
    path.write_text(json.dumps({"train": [[[60.5]]], "valid": [], "test": []}))
    with pytest.raises(ValueError, match=r"60\.5 is not a MIDI note number"):
        load_file(path)
    with pytest.raises(ValueError, match=r"unknown music file type '\.txt'"):
        load_file(tmp_path / "songs.txt")


# -- finding files ----------------------------------------------------------------------------
def test_load_music_by_name_prefers_mat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "polyphonic"
    folder.mkdir()
    (folder / "jsb-chorales-quarter.json").write_text(json.dumps(SONGS))
    assert_same_as_songs(load_music("jsb", tmp_path))
    monkeypatch.setenv("AVF_DATA_DIR", str(tmp_path))
    assert_same_as_songs(load_music("JSB"))
    assert_same_as_songs(load_music(folder / "jsb-chorales-quarter.json"))  # a path
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = np.ones((2, KEYS), dtype=np.uint8)
    savemat(folder / "JSB_Chorales.mat", {f"{s}data": cell for s in SPLITS})
    assert load_music("jsb")["train"][0].shape == (2, KEYS)


def test_missing_data_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_music("nottingham", tmp_path)
    text = str(info.value)
    for part in ("'Nottingham.mat'", "'Nottingham.pickle'", str(tmp_path / "polyphonic"),
                 "avf data download nottingham", "--data-dir", "AVF_DATA_DIR"):
        assert part in text
    with pytest.raises(FileNotFoundError, match=r"not a data set name.*jsb, nottingham"):
        load_music(str(tmp_path / "nothing.mat"))


# -- crops and splits -------------------------------------------------------------------------
def numbered_songs(lengths: list[int]) -> list[torch.Tensor]:
    """Songs whose first column counts the steps, so a crop shows where it came from."""
    songs = []
    for i, length in enumerate(lengths):
        song = torch.zeros(length, KEYS)
        song[:, 0] = torch.arange(length)
        song[:, 1] = i
        songs.append(song)
    return songs


def test_random_crops() -> None:
    songs = numbered_songs([27, 10, 40])
    crops = random_crops(songs, 25, torch.Generator().manual_seed(0))
    assert isinstance(crops, Sequences) and crops.x.shape == (2, 25, KEYS)
    assert bool(crops.mask.all())
    assert crops.x[:, 0, 1].tolist() == [0, 2]  # the 10-step song is dropped
    for window in crops.x:
        start = int(window[0, 0])
        assert torch.equal(window[:, 0], torch.arange(start, start + 25, dtype=torch.float32))
    again = random_crops(songs, 25, torch.Generator().manual_seed(0))
    assert torch.equal(crops.x, again.x)
    g = torch.Generator().manual_seed(1)
    starts = {int(random_crops(songs[:1], 25, g).x[0, 0, 0]) for _ in range(200)}
    assert starts == {0, 1, 2}  # every window can be drawn, and none past the end
    with pytest.raises(ValueError, match="no song has 50 steps or more"):
        random_crops(songs, 50)
    with pytest.raises(ValueError, match="positive integer"):
        random_crops(songs, 0)


def test_crops_per_step_weigh_songs_by_length() -> None:
    songs = numbered_songs([25, 124, 10])  # 1 and 100 windows; the 10-step song has none
    crops = random_crops(songs, 25, torch.Generator().manual_seed(0), per="step")
    assert crops.x.shape == (2, 25, KEYS)  # as many windows as per song
    for window in crops.x:  # every window is a real window of its song
        start, song = int(window[0, 0]), int(window[0, 1])
        assert song in (0, 1) and start + 25 <= (25, 124)[song]
        assert torch.equal(window[:, 0], torch.arange(start, start + 25, dtype=torch.float32))
    g = torch.Generator().manual_seed(1)
    picks = torch.cat([random_crops(songs, 25, g, per="step").x[:, 0, 1] for _ in range(500)])
    share = float((picks == 1).float().mean())
    assert abs(share - 100 / 101) < 0.01  # in proportion to the windows a song holds
    per_song = torch.cat([random_crops(songs, 25, g).x[:, 0, 1] for _ in range(50)])
    assert float((per_song == 1).float().mean()) == 0.5  # one each
    with pytest.raises(ValueError, match="unknown crop sampling 'bar': use song or step"):
        random_crops(songs, 25, per="bar")


def test_music_splits() -> None:
    data = {"train": numbered_songs([30, 31, 5]), "valid": numbered_songs([26]),
            "test": numbered_songs([3, 7])}
    splits = music_splits(data, crop=25, seed=3)
    assert splits["train"].x.shape == (2, 25, KEYS) and splits["valid"].x.shape == (1, 25, KEYS)
    assert splits["test"].lengths.tolist() == [3, 7] and splits["test"].x.shape[1] == 7
    assert torch.equal(music_splits(data, seed=3)["train"].x, splits["train"].x)
    whole = music_splits(data, crop=None)
    assert whole["train"].lengths.tolist() == [30, 31, 5]
    data["valid"] = numbered_songs([26, 40])
    whole_valid = music_splits(data, crop=25, seed=3, whole_valid=True)
    assert whole_valid["valid"].lengths.tolist() == [26, 40]  # scored as test songs are
    assert torch.equal(whole_valid["valid"].x, music_splits(data, crop=None)["valid"].x)
    assert torch.equal(whole_valid["train"].x, splits["train"].x)  # training windows unchanged
    data["valid"] = numbered_songs([26, 200])
    weighted = music_splits(data, crop=25, seed=3, per="step")
    assert weighted["valid"].x[:, 0, 1].tolist() == [1, 1]  # 2 of 178 windows are in song 0
    assert weighted["test"].lengths.tolist() == [3, 7]  # test songs are whole either way


# -- MIDI -------------------------------------------------------------------------------------
def write_midi(path: Path, notes: list[tuple[int, int, int, int]], per_beat: int = 480) -> None:
    """notes: (channel, pitch, start tick, end tick), written as one track."""
    mido = pytest.importorskip("mido")
    events = []
    for channel, pitch, start, end in notes:
        events.append((start, 1, mido.Message("note_on", channel=channel, note=pitch,
                                               velocity=80)))
        events.append((end, 0, mido.Message("note_off", channel=channel, note=pitch)))
    track, now = mido.MidiTrack(), 0
    track.append(mido.MetaMessage("set_tempo", tempo=400_000, time=0))
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(ticks_per_beat=per_beat)
    midi.tracks.append(track)
    midi.save(path)


def test_midi_to_piano_roll(tmp_path: Path) -> None:
    path = tmp_path / "tiny.mid"
    write_midi(path, [
        (0, 60, 0, 480),      # a quarter note: step 0
        (0, 64, 480, 1440),   # a half-note chord: steps 1 and 2
        (1, 67, 480, 1440),
        (0, 72, 1440, 1680),  # an eighth note on the beat: step 3
        (0, 74, 1700, 1800),  # shorter than a step, between beats: kept, at step 3
        (9, 36, 0, 1800),     # drums: left out
    ])
    roll = midi_to_piano_roll(path)
    assert roll.dtype == torch.float32 and roll.shape == (4, KEYS)
    notes = [sorted((row.nonzero().flatten() + 21).tolist()) for row in roll]
    assert notes == [[60], [64, 67], [64, 67], [72, 74]]
    fine = midi_to_piano_roll(path, steps_per_quarter=2)
    notes = [sorted((row.nonzero().flatten() + 21).tolist()) for row in fine]
    assert notes == [[60], [60], [64, 67], [64, 67], [64, 67], [64, 67], [72], [74]]
    with_drums = midi_to_piano_roll(path, drums=True)
    assert with_drums[:, 36 - 21].tolist() == [1.0] * 4


def test_midi_note_off_the_keyboard(tmp_path: Path) -> None:
    path = tmp_path / "high.mid"
    write_midi(path, [(0, 60, 0, 480), (0, 110, 0, 480)])
    with pytest.raises(ValueError, match=r"high\.mid: MIDI note 110 is outside"):
        midi_to_piano_roll(path)
    assert midi_to_piano_roll(path, out_of_range="drop").sum() == 1


def test_midi_without_mido(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mido", None)  # makes `import mido` fail
    with pytest.raises(ImportError, match=r"pip install 'avf\[midi\]'"):
        midi_to_piano_roll(tmp_path / "any.mid")


def write_songs(folder: Path, count: int, first_pitch: int = 40) -> list[Path]:
    """``count`` one-note MIDI files song_<i>.mid whose pitch and length tell them apart."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"song_{i}.mid"
        write_midi(path, [(0, first_pitch + i, 0, 480 * (i + 2))])
        paths.append(path)
    return paths


def song_pitches(rolls: list[torch.Tensor]) -> list[int]:
    return [int(roll[0].nonzero().item()) + 21 for roll in rolls]


def test_midi_directory_random_split(tmp_path: Path) -> None:
    from avf.data.midi import load_midi_directory

    paths = write_songs(tmp_path / "nested", 10)
    (tmp_path / "notes.txt").write_text("not MIDI, not read")
    songs = load_midi_directory(tmp_path, valid_fraction=0.2, test_fraction=0.1, seed=4)
    sizes = {s: len(songs[s]) for s in SPLITS}
    assert sizes == {"train": 7, "valid": 2, "test": 1}
    pitches = {s: song_pitches(songs[s]) for s in SPLITS}
    assert sorted(p for split in SPLITS for p in pitches[split]) == list(range(40, 50))
    for split in SPLITS:  # each roll is the file's own roll
        for pitch, roll in zip(pitches[split], songs[split], strict=True):
            assert torch.equal(roll, midi_to_piano_roll(paths[pitch - 40]))
    again = load_midi_directory(tmp_path, valid_fraction=0.2, test_fraction=0.1, seed=4)
    assert {s: song_pitches(again[s]) for s in SPLITS} == pitches
    other = load_midi_directory(tmp_path, valid_fraction=0.2, test_fraction=0.1, seed=5)
    assert {s: song_pitches(other[s]) for s in SPLITS} != pitches


def test_midi_directory_split_folders(tmp_path: Path) -> None:
    from avf.data.midi import load_midi_directory

    write_songs(tmp_path / "Train", 5, first_pitch=40)
    write_songs(tmp_path / "test", 2, first_pitch=60)
    songs = load_midi_directory(tmp_path, valid_fraction=0.2)
    assert sorted(song_pitches(songs["test"])) == [60, 61]
    assert len(songs["valid"]) == 1 and len(songs["train"]) == 4  # valid drawn from train/
    assert sorted(song_pitches(songs["train"] + songs["valid"])) == [40, 41, 42, 43, 44]
    write_songs(tmp_path / "elsewhere", 1)
    with pytest.raises(ValueError, match=r"1 MIDI file\(s\) outside train/, valid/, test/"):
        load_midi_directory(tmp_path)


def test_midi_directory_errors(tmp_path: Path) -> None:
    from avf.data.midi import load_midi_directory

    with pytest.raises(FileNotFoundError, match="no such MIDI folder"):
        load_midi_directory(tmp_path / "absent")
    write_songs(tmp_path, 2)
    with pytest.raises(ValueError, match=r"2 MIDI file\(s\) are too few to split"):
        load_midi_directory(tmp_path)
    write_songs(tmp_path, 5)
    (tmp_path / "broken.mid").write_bytes(b"MThd\x00\x00")  # a header cut short
    with pytest.raises(ValueError, match=r"broken\.mid: not a readable MIDI file"):
        load_midi_directory(tmp_path, valid_fraction=0.2, test_fraction=0.2)
    with pytest.raises(FileNotFoundError, match="no such MIDI file"):
        midi_to_piano_roll(tmp_path / "absent.mid")


def test_avf_data_midi_writes_a_data_set_that_trains(tmp_path: Path, capsys) -> None:
    from avf.cli import main
    from avf.data.midi import load_midi_directory

    write_songs(tmp_path / "midi", 10)
    out = tmp_path / "mine.json"
    args = ["data", "midi", str(tmp_path / "midi"), "--out", str(out), "--valid-fraction", "0.2",
            "--test-fraction", "0.2", "--seed", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "train     6 songs" in printed and f'dataset = "{out.as_posix()}"' in printed
    songs, expected = load_music(str(out)), load_midi_directory(tmp_path / "midi", 0.2, 0.2, 3)
    for split in SPLITS:
        assert song_pitches(songs[split]) == song_pitches(expected[split])
    before = out.read_bytes()
    assert main(args) == 2  # an existing file is not overwritten without --force
    assert "exists; pass --force" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*args, "--seed", "4", "--force"]) == 0 and out.read_bytes() != before
    assert main(["data", "midi", str(tmp_path / "midi"), "--out", str(tmp_path / "x.txt")]) == 2
    assert "--out must name a .json file" in capsys.readouterr().err

    config = tmp_path / "mine.toml"
    config.write_text(f"""
[model]
name = "srnn"
[model.options]
latent_dim = 2
rnn_dim = 4
hidden = 4
[inference]
name = "direct"
[data]
source = "music"
dataset = "{out.as_posix()}"
crop = 3
[training]
epochs = 1
progress = false
""")
    assert main(["train", str(config), "--run-dir", str(tmp_path / "run")]) == 0
    assert "6 training sequences" in capsys.readouterr().out


def test_save_json_round_trip(tmp_path: Path) -> None:
    data = load_json_songs(tmp_path)
    path = save_json(data, tmp_path / "out" / "songs.json")
    back = load_file(path)
    for split in SPLITS:
        assert len(back[split]) == len(data[split])
        for a, b in zip(back[split], data[split], strict=True):
            assert torch.equal(a, b)
    assert roll_to_notes(data["train"][0]) == [[60, 64, 67], [62], []]


def test_save_json_refuses_bad_rolls_and_keeps_the_old_file(tmp_path: Path) -> None:
    data = load_json_songs(tmp_path)
    path = save_json(data, tmp_path / "songs.json")
    before = path.read_bytes()
    bad = {**data, "test": [torch.full((3, KEYS), 0.5)]}
    with pytest.raises(ValueError, match="test sequence 0: the piano roll holds values other"):
        save_json(bad, path)
    with pytest.raises(ValueError, match=r"expected a T×88 piano roll, got shape \(3, 12\)"):
        save_json({**data, "valid": [torch.zeros(3, 12)]}, path)
    with pytest.raises(ValueError, match="no 'test' split"):
        save_json({"train": data["train"], "valid": data["valid"]}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def load_json_songs(tmp_path: Path) -> dict[str, list[torch.Tensor]]:
    source = tmp_path / "source.json"
    source.write_text(json.dumps(SONGS))
    return load_file(source)


# -- the real data sets -----------------------------------------------------------------------
# from /work/shared/data/README.md, section 1.4: (sequences, min, max length, total steps,
# lowest and highest note, mean notes per step) per split
STATS = {
    "jsb": {"train": (229, 25, 129, 13_807, 43, 96, 3.90),
            "valid": (76, 32, 144, 4_602, 48, 96, 3.87),
            "test": (77, 32, 160, 4_725, 45, 96, 3.89)},
    "nottingham": {"train": (694, 40, 1788, 176_561, 31, 93, 3.96),
                   "valid": (173, 96, 1473, 45_513, 34, 91, 3.96),
                   "test": (170, 63, 1793, 44_463, 36, 89, 3.99)},
    "musedata": {"train": (524, 9, 3457, 245_202, 21, 96, 3.49),
                 "valid": (135, 63, 3723, 82_755, 21, 100, 3.48),
                 "test": (124, 45, 4273, 64_339, 21, 105, 3.29)},
    "piano": {"train": (87, 111, 3857, 75_911, 21, 108, 3.04),
              "valid": (12, 209, 1637, 8_540, 24, 104, 3.23),
              "test": (25, 65, 2645, 19_036, 21, 108, 2.95)},
}


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    return music_data_dir()


@pytest.mark.parametrize("name", list(STATS))
def test_real_split_statistics(shared_dir: Path, name: str) -> None:
    if not any((shared_dir / "polyphonic" / f).is_file() for f in FILE_NAMES[name]):
        pytest.skip(f"{name} is not in {shared_dir / 'polyphonic'} (a partial data folder)")
    data = load_music(name, shared_dir)
    for split, (count, shortest, longest, steps, low, high, density) in STATS[name].items():
        songs = data[split]
        lengths = [s.shape[0] for s in songs]
        assert (len(songs), min(lengths), max(lengths), sum(lengths)) == (
            count, shortest, longest, steps), f"{name} {split}"
        rolls = torch.cat(songs)
        keys = rolls.any(0).nonzero().flatten() + 21
        assert (int(keys.min()), int(keys.max())) == (low, high), f"{name} {split}"
        assert float(rolls.sum(1).mean()) == pytest.approx(density, abs=0.005)


def test_jsb_formats_agree(shared_dir: Path) -> None:
    folder = shared_dir / "polyphonic"
    others = ("jsb-chorales-quarter.pkl", "jsb-chorales-quarter.json")
    if not all((folder / other).is_file() for other in others):
        pytest.skip(f"the JSB pickle and JSON are not both in {folder} (a partial data folder)")
    mat = load_file(folder / "JSB_Chorales.mat")
    for other in others:
        data = load_file(folder / other)
        for split in SPLITS:
            assert len(data[split]) == len(mat[split])
            assert all(torch.equal(a, b) for a, b in zip(data[split], mat[split], strict=True))
    first = [sorted((row.nonzero().flatten() + 21).tolist()) for row in mat["train"][0][:3]]
    assert first == [[60, 72, 79, 88], [72, 79, 88], [67, 70, 76, 84]]
    splits = music_splits(mat, crop=25, seed=0)
    assert splits["train"].x.shape == (229, 25, KEYS) and splits["valid"].x.shape == (76, 25, KEYS)
    assert splits["test"].steps == 4_725 and splits["test"].x.shape == (77, 160, KEYS)

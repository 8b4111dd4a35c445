"""A folder of your own MIDI files as a music data set, like the four benchmark sets.

Each file becomes one piano roll (:func:`avf.data.music.midi_to_piano_roll`), and the files are
split the way :func:`avf.data.load_wav_directory` splits audio: by ``train/``, ``valid/`` and
``test/`` subfolders when there are any, else at random by file with a seed. Writing the result
with :func:`avf.data.music.save_json` (``avf data midi``) fixes the split in one file that
``[data] dataset = "path/to/songs.json"`` then trains on, so that runs stay comparable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tqdm.auto import tqdm

from avf.data.file_splits import SPLITS, split_files
from avf.data.music import MusicData, midi_to_piano_roll

MIDI_SUFFIXES = (".mid", ".midi")


def load_midi_directory(root: str | Path, valid_fraction: float = 0.1,
                        test_fraction: float = 0.1, seed: int = 0, *,
                        steps_per_quarter: int = 1, drums: bool = False,
                        out_of_range: Literal["error", "drop"] = "error",
                        progress: bool = False) -> MusicData:
    """Piano rolls of every ``.mid``/``.midi`` file under ``root``, split into train/valid/test.

    The fractions apply to files (songs), not steps; each split gets at least one song when
    its fraction is positive. ``steps_per_quarter``, ``drums`` and ``out_of_range`` go to
    :func:`~avf.data.music.midi_to_piano_roll`; a file it cannot read is an error that names
    the file, since leaving it out silently would change the data set. Needs ``mido``.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no such MIDI folder: {root}")
    files = split_files(root, MIDI_SUFFIXES, valid_fraction, test_fraction, seed, "MIDI")
    total = sum(len(paths) for paths in files.values())
    out: MusicData = {s: [] for s in SPLITS}
    with tqdm(total=total, desc="reading MIDI", unit="file", disable=not progress) as bar:
        for split in SPLITS:
            for path in files[split]:
                out[split].append(midi_to_piano_roll(
                    path, steps_per_quarter, drums=drums, out_of_range=out_of_range))
                bar.update()
    return out

"""Do two music data sets share material? Windows of one set's test songs found in another's
training songs.

A model trained on one set and scored on another (``benchmarks/cross_dataset.py``) could owe a
good score to the same pieces being in both. This counts the ``--steps``-step windows of each
named set's test songs (with at least ``--min-notes`` notes per step on average, so that silence
and single held notes do not count) that appear exactly in the training songs of
``--train``; ``--transposed`` first shifts every window down to its lowest key, so a piece
transposed between the sets still matches. The training set against its own test set is the
control: pieces of one collection share more.

    python benchmarks/music_overlap.py jsb nottingham piano musedata --train musedata \
        --data-dir ../shared/data [--transposed --steps 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

from avf.data.music import load_music


def windows(songs: list[Tensor], steps: int, min_notes: float, transposed: bool) -> set[bytes]:
    """Every ``steps``-step window of ``songs`` with enough notes, as bytes (for set matching)."""
    found = set()
    for song in songs:
        roll = song.bool()
        for t in range(roll.shape[0] - steps + 1):
            window = roll[t:t + steps]
            if window.sum() < min_notes * steps:
                continue
            if transposed:
                window = torch.roll(window, -int(window.any(0).nonzero()[0]), dims=1)
            found.add(window.numpy().tobytes())
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="+", help="data sets whose test songs are looked for")
    parser.add_argument("--train", required=True, help="the data set whose training songs "
                        "are searched")
    parser.add_argument("--data-dir", help="data directory (default: $AVF_DATA_DIR, ...)")
    parser.add_argument("--steps", type=int, default=16, help="window length (default 16)")
    parser.add_argument("--min-notes", type=float, default=3.0,
                        help="fewest notes per step, on average, of a window counted (default 3)")
    parser.add_argument("--transposed", action="store_true",
                        help="match windows whatever their transposition")
    parser.add_argument("--out", type=Path, help="write the counts as JSON")
    args = parser.parse_args(argv)
    if args.steps < 1:
        raise SystemExit(f"music_overlap.py: --steps must be at least 1, got {args.steps}")
    options = (args.steps, args.min_notes, args.transposed)
    searched = windows(load_music(args.train, args.data_dir)["train"], *options)
    rows = []
    print(f"{args.steps}-step windows ({'any' if args.transposed else 'same'} transposition, "
          f">= {args.min_notes:g} notes per step) of each test set in {args.train}'s training "
          f"songs ({len(searched)} distinct windows there):")
    for name in args.tests:
        songs = load_music(name, args.data_dir)["test"]
        per_song = [windows([song], *options) for song in songs]
        shared = [len(w & searched) for w in per_song]
        distinct = set().union(*per_song)
        row = {"test_set": name, "windows": len(distinct), "found": len(distinct & searched),
               "songs": len(songs), "songs_with_any": sum(n > 0 for n in shared)}
        rows.append(row)
        print(f"  {name}: {row['found']} of {row['windows']} windows, in "
              f"{row['songs_with_any']} of {row['songs']} test songs")
    if args.out is not None:
        payload = {"train": args.train, "steps": args.steps, "min_notes": args.min_notes,
                   "transposed": args.transposed, "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

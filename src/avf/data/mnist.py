"""MNIST digits from IDX files, as Stochastic Moving MNIST needs them.

Copies of MNIST circulate gzipped and plain under both names, so the reader looks at a file's
first bytes, not its name, and checks the IDX header against the file's length: a truncated
download or an HTML page saved under the right name fails with a message, not a wrong array.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from avf.data.datadir import data_dir_origin, resolve_data_dir

MNIST_FOLDER = "mnist"
IMAGES_MAGIC, LABELS_MAGIC = 0x803, 0x801  # 0x08 = unsigned bytes, then the number of dims
# per split, the names tried in order: the standard gzipped file, gunzipped, the dotted variant
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
}
_MNIST_HINT = ("MNIST goes under <data-dir>/mnist/ as train-images-idx3-ubyte.gz and "
               "t10k-images-idx3-ubyte.gz (gzipped or not; the labels are optional)")


def load_mnist_images(path: str | Path) -> np.ndarray:
    """Images [N, rows, cols] uint8 (28×28 for MNIST) from an IDX file, gzipped or plain.

    Whether the file is gzipped is read from its first bytes, not its name, since copies of
    MNIST circulate both ways under both names.
    """
    return _read_idx(path, IMAGES_MAGIC, "images")


def load_mnist_labels(path: str | Path) -> np.ndarray:
    """Labels [N] uint8 from an IDX file, gzipped or plain (magic number 0x801)."""
    return _read_idx(path, LABELS_MAGIC, "labels")


def mnist_images(split: str = "train", mnist_dir: str | Path | None = None) -> np.ndarray:
    """The MNIST ``train`` (60,000) or ``test`` (t10k, 10,000) digits as [N, 28, 28] uint8.

    ``mnist_dir`` is the folder with the IDX files, or a data directory that has a ``mnist/``
    folder; ``None`` means ``<data-dir>/mnist/`` (see :func:`avf.data.datadir.resolve_data_dir`).
    """
    if split not in MNIST_FILES:
        raise ValueError(f"MNIST split must be 'train' or 'test', got {split!r}")
    if mnist_dir is None:
        root = resolve_data_dir(None)
        folders = [root / MNIST_FOLDER]
        where = f"{folders[0]} (data directory from {data_dir_origin(None)})"
    else:
        root = Path(mnist_dir).expanduser()
        folders = [root, root / MNIST_FOLDER]
        where = f"{root} or {root / MNIST_FOLDER}"
    for folder in folders:
        for name in MNIST_FILES[split]:
            if (folder / name).is_file():
                return load_mnist_images(folder / name)
    names = ", ".join(MNIST_FILES[split])
    raise FileNotFoundError(f"no MNIST {split} images in {where}: looked for {names}. "
                            f"{_MNIST_HINT}")


def _read_idx(path: str | Path, magic: int, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such MNIST {what} file: {path}. {_MNIST_HINT}")
    raw = _read_maybe_gzip(path)
    found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
    if found != magic:
        shown = "none (the file is shorter than 4 bytes)" if found is None else f"0x{found:08x}"
        raise ValueError(f"{path}: IDX magic number {shown}, expected 0x{magic:08x} for "
                         f"{what} (is this the right file, or an HTML page or LFS pointer?)")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, shorter than the "
                         f"{header}-byte header of IDX {what})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims)
    if len(raw) < expected:
        raise ValueError(f"{path}: truncated IDX file: the header says {dims} ({expected} bytes "
                         f"in all) but the file has {len(raw)}")
    if len(raw) > expected:
        raise ValueError(f"{path}: {len(raw) - expected} bytes more than the header's {dims}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims).copy()


def _read_maybe_gzip(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path}: truncated or corrupt gzip file ({err})") from err

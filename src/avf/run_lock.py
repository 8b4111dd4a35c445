"""One training process at a time per run directory.

Two processes training the same run directory (a second ``avf train`` started by mistake, a
sweep run again while its first invocation is still going) would interleave their epochs in
``metrics.jsonl`` and overwrite each other's checkpoints: every file stays whole (see
:mod:`avf.atomic`) but the run no longer describes one training. Training therefore holds an
advisory lock on ``RUN_DIR/.avf-lock`` (``flock``; released by the system however the process
ends, so a killed run leaves no stale lock) and a second trainer is refused with the first's
process id. ``avf runs`` and ``avf sweep`` use the same lock to tell a run being trained now
from one that would resume. Where ``fcntl`` does not exist (Windows) nothing is locked.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".avf-lock"

# held locks of this process, by resolved run directory: (file descriptor, nesting depth), so
# that the CLI and the Trainer it calls can both hold the lock of one run
_held: dict[Path, tuple[int, int]] = {}


class RunInUseError(OSError):
    """Another process is training this run directory now."""


@contextlib.contextmanager
def exclusive_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (created with the directory if need be); raise
    :class:`RunInUseError` naming the other process if it holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    if fcntl is None:
        yield
        return
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise RunInUseError(
                f"{run_dir} is being trained by another process ({_who(pid)}); wait for it to "
                "end or stop it before training this run directory again") from None
        except OSError as err:  # a file system without locks (some network mounts)
            os.close(fd)
            warnings.warn(f"cannot lock {run_dir} ({err}); training it without the guard "
                          "against a second trainer", stacklevel=3)
            yield
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held[key] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def training_process(run_dir: str | Path) -> int | None:
    """The process id training ``run_dir`` now (0 where it wrote none), or ``None`` if no
    process holds its lock. This process's own lock counts too."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    if path.parent.resolve() in _held:
        return os.getpid()
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        except OSError:  # no locks on this file system: nothing can be known
            return None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _who(pid: int | None) -> str:
    return "process id unknown" if not pid else f"pid {pid}"

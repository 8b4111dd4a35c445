"""One trainer per run directory: a second one is refused with the first's process id, and
``avf runs`` tells a run being trained from one that would resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from avf.cli import main
from avf.run_lock import LOCK_NAME, RunInUseError, exclusive_run_dir, training_process
from test_cli import TINY

pytest.importorskip("fcntl", reason="run directories are locked with flock, not on Windows")

HOLD = """
import sys, time
from avf.run_lock import exclusive_run_dir
with exclusive_run_dir(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def other_process(tmp_path: Path):
    """Another process holding the lock of tmp_path/run until the test ends."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    yield run_dir, process.pid
    process.kill()
    process.wait()


def test_a_second_trainer_is_refused_with_the_first_ones_pid(other_process, capsys) -> None:
    run_dir, pid = other_process
    assert training_process(run_dir) == pid
    with pytest.raises(RunInUseError, match=f"pid {pid}"), exclusive_run_dir(run_dir):
        pass
    tiny = run_dir.parent / "tiny.toml"
    tiny.write_text(TINY)
    assert main(["train", str(tiny), "--run-dir", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"is being trained by another process (pid {pid})" in err
    assert not (run_dir / "config.toml").exists()  # nothing of the running run rewritten
    assert main(["train", str(tiny), "--run-dir", str(run_dir), "--dry-run"]) == 0
    assert f"note: {run_dir} is being trained now (pid {pid})" in capsys.readouterr().err


def test_the_lock_goes_with_the_process_and_nests_within_one(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert training_process(run_dir) is None
    with exclusive_run_dir(run_dir), exclusive_run_dir(run_dir):  # the CLI, then the Trainer
        assert training_process(run_dir) == os.getpid()
    assert training_process(run_dir) is None and (run_dir / LOCK_NAME).is_file()
    killed = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)],
                              stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "held"
    killed.kill()  # no chance to clean up: the system drops the lock
    killed.wait()
    assert training_process(run_dir) is None
    with exclusive_run_dir(run_dir):
        pass


def test_runs_and_sweep_leave_a_run_being_trained_alone(other_process, capsys) -> None:
    run_dir, pid = other_process
    tiny = run_dir.parent / "tiny.toml"
    tiny.write_text(TINY)
    (run_dir / "config.toml").write_text(TINY)
    assert main(["runs", str(run_dir), "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["status"], row["state"]) == ("training", f"training now (pid {pid})")
    assert main(["sweep", str(tiny), "--runs-dir", str(run_dir.parent), "--name", "run"]) == 0
    assert "by another process; left alone" in capsys.readouterr().err
    assert not (run_dir / "metrics.jsonl").exists()


def test_sweep_leaves_a_run_locked_before_its_config_is_written_alone(other_process,
                                                                      capsys) -> None:
    """A trainer takes the lock before it writes config.toml; in between, the sweep must see a
    run being trained, not one that nobody has started (which it would try to train)."""
    run_dir, pid = other_process
    assert not (run_dir / "config.toml").exists()
    tiny = run_dir.parent / "tiny.toml"
    tiny.write_text(TINY)
    sweep = ["sweep", str(tiny), "--runs-dir", str(run_dir.parent), "--name", "run"]
    assert main([*sweep, "--dry-run"]) == 0
    assert f"training now (pid {pid}): left alone" in capsys.readouterr().out
    assert main(sweep) == 0
    assert "by another process; left alone" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK_NAME]


def test_a_file_system_without_locks_trains_with_a_warning(tmp_path: Path, monkeypatch) -> None:
    import fcntl

    def no_locks(_fd, _operation) -> None:
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="without the guard"), exclusive_run_dir(tmp_path):
        assert training_process(tmp_path) is None

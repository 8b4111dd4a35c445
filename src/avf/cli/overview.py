"""``avf runs``: where each run directory stands, in one table.

Someone with a dozen runs spread over sessions needs to know which have finished and why, which
`avf train` would resume, which have been scored, and whether a score is still that of the
current ``best.pt``. All of it is in the run directories already (``config.toml``,
``metrics.jsonl``, ``eval_test.json``); this reads it and decides nothing new: whether a run
has finished is :func:`avf.stopping.stop_reason_of` on its history, as in training, and whether
a process is training it now is its lock (:mod:`avf.run_lock`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from avf.checkpoints import METRICS
from avf.plots import read_metrics
from avf.run_lock import training_process
from avf.runs import CONFIG_NAME, describe_inference, run_config
from avf.stopping import cut_epochs, stop_reason_of

_STOPS = {"plateau_max_cuts": "plateau after the last cut", "patience": "patience",
          "plateau_without_gain": "plateau after a cut without gain"}


def list_runs(args: argparse.Namespace) -> int:
    """Print one row per run directory found under the paths given (default ``runs/``)."""
    paths = [Path(p) for p in args.paths] or [Path("runs")]
    if not args.paths and not paths[0].is_dir():
        raise FileNotFoundError("no runs/ folder here: give run directories, or folders of them")
    found = [run for path in paths for run in run_directories(path)]
    if not found:
        raise FileNotFoundError(f"no run directories (with a {CONFIG_NAME}) in "
                                f"{', '.join(map(str, paths))}")
    rows = [summary_or_error(run) for run in found]
    if args.plot is not None:
        from avf import plots

        names = [run.name for run in found]  # the full path where two runs share a name
        curves = {(run.name if names.count(run.name) == 1 else str(run)):
                  read_metrics(run / METRICS) for run, row in zip(found, rows, strict=True)
                  if (run / METRICS).is_file() and row["status"] != "unreadable"}
        written = plots.plot_run_comparison(curves, args.plot)
        print(f"wrote {written}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(table(rows) + "\n")
    return 0


def run_directories(path: Path) -> list[Path]:
    """``path`` itself if it is a run directory, else the run directories right inside it."""
    if (path / CONFIG_NAME).is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    return sorted(p for p in path.iterdir() if (p / CONFIG_NAME).is_file())


# ``status`` is for programs (``avf sweep``, a user's script): one of "not started",
# "training", "resumable", "done", "unreadable". ``state`` says the same to a person, with the
# reason a run stopped or the pid that trains it.
FIELDS = ("run", "model", "inference", "epochs", "max_epochs", "status", "state", "best_epoch",
          "best_valid", "learning_rate", "lr_cuts", "divergences", "train_minutes",
          "test_free_energy",
          "test_macro_free_energy", "test_epoch", "test_stale")


def summary_or_error(run_dir: Path) -> dict[str, Any]:
    """The run's row, or a row that says why it cannot be read: one broken directory (a
    half-copied config, a hand-edited log) must not hide the others."""
    try:
        return run_summary(run_dir)
    except (OSError, ValueError, KeyError, TypeError) as err:
        text = " ".join(str(err).split()) or type(err).__name__
        return {**dict.fromkeys(FIELDS), "run": str(run_dir), "model": "?", "inference": "?",
                "status": "unreadable", "state": f"unreadable: {text}"}


def run_summary(run_dir: Path) -> dict[str, Any]:
    """One run's state: epochs, why it stopped (or that it resumes), best validation, time,
    and its test score where ``avf evaluate`` wrote one (``FIELDS``, ``None`` where unknown)."""
    cfg = run_config(run_dir)
    history = read_metrics(run_dir / METRICS) if (run_dir / METRICS).is_file() else []
    last = history[-1] if history else {}
    row: dict[str, Any] = {
        **dict.fromkeys(FIELDS), "run": str(run_dir), "model": cfg.model.name,
        "inference": describe_inference(cfg),
        "epochs": last.get("epoch", 0), "max_epochs": cfg.training.epochs,
        **_status_and_state(run_dir, history, cfg.training),
        # θ's rate, or φ's where θ is fixed (train_model = false)
        "learning_rate": last.get("model_lr") or last.get("inference_lr"),
        # the epochs that cut the learning rates; those of them that did so after a
        # divergence (training.divergence_cuts) rather than at a plateau
        "lr_cuts": [r["epoch"] for r in history if r.get("lr_cut")],
        "divergences": cut_epochs(history)[1],
        "train_minutes": round(last.get("wall_time", 0.0) / 60, 1),
    }
    validated = [r for r in history if "valid_free_energy" in r]
    if validated:
        best = min(validated, key=lambda r: r["valid_free_energy"])
        row["best_epoch"], row["best_valid"] = best["epoch"], best["valid_free_energy"]
    report_path = run_dir / "eval_test.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text(encoding="utf-8"))
        row["test_free_energy"] = report.get("free_energy")
        row["test_macro_free_energy"] = report.get("macro_free_energy")
        row["test_epoch"] = report.get("epoch")
        # a score of best.pt from before a later, better epoch no longer describes the run
        row["test_stale"] = (report.get("checkpoint") == "best.pt"
                             and row["best_epoch"] is not None
                             and report.get("epoch") != row["best_epoch"])
    return row


def _status_and_state(run_dir: Path, history: list[dict[str, Any]],
                      config: Any) -> dict[str, str]:
    pid = training_process(run_dir)
    if pid is not None:
        return training_row(pid)
    if not history:
        return {"status": "not started", "state": "not started"}
    reason = stop_reason_of(history, config)
    if reason is not None:
        return {"status": "done", "state": f"done: {_STOPS.get(reason, reason)}"}
    if history[-1]["epoch"] >= config.epochs:
        return {"status": "done", "state": "done: all epochs"}
    return {"status": "resumable", "state": "resumable"}


def training_row(pid: int) -> dict[str, str]:
    """``status`` and ``state`` of a run that a process is training now (its lock is held)."""
    return {"status": "training", "state": f"training now (pid {pid or 'unknown'})"}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned plain-text table."""
    head = ["run", "model", "inference", "epochs", "state", "best valid (epoch)", "lr",
            "lr cuts after", "train", "test F micro / macro"]
    body = []
    for r in rows:
        best = "–" if r["best_valid"] is None else f"{r['best_valid']:.4f} ({r['best_epoch']})"
        test = "–"
        if r["test_free_energy"] is not None:
            test = f"{r['test_free_energy']:.4f} / {r['test_macro_free_energy']:.4f}"
            if r["test_stale"]:
                test += f" (epoch {r['test_epoch']}: stale, evaluate again)"
        lr = "–" if r["learning_rate"] is None else f"{r['learning_rate']:.1e}"
        epochs = "–" if r["epochs"] is None else f"{r['epochs']}/{r['max_epochs']}"
        minutes = "–" if r["train_minutes"] is None else f"{r['train_minutes']:.1f} min"
        cuts = ", ".join(f"{e} (diverged)" if e in (r["divergences"] or ()) else str(e)
                         for e in r["lr_cuts"] or ()) or "–"
        body.append([Path(r["run"]).name, r["model"], r["inference"], epochs, r["state"], best,
                     lr, cuts, minutes, test])
    return aligned(head, body)


def aligned(head: list[str], body: list[list[str]]) -> str:
    """A header and rows of cells as plain text, each column as wide as its widest cell."""
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in [head, *body])

"""Train several experiment configs side by side in a fixed wall-clock budget, at equal epochs.

Made for a lent machine with a time limit (one GPU and many cores for a few minutes): every
config trains at once, so each run gets the same machine share. The budget is split by
measurement, not by guess:

1. *probe*: every run trains ``--probe-epochs`` epochs; their epoch times are read back from
   ``metrics.jsonl``;
2. *train*: the runs resume (``avf train`` continues a run directory) up to an epoch count
   that is the same for every config of one data set (a fair baseline-vs-AVF comparison),
   chosen so that the slowest config of that data set fits in the remaining time;
   ``--time-limit`` still stops any run that was misjudged, with a checkpoint;
3. *evaluate*: each run's best checkpoint is scored on the test split (``avf evaluate``).

A run that fails on the requested device in the probe is retried on ``--fallback-device``.
The summary (epochs, wall time, test free energy per run) is printed as a table and written
as JSON, so BENCHMARKS.md can cite it.

    python benchmarks/parallel_runs.py experiments/music/*_srnn_baseline.toml \\
        experiments/music/*_avf_k1_x.toml --device cuda --budget-min 9 --out-dir runs/dev
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from runs_table import run_row  # this script's neighbour: one reading of a run directory

from avf.config import load_config
from avf.plots import read_metrics

AVF = [sys.executable, "-m", "avf.cli"]


def config_facts(path: Path) -> tuple[str, str]:
    """(run name, data set) of a config file: the name the run directory gets, and its group."""
    cfg = load_config(path)
    return cfg.name, cfg.data.dataset or cfg.data.source


def launch(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ avf {' '.join(args)}\n")
        f.flush()
        return subprocess.Popen([*AVF, *args], stdout=f, stderr=subprocess.STDOUT)


def wait_all(procs: dict[str, subprocess.Popen], until: float) -> dict[str, int | None]:
    """Exit status per run; runs still going at ``until`` are killed (their status is None)."""
    codes: dict[str, int | None] = {}
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout=max(1.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            codes[name] = None
    return codes


def epochs_done(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    return read_metrics(path) if path.is_file() else []


def tail(path: Path, lines: int = 5) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="+", type=Path)
    p.add_argument("--device", default="cpu")
    p.add_argument("--fallback-device", default="cpu")
    p.add_argument("--data-dir", help="passed on to avf (else $AVF_DATA_DIR)")
    p.add_argument("--budget-min", type=float, required=True,
                   help="wall-clock minutes for everything: probe, training and evaluation")
    p.add_argument("--eval-min", type=float, default=1.5,
                   help="minutes kept back at the end for scoring the test split")
    p.add_argument("--probe-epochs", type=int, default=2)
    p.add_argument("--max-epochs", type=int, default=100000)
    p.add_argument("--eval-batch", type=int, default=128)
    p.add_argument("--out-dir", type=Path, default=Path("runs/parallel"))
    p.add_argument("--summary", type=Path, help="JSON summary (default OUT_DIR/summary.json)")
    args = p.parse_args(argv)

    start = time.monotonic()
    end = start + 60.0 * args.budget_min
    train_end = end - 60.0 * args.eval_min
    args.out_dir.mkdir(parents=True, exist_ok=True)
    data_args = ["--data-dir", args.data_dir] if args.data_dir else []
    quiet = ["--set", "training.progress=false"]
    runs = {}
    for path in args.configs:
        name, group = config_facts(path)
        runs[name] = {"config": path, "group": group, "dir": args.out_dir / name,
                      "log": args.out_dir / f"{name}.log", "device": args.device}

    def train(name: str, epochs: int, limit_s: float | None = None) -> subprocess.Popen:
        run = runs[name]
        extra = [] if limit_s is None else ["--time-limit", f"{limit_s / 60.0:.3f}"]
        return launch(["train", str(run["config"]), "--run-dir", str(run["dir"]), "--epochs",
                       str(epochs), "--device", run["device"], *quiet, *data_args, *extra],
                      run["log"])

    # 1. probe
    probe_until = start + 0.4 * (train_end - start)
    codes = wait_all({n: train(n, args.probe_epochs) for n in runs}, probe_until)
    failed = [n for n, c in codes.items() if c != 0 and not epochs_done(runs[n]["dir"])]
    for name in failed:
        print(f"[probe] {name} failed on {args.device}:\n{tail(runs[name]['log'])}", flush=True)
        runs[name]["device"] = args.fallback_device
    if failed:
        wait_all({n: train(n, args.probe_epochs) for n in failed}, probe_until)
    times = {}
    for name, run in runs.items():
        records = epochs_done(run["dir"])
        if records:
            times[name] = max(r["epoch_time"] for r in records)
            print(f"[probe] {name}: {len(records)} epochs on {run['device']}, "
                  f"{times[name]:.2f} s per epoch", flush=True)
        else:
            print(f"[probe] {name}: no epoch finished; left out\n{tail(run['log'])}", flush=True)

    # 2. train, equal epochs within each data set
    remaining = train_end - time.monotonic()
    groups: dict[str, list[str]] = {}
    for name in times:
        groups.setdefault(runs[name]["group"], []).append(name)
    procs = {}
    for group, names in groups.items():
        slowest = max(times[n] for n in names)
        done = min(len(epochs_done(runs[n]["dir"])) for n in names)
        epochs = min(args.max_epochs, done + max(0, math.floor(0.92 * remaining / slowest)))
        print(f"[train] {group}: {epochs} epochs for {', '.join(names)} "
              f"(slowest {slowest:.2f} s/epoch, {remaining:.0f} s left)", flush=True)
        for name in names:
            runs[name]["epochs_planned"] = epochs
            procs[name] = train(name, epochs, max(10.0, remaining - 15.0))
    wait_all(procs, train_end + 30.0)

    # 3. evaluate
    evals = {}
    for name in times:
        run = runs[name]
        evals[name] = launch(["evaluate", str(run["dir"]), "--split", "test", "--batch-size",
                              str(args.eval_batch), "--device", run["device"], *data_args],
                             run["log"])
    wait_all(evals, end)

    rows = []
    for name, run in runs.items():
        trained = run_row(run["dir"]) if epochs_done(run["dir"]) else {
            "epochs": 0, "train_wall_s": 0.0, "scored_epoch": None, "test_free_energy": None,
            "test_macro_free_energy": None, "test_recon": None, "test_kl": None}
        rows.append({**trained, "run": name, "data": run["group"], "device": run["device"],
                     "epochs_planned": run.get("epochs_planned")})
    summary = {"command": " ".join(sys.argv), "machine": platform.platform(),
               "cpu_count": os.cpu_count(), "wall_s": round(time.monotonic() - start, 1),
               "runs": rows}
    out = args.summary or args.out_dir / "summary.json"
    out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print("| run | device | epochs | train wall (s) | scored epoch | test F (micro) | macro | KL |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        def fmt(v: Any) -> str:
            return f"{v:.4f}" if isinstance(v, float) else str(v)
        print(f"| {r['run']} | {r['device']} | {r['epochs']} | {r['train_wall_s']} | "
              f"{r['scored_epoch']} | {fmt(r['test_free_energy'])} | "
              f"{fmt(r['test_macro_free_energy'])} | {fmt(r['test_kl'])} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

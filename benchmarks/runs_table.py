"""Collect trained runs into one table: what BENCHMARKS.md reports for the experiment configs.

Reads each run directory's ``config.toml``, ``metrics.jsonl`` (epochs trained, training wall
time) and ``eval_test.json`` (written by ``avf evaluate``), prints a markdown table and writes
the rows as JSON, so every number in the table can be traced to the run that produced it.

    python benchmarks/runs_table.py runs/fsdd_* --out benchmarks/results/fsdd.json

``--seeds`` prints the per-seed table of BENCHMARKS §5.17–5.19 instead (seed, method, epochs,
the epochs after which the learning rates were cut, test scores and the best validation score),
in the order the runs are given.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

from avf.config import load_config
from avf.inference.iterative import DEFAULT_ENCODING
from avf.plots import read_metrics
from avf.runs import describe_inference
from avf.stopping import cut_epochs


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run's settings, budget and test scores (``None`` where it has not been scored)."""
    cfg = load_config(run_dir / "config.toml")
    records = read_metrics(run_dir / "metrics.jsonl")
    if not records:
        raise ValueError(f"{run_dir}: metrics.jsonl has no epochs yet")
    evaluation = run_dir / "eval_test.json"
    report = json.loads(evaluation.read_text()) if evaluation.is_file() else {}
    binned = report.get("discretized", {})
    # the iterative model's input encoding (its default when the config names none)
    encoding = (cfg.inference.options.get("encoding", DEFAULT_ENCODING)
                if cfg.inference.name == "iterative" else None)
    validated = [r for r in records if "valid_free_energy" in r]
    best_valid = min((r["valid_free_energy"] for r in validated), default=None)
    return {
        "run": run_dir.name,
        "seed": cfg.seed,
        "model": cfg.model.name,
        "inference": describe_inference(cfg),
        "encoding": encoding,
        "data": f"{cfg.data.source}:{cfg.data.dataset}",
        "dropout": cfg.model.options.get("dropout"),
        "transpose": cfg.data.transpose,
        "ema_decay": cfg.training.ema_decay or None,
        "scored_weights": report.get("weights"),
        "epochs": records[-1]["epoch"],
        "train_wall_s": round(records[-1]["wall_time"], 1),
        "cut_epochs": [r["epoch"] for r in records if r.get("lr_cut")],
        # those of the cuts made after a divergence (training.divergence_cuts), not a plateau
        "divergence_epochs": cut_epochs(records)[1],
        "best_valid_free_energy": best_valid,
        "scored_epoch": report.get("epoch"),
        "test_free_energy": report.get("free_energy"),
        "test_macro_free_energy": report.get("macro_free_energy"),
        "test_recon": report.get("recon"),
        "test_kl": report.get("kl"),
        "test_steps": report.get("steps"),
        "discretized_free_energy": binned.get("free_energy"),
        "discretized_macro_free_energy": binned.get("macro_free_energy"),
        "bin_width": binned.get("bin_width"),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| run | model | inference | epochs (best) | train wall | test F (density) | "
            "KL | test F (discretised) micro / macro |")
    lines = [head, "|" + " --- |" * 8]
    for r in rows:
        binned = ("–" if r["discretized_free_energy"] is None else
                  f"{r['discretized_free_energy']:.2f} / {r['discretized_macro_free_energy']:.2f}")
        lines.append(
            f"| {r['run']} | {r['model']} | {r['inference']} | {r['epochs']} "
            f"({r['scored_epoch']}) | {r['train_wall_s'] / 60:.1f} min | "
            f"{_num(r['test_free_energy'])} | {_num(r['test_kl'])} | {binned} |")
    return "\n".join(lines)


def seed_markdown(rows: list[dict[str, Any]]) -> str:
    """The per-seed table: one line per run, named by seed and method."""
    head = ("| seed | run | epochs (best) | cuts after epoch | train wall | test F micro | macro | "
            "recon | KL | validation (best) |")
    lines = [head, "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        method = ("baseline encoder" if r["inference"] == "baseline"
                  else r["inference"].replace("iterative", "AVF", 1))
        diverged = r.get("divergence_epochs") or []
        cuts = ", ".join(f"{e} (diverged)" if e in diverged else str(e)
                         for e in r["cut_epochs"]) or "none"
        valid = "–" if r["best_valid_free_energy"] is None else f"{r['best_valid_free_energy']:.3f}"
        lines.append(
            f"| {r['seed']} | {method} | {r['epochs']} ({r['scored_epoch']}) | {cuts} | "
            f"{r['train_wall_s'] / 60:.1f} min | {_num(r['test_free_energy'], 4)} | "
            f"{_num(r['test_macro_free_energy'], 4)} | {_num(r['test_recon'], 4)} | "
            f"{_num(r['test_kl'], 4)} | {valid} |")
    return "\n".join(lines)


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories")
    parser.add_argument("--out", type=Path, help="write the rows here as JSON")
    parser.add_argument("--seeds", action="store_true",
                        help="print the per-seed table (seed, method, cuts, validation) instead")
    args = parser.parse_args(argv)
    rows = [run_row(path) for path in args.runs if (path / "config.toml").is_file()]
    if not rows:
        raise SystemExit("no run directories (with a config.toml) among the paths given")
    print(seed_markdown(rows) if args.seeds else markdown(rows))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": platform.platform(), "processor": platform.processor(),
                   "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

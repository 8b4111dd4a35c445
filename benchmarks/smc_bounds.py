"""How far the filtering free energy is from −log p(x): particle-filter estimates on trained runs.

The free energy scores model and inference together. A particle filter that proposes from the
run's own inference estimates −log p(x) of the model alone (an upper bound in expectation,
tightening as particles are added), so comparing the two separates what a method gains in its
model from what it gains in inference. For each run and particle count this prints the free
energy (as ``avf evaluate`` scores it) and the SMC estimate, micro and macro, and writes JSON.

    python benchmarks/smc_bounds.py runs/jsb_srnn_baseline_tuned_seed2 \
        runs/jsb_srnn_avf_k1_x_tuned_ln_seed2 --data-dir ../shared/data --particles 10,100,1000 \
        --out benchmarks/results/smc_jsb.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

import avf
from avf.evaluation import evaluate, particle_score


def score_run(run_dir: Path, data_dir: str | None, particles: list[int], batch_size: int,
              split: str) -> dict[str, Any]:
    """The run's free energy and one SMC estimate per particle count, with wall times."""
    run = avf.load_run(run_dir)
    data = run.data(split, data_dir)
    torch.manual_seed(run.config.seed)  # the same sample as `avf evaluate`
    start = time.perf_counter()
    score = evaluate(run.model, run.inference, data.batches(batch_size))
    row: dict[str, Any] = {
        "run": run_dir.name, "inference": run.config.inference.name, "epoch": run.epoch,
        "weights": run.weights, "split": split, "steps": score.steps,
        "free_energy": score.free_energy, "macro_free_energy": score.macro_free_energy,
        "free_energy_wall_s": round(time.perf_counter() - start, 1), "smc": []}
    for n in particles:
        start = time.perf_counter()
        smc = particle_score(run.model, run.inference, data.batches(batch_size), n,
                             seed=run.config.seed)
        row["smc"].append({**smc.as_dict(), "wall_s": round(time.perf_counter() - start, 1)})
    return row


def table(rows: list[dict[str, Any]]) -> str:
    counts = [s["particles"] for s in rows[0]["smc"]]
    head = " | ".join(f"SMC {n}" for n in counts)
    lines = [f"| run | epoch | free energy (micro / macro) | {head} |",
             "| --- | ---: | ---: | " + " | ".join("---:" for _ in counts) + " |"]
    for r in rows:
        cells = " | ".join(f"{s['nll']:.4f} / {s['macro_nll']:.4f}" for s in r["smc"])
        lines.append(f"| {r['run']} | {r['epoch']} | {r['free_energy']:.4f} / "
                     f"{r['macro_free_energy']:.4f} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `avf train`")
    parser.add_argument("--data-dir", help="data directory for real data sets")
    parser.add_argument("--particles", default="10,100", help="comma-separated counts")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="sequences per particle filter (memory grows as this x particles)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    particles = [int(n) for n in args.particles.split(",")]
    if not particles or min(particles) < 1:
        raise SystemExit(f"--particles must list counts >= 1, got {args.particles!r}")
    torch.set_num_threads(args.threads)
    rows = []
    for run_dir in args.runs:
        rows.append(score_run(run_dir, args.data_dir, particles, args.batch_size, args.split))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    if args.out is not None:
        payload = {"machine": platform.node(), "processor": platform.processor(),
                   "torch": torch.__version__, "threads": args.threads,
                   "batch_size": args.batch_size, "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How much a test score moves with the posterior sample: the noise under a one-sample score.

``avf evaluate`` scores with one sample of z per step (the paper's protocol), drawn from the
run's seed; the number it prints is one draw of a random variable. This scores each run
``--repeats`` times with different sample seeds and prints the mean and standard deviation of
the micro and macro free energy, so that differences between runs can be read against it.
``--split valid`` does the same for the validation score that best.pt and the learning-rate
cuts are chosen by.

    python benchmarks/eval_noise.py runs/jsb_srnn_baseline_tuned_seed2 \
        runs/jsb_srnn_avf_k1_x_tuned_ln_seed2 --data-dir ../shared/data --batch-size 77 \
        --repeats 10 --out benchmarks/results/eval_noise_jsb.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

import avf
from avf.evaluation import evaluate


def noise(run_dir: Path, data_dir: str | None, batch_size: int, repeats: int,
          samples: int, split: str = "test") -> dict[str, Any]:
    """The run's free energy under ``repeats`` sample seeds (0, 1, …): every score, mean, sd."""
    run = avf.load_run(run_dir)
    data = run.data(split, data_dir)
    micro, macro = [], []
    start = time.perf_counter()
    for seed in range(repeats):
        torch.manual_seed(seed)
        score = evaluate(run.model, run.inference, data.batches(batch_size), n_samples=samples)
        micro.append(score.free_energy)
        macro.append(score.macro_free_energy)
    return {"run": run_dir.name, "epoch": run.epoch, "split": split, "samples": samples,
            "steps": score.steps,
            "micro": micro, "macro": macro,
            "micro_mean": statistics.fmean(micro), "micro_sd": statistics.stdev(micro),
            "macro_mean": statistics.fmean(macro), "macro_sd": statistics.stdev(macro),
            "wall_s": round(time.perf_counter() - start, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of `avf train`")
    parser.add_argument("--data-dir", help="data directory for real data sets")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10, help="sample seeds per run (>= 2)")
    parser.add_argument("--samples", type=int, default=1, help="samples per step, as in "
                        "`avf evaluate --samples`")
    parser.add_argument("--split", choices=("test", "valid"), default="test",
                        help="the split to score, as `avf evaluate` scores it")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        raise SystemExit(f"--repeats must be at least 2 for a standard deviation, got "
                         f"{args.repeats}")
    torch.set_num_threads(args.threads)
    print("| run | epoch | samples | micro mean ± sd | macro mean ± sd | repeats |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rows = []
    for run_dir in args.runs:
        r = noise(run_dir, args.data_dir, args.batch_size, args.repeats, args.samples,
                  args.split)
        rows.append(r)
        print(f"| {r['run']} | {r['epoch']} | {r['samples']} | {r['micro_mean']:.4f} ± "
              f"{r['micro_sd']:.4f} | {r['macro_mean']:.4f} ± {r['macro_sd']:.4f} | "
              f"{args.repeats} |", flush=True)
    if args.out is not None:
        payload = {"machine": platform.node(), "processor": platform.processor(),
                   "torch": torch.__version__, "batch_size": args.batch_size, "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

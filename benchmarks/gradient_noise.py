"""How noisy AVF's gradient input is, and what more samples or antithetic pairs buy.

Model-agnostic AVF reads ∇_λ F_t, estimated with reparameterised samples of q; on the music
sets averaging it over 8 samples instead of 1 was worth 0.1–0.37 nats (BENCHMARKS.md 5.23,
5.25), for 8 decoder passes. Could a cheaper estimator do as well? For each run given this
script collects the step problems of a batch of validation windows (filtered with the run's
own ``best.pt``), takes the gradient the network sees at K=1 (at λ_0, the prior's parameters),
and compares estimators, each through AVF's own ``StepProblem.value_and_gradient``, against a
reference of many samples:

* ``iid S``: the mean over S independent samples (what ``grad_samples = S`` does);
* ``antithetic S``: S/2 pairs (ε, −ε), which cancel the gradient's odd terms in ε
  (``antithetic = true``).

The error is the squared distance to the reference summed over the latent dimensions and
averaged over batch and steps, reported relative to the reference's own squared norm, for the
mean and log-variance halves of λ separately (a diagonal Gaussian posterior only). The KL is in
closed form, the same in every estimator, so it cancels from the error but is part of the norm
(at λ_0 = the prior's parameters its gradient is zero). The reference's own noise adds
(iid 1's error) / ``--reference-samples`` to every row.

    python benchmarks/gradient_noise.py \
        runs/jsb_srnn_avf_k1_gradonly_tuned_ln_vseed_drop0.5_gs8_seed0 \
        --data-dir ../shared/data --json benchmarks/results/gradient_noise.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from avf.filtering import filter_sequences
from avf.inference.base import StepProblem
from avf.posteriors import DiagonalGaussian
from avf.runs import restore, run_config, split_data


def step_problems(run_dir: Path, data_dir: str | None, sequences: int) -> list[StepProblem]:
    """The step problems AVF meets while filtering a batch of validation windows."""
    cfg = run_config(run_dir)
    model, inference, _, _ = restore(cfg, run_dir, "best")
    if not isinstance(inference.family, DiagonalGaussian):
        raise ValueError(f"{run_dir}: the posterior family is not a diagonal Gaussian")
    problems: list[StepProblem] = []
    inference.register_forward_pre_hook(lambda _module, args: problems.append(args[0]))
    x, mask = next(iter(split_data(cfg, "valid", data_dir).batches(sequences)))
    with torch.no_grad():
        filter_sequences(model, inference, x, mask)
    return problems


def gradient_noise(run_dir: Path, data_dir: str | None, sequences: int, every: int,
                   reference_samples: int, repeats: int,
                   estimators: list[tuple[str, int]]) -> dict:
    """Relative squared error of each estimator, per half of λ, over the run's step problems."""
    torch.manual_seed(0)
    start = time.perf_counter()
    problems = step_problems(run_dir, data_dir, sequences)[::every]
    errors = {e: torch.zeros(2) for e in estimators}
    norm = torch.zeros(2)
    for problem in problems:
        params = problem.prior_params()
        _, reference = problem.value_and_gradient(params, reference_samples)
        norm += torch.stack([h.pow(2).sum(-1).mean() for h in reference.chunk(2, dim=-1)])
        for kind, samples in estimators:
            for _ in range(repeats):
                _, grad = problem.value_and_gradient(params, samples, kind == "antithetic")
                squared = (grad - reference).pow(2)
                errors[(kind, samples)] += torch.stack(
                    [h.sum(-1).mean() for h in squared.chunk(2, dim=-1)]) / repeats
    rows = []
    for (kind, samples), err in errors.items():
        mean_err, log_var_err = (err / norm).tolist()
        rows.append({"estimator": kind, "samples": samples,
                     "relative_error_mean": mean_err, "relative_error_log_var": log_var_err,
                     "relative_error_all": float(err.sum() / norm.sum())})
    return {"run": str(run_dir), "steps": len(problems), "batch": sequences,
            "reference_samples": reference_samples, "repeats": repeats,
            "norm_mean": float(norm[0] / len(problems)),
            "norm_log_var": float(norm[1] / len(problems)),
            "seconds": time.perf_counter() - start, "rows": rows}


def parse_estimators(text: str) -> list[tuple[str, int]]:
    """``"iid:1,iid:8,antithetic:2"`` → [("iid", 1), ("iid", 8), ("antithetic", 2)]."""
    out = []
    for item in text.split(","):
        kind, _, samples = item.partition(":")
        if kind not in ("iid", "antithetic") or not samples.isdigit() or int(samples) < 1:
            raise argparse.ArgumentTypeError(f"bad estimator {item!r}: use iid:S or antithetic:S")
        if kind == "antithetic" and int(samples) % 2:
            raise argparse.ArgumentTypeError(f"{item!r}: antithetic needs an even sample count")
        out.append((kind, int(samples)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-dir")
    parser.add_argument("--sequences", type=int, default=32, help="validation windows")
    parser.add_argument("--every", type=int, default=3, help="use every N-th step")
    parser.add_argument("--reference-samples", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=16, help="estimates per estimator")
    parser.add_argument("--estimators", type=parse_estimators,
                        default="iid:1,iid:2,iid:8,antithetic:2,antithetic:8")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [gradient_noise(run, args.data_dir, args.sequences, args.every,
                              args.reference_samples, args.repeats, args.estimators)
               for run in args.runs]
    print("| run | estimator | decoder passes | rel. error, mean | rel. error, log-var "
          "| rel. error, all |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for result in results:
        for r in result["rows"]:
            print(f"| {Path(result['run']).name} | {r['estimator']} | {r['samples']} | "
                  f"{r['relative_error_mean']:.3f} | {r['relative_error_log_var']:.3f} | "
                  f"{r['relative_error_all']:.3f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

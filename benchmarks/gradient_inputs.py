"""Time of AVF's gradient input ∇_λ F_t: the KL's gradient by autograd or in closed form.

AVF computes ∇_λ F_t at every step and iteration. ``DiagonalGaussian.kl_gradient`` writes the
KL's part out (a diagonal Gaussian against SRNN's diagonal Gaussian prior), so that autograd goes
back through the reconstruction term alone; this script times ``StepProblem.value_and_gradient``
both ways, interleaved round by round so that a busy machine slows both alike, and checks that
the two gradients agree. SRNN at the paper's music sizes, batch 16, a random binary x_t; 1 and 8
samples per gradient; the evaluation path (λ a leaf, as when filtering a test song) and the
training path (λ in the inference network's graph, the model's weights trainable).

    python benchmarks/gradient_inputs.py --json benchmarks/results/gradient_inputs.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from avf.inference.base import StepProblem
from avf.models import SRNN
from avf.posteriors import DiagonalGaussian


class AutogradKL(DiagonalGaussian):
    """The same family without the closed form: the KL's gradient comes from autograd."""

    def kl_gradient(self, params, prior):
        return None


def problem(model: SRNN, family: DiagonalGaussian, samples: int, batch: int) -> StepProblem:
    """One step's problem at the model's first step, prior and state as constants."""
    gen = torch.Generator().manual_seed(0)
    state = model.initial_state(batch)
    x = (torch.rand(batch, model.x_dim, generator=gen) < 0.1).float()
    with torch.no_grad():
        prior = model.prior(state)
    return StepProblem(model, state, prior, x, family, n_samples=samples)


def gradient(prob: StepProblem, training: bool) -> torch.Tensor:
    """∇_λ F_t at the prior's λ moved by fixed noise (at the prior itself the KL's gradient is
    zero, which would make the two ways agree trivially)."""
    params = prob.prior_params()
    params = params + 0.3 * torch.randn(params.shape, generator=torch.Generator().manual_seed(2))
    if training:  # λ as an inference network's output: part of a graph
        params = params.requires_grad_(True) * 1.0
    return prob.value_and_gradient(params)[1]


def time_rounds(model: SRNN, samples: int, batch: int, training: bool, rounds: int,
                calls: int) -> dict[str, list[float]]:
    """Microseconds per call, one number per round and way, the two ways alternating."""
    times: dict[str, list[float]] = {"autograd": [], "closed form": []}
    ways = {"autograd": AutogradKL(), "closed form": DiagonalGaussian()}
    for _ in range(rounds):
        for name, family in ways.items():
            prob = problem(model, family, samples, batch)
            gradient(prob, training)  # warm-up
            start = time.perf_counter()
            for _ in range(calls):
                gradient(prob, training)
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return times


def largest_difference(model: SRNN, samples: int, batch: int) -> float:
    """max |closed form − autograd| over λ's gradient, with the same sampling noise."""
    grads = []
    for family in (AutogradKL(), DiagonalGaussian()):
        torch.manual_seed(1)
        grads.append(gradient(problem(model, family, samples, batch), training=False))
    return float((grads[0] - grads[1]).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=100, help="calls timed per round")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=500, help="SRNN's MLP width")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SRNN(hidden=args.hidden)
    rows = []
    print("path        samples  autograd µs  closed form µs  closed / autograd  max |Δ grad|")
    for training in (False, True):
        for samples in (1, 8):
            times = time_rounds(model, samples, args.batch, training, args.rounds, args.calls)
            auto, closed = (statistics.median(times[k]) for k in ("autograd", "closed form"))
            row = {"path": "training" if training else "evaluation", "samples": samples,
                   "autograd_us": auto, "closed_form_us": closed, "ratio": closed / auto,
                   "max_abs_difference": largest_difference(model, samples, args.batch),
                   "rounds": times}
            rows.append(row)
            print(f"{row['path']:11s} {samples:7d} {auto:12.0f} {closed:15.0f} "
                  f"{row['ratio']:18.3f} {row['max_abs_difference']:13.2e}")
    if args.json:
        meta = {"machine": platform.machine(), "processor": platform.processor(),
                "torch": torch.__version__, "threads": args.threads, "batch": args.batch,
                "hidden": args.hidden, "rounds": args.rounds, "calls": args.calls}
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()

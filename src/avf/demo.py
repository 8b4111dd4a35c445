"""``avf demo``: every inference procedure on two models with known answers, in minutes.

On synthetic data from built-in models (no download), it trains the amortized procedures with the
model fixed and compares them with no inference (the prior), per-step gradient descent and the
reference: the exact filtering optimum F* for the linear-Gaussian model, and a bootstrap particle
filter's estimate of -log p(x) for the nonlinear growth model. It prints a table per model, writes
``results.json`` and a plot of free energy against inference iteration.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from avf.data import Sequences
from avf.data.synthetic import sample_dataset
from avf.evaluation import Score, evaluate
from avf.inference import Direct, GradientDescent, InferenceProcedure, Iterative, PriorOnly
from avf.inference.smc import particle_filter
from avf.model import latent_dim, state_dim
from avf.models import LinearGaussian, NonlinearGrowth
from avf.training import TrainConfig, Trainer


@dataclass
class DemoSize:
    train_sequences: int
    test_sequences: int
    steps: int
    epochs: int
    hidden: int
    gd_iterations: int
    particles: int


FULL = DemoSize(train_sequences=384, test_sequences=128, steps=25, epochs=6, hidden=256,
                gd_iterations=100, particles=2000)
QUICK = DemoSize(train_sequences=64, test_sequences=8, steps=6, epochs=1, hidden=32,
                 gd_iterations=5, particles=100)


def procedures(model: nn.Module, x_dim: int, size: DemoSize) -> dict[str, InferenceProcedure]:
    """The line-up: each procedure works on the model unchanged."""
    dz = latent_dim(model)
    h = size.hidden
    # the growth model's posteriors are ~10 units wide: Adam needs a larger step to get there
    gd_lr = 0.1 if isinstance(model, LinearGaussian) else 1.0
    return {
        "prior only (no inference)": PriorOnly(),
        "Direct encoder": Direct(x_dim, dz, state_dim(model), hidden=h),
        "AVF K=1": Iterative(dz, iterations=1, hidden=h),
        "AVF K=2": Iterative(dz, iterations=2, hidden=h),
        "AVF K=5": Iterative(dz, iterations=5, hidden=h),
        f"gradient descent ({size.gd_iterations} Adam steps, lr {gd_lr:g})": GradientDescent(
            size.gd_iterations, lr=gd_lr),
    }


def run_model(name: str, model: nn.Module, size: DemoSize, seed: int, progress: bool) -> dict:
    """Train and score every procedure on data drawn from ``model`` (kept fixed)."""
    for p in model.parameters():
        p.requires_grad_(False)
    train = sample_dataset(model, size.train_sequences, size.steps, seed=seed + 1)
    test = sample_dataset(model, size.test_sequences, size.steps, seed=seed + 2)
    x_dim = int(test.x[0, 0].numel())
    reference = reference_score(model, test, size, seed)
    rows = []
    for label, inference in procedures(model, x_dim, size).items():
        torch.manual_seed(seed)
        start = time.perf_counter()
        if any(p.requires_grad for p in inference.parameters()):
            config = TrainConfig(epochs=size.epochs, batch_size=32, inference_lr=3e-3,
                                 grad_clip=5.0, train_model=False, seed=seed, progress=progress)
            Trainer(model, inference, config).fit(train)
        train_time = time.perf_counter() - start
        start = time.perf_counter()
        score = evaluate(model, inference, test.batches(64), progress=progress, desc=label)
        rows.append(row(label, score, reference["value"], train_time,
                        time.perf_counter() - start))
    return {"model": name, "reference": reference, "rows": rows, "size": size.__dict__}


def reference_score(model: nn.Module, test: Sequences, size: DemoSize, seed: int) -> dict:
    """F* for the linear-Gaussian model, a particle-filter -log p̂(x) otherwise."""
    if isinstance(model, LinearGaussian):
        f_star = model.optimal_filtering_free_energy(test.x, test.mask)
        nll = -model.kalman_log_likelihood(test.x, test.mask)
        steps = int(test.mask.sum())
        return {"name": "analytic filtering optimum F*", "value": float(f_star.sum()) / steps,
                "exact_nll_per_step": float(nll.sum()) / steps}
    result = particle_filter(model, test.x, test.mask, n_particles=size.particles,
                             generator=torch.Generator().manual_seed(seed))
    steps = int(test.mask.sum())
    return {"name": f"bootstrap particle filter -log p(x) ({size.particles} particles)",
            "value": -float(result.log_marginal.sum()) / steps}


def row(label: str, score: Score, reference: float, train_time: float, eval_time: float) -> dict:
    """One line of the demo's results: a method's score and its gap to the reference."""
    return {"method": label, "free_energy": score.free_energy,
            "gap": score.free_energy - reference, "macro_free_energy": score.macro_free_energy,
            "trace": score.trace, "train_seconds": train_time, "eval_seconds": eval_time}


def format_table(result: dict) -> str:
    """One model's results as a plain-text table under a line naming the reference."""
    ref = result["reference"]
    lines = [f"\n{result['model']}: reference = {ref['name']} = {ref['value']:.3f} nats/step"]
    if "exact_nll_per_step" in ref:
        lines[0] += f"; exact -log p(x)/T = {ref['exact_nll_per_step']:.3f}"
    header = f"{'method':<44} {'F / step':>9} {'gap':>8} {'train s':>8} {'eval s':>7}"
    lines += [header, "-" * len(header)]
    for r in result["rows"]:
        lines.append(f"{r['method']:<44} {r['free_energy']:>9.3f} {r['gap']:>8.3f} "
                     f"{r['train_seconds']:>8.1f} {r['eval_seconds']:>7.1f}")
    return "\n".join(lines)


def plot_iterations(results: list[dict], path: Path) -> bool:
    """Free energy against inference iteration for each model; ``False`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4.5), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        for r in result["rows"]:
            trace = r["trace"]
            its = list(range(len(trace)))
            if len(trace) == 1:
                ax.axhline(trace[0], ls=":", lw=1, label=r["method"], color="gray"
                           if "prior" in r["method"] else None)
            else:
                ax.plot(its, trace, marker="o" if len(trace) < 10 else None, ms=3,
                        label=r["method"])
        ax.axhline(result["reference"]["value"], color="k", ls="--", label="reference")
        ax.set_xscale("symlog", linthresh=5)
        ax.set_xlabel("inference iteration (0 = prior)")
        ax.set_ylabel("free energy (nats / step)")
        ax.set_title(result["model"])
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    """``avf demo`` / ``make demo``: every procedure on the built-in models, then the table."""
    parser = argparse.ArgumentParser(prog="avf demo", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--out", default="demo_out", help="folder for results.json and the plot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # small networks: one thread is faster than several competing ones on a small CPU
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    models = [("linear-Gaussian SSM (4-d, diagonal C/Q/R)",
               LinearGaussian.random(4, 4, diagonal=True, seed=args.seed)),
              ("nonlinear growth model (bimodal posteriors)", NonlinearGrowth())]
    results = []
    for name, model in models:
        result = run_model(name, model, size, args.seed, progress=not args.no_progress)
        print(format_table(result), flush=True)
        results.append(result)
    total = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps({"results": results, "seconds": total},
                                                 indent=2))
    plotted = plot_iterations(results, out / "iterations.png")
    print(f"\nwrote {out / 'results.json'}"
          + (f" and {out / 'iterations.png'}" if plotted else " (install matplotlib for the plot)")
          + f"; total {total:.0f} s")
    return 0

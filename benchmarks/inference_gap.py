"""Acceptance benchmark: filtering inference against exact answers, with the model fixed.

``--model lgssm`` (default): a 4-d linear-Gaussian SSM (diagonal C, Q, R; full A). Every method
is scored against the analytic filtering optimum F* (each step's F_t minimised given the past)
and the exact -log p(x)/T. ``--model growth``: the nonlinear growth model (bimodal posteriors),
scored against a bootstrap particle filter's -log p̂(x)/T. Only the inference procedures learn.
Each method trains in its own run directory and resumes from its checkpoint, so the script can
be stopped and rerun; each writes ``<out>/<method>.json``, and ``--report`` prints the table of
whatever has finished.

    python benchmarks/inference_gap.py --methods avf_k2_x,avf_k2      # train + score
    python benchmarks/inference_gap.py --report                      # table + JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from avf.data.synthetic import sample_dataset
from avf.evaluation import evaluate
from avf.inference import Direct, GradientDescent, InferenceProcedure, Iterative, PriorOnly
from avf.inference.smc import particle_filter
from avf.model import latent_dim, state_dim
from avf.models import LinearGaussian, NonlinearGrowth
from avf.training import TrainConfig, Trainer, load_weights
from avf.validation import observation_shape


def methods(hidden: int) -> dict[str, tuple[str, Callable[[nn.Module], InferenceProcedure]]]:
    """name → (description, factory). Trained unless the procedure has no parameters."""
    return {
        "prior": ("prior only (no inference)", lambda _: PriorOnly()),
        "direct": (f"Direct encoder (x_t, prior, state; 2x{hidden} highway)",
                   lambda m: Direct(dx(m), latent_dim(m), state_dim(m), hidden=hidden)),
        "avf_k1": (f"AVF K=1, model-agnostic, signlog (2x{hidden})",
                   lambda m: Iterative(latent_dim(m), 1, hidden=hidden)),
        "avf_k5": (f"AVF K=5, model-agnostic, signlog (2x{hidden})",
                   lambda m: Iterative(latent_dim(m), 5, hidden=hidden)),
        "avf_k2_x": (f"AVF K=2, + x_t input, signlog (2x{hidden})",
                     lambda m: Iterative(latent_dim(m), 2, x_dim=dx(m), hidden=hidden)),
        "avf_k2_x_ln": (f"AVF K=2, + x_t input, paper layernorm encoding (2x{hidden})",
                        lambda m: Iterative(latent_dim(m), 2, x_dim=dx(m), hidden=hidden,
                                            encoding="layernorm")),
        "avf_k2_x_hybrid": (f"AVF K=2, + x_t input, hybrid encoding (2x{hidden})",
                            lambda m: Iterative(latent_dim(m), 2, x_dim=dx(m), hidden=hidden,
                                                encoding="hybrid")),
        "avf_k2": (f"AVF K=2, model-agnostic, signlog (2x{hidden})",
                   lambda m: Iterative(latent_dim(m), 2, hidden=hidden)),
        "avf_k2_gs8": (f"AVF K=2, model-agnostic, signlog, 8-sample gradients (2x{hidden})",
                       lambda m: Iterative(latent_dim(m), 2, hidden=hidden, grad_samples=8)),
        "avf_k2_paper": (f"AVF K=2, model-agnostic, paper layernorm encoding (2x{hidden})",
                         lambda m: Iterative(latent_dim(m), 2, hidden=hidden,
                                                   encoding="layernorm")),
        "gd100": ("gradient descent, 100 Adam steps (lr 0.1, linear decay)",
                  lambda _: GradientDescent(100, lr=0.1)),
        "gd100_lr1": ("gradient descent, 100 Adam steps (lr 1.0, linear decay)",
                      lambda _: GradientDescent(100, lr=1.0)),
    }


def dx(model: nn.Module) -> int:
    return int(torch.tensor(observation_shape(model)).prod())


def build_model(name: str = "lgssm") -> nn.Module:
    model = LinearGaussian.random(4, 4, diagonal=True, seed=0) if name == "lgssm" else (
        NonlinearGrowth())
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def reference_per_sequence(model: nn.Module, test, particles: int) -> tuple[Tensor, dict]:
    """Per-sequence reference totals [N] and the extra numbers reported with them."""
    steps = int(test.mask.sum())
    if isinstance(model, LinearGaussian):
        f_star = model.optimal_filtering_free_energy(test.x).sum(1)
        nll = -float(model.kalman_log_likelihood(test.x).sum()) / steps
        return f_star, {"reference": "analytic filtering optimum F*", "exact_nll": nll}
    runs = [particle_filter(model, test.x, test.mask, n_particles=particles,
                            generator=torch.Generator().manual_seed(seed)).log_marginal
            for seed in range(2)]
    pf = -torch.stack(runs).double().mean(0)
    return pf, {"reference": f"bootstrap particle filter -log p(x), {particles} particles x 2",
                "pf_run_difference": float((runs[0] - runs[1]).abs().mean()) }


def run_method(name: str, args: argparse.Namespace) -> dict:
    model = build_model(args.model)
    description, factory = methods(args.hidden)[name]
    torch.manual_seed(args.seed)
    inference = factory(model)
    train = sample_dataset(model, args.train_sequences, 25, seed=1)
    valid = sample_dataset(model, 128, 50, seed=2)
    test = sample_dataset(model, args.test_sequences, 50, seed=3)
    trained = any(p.requires_grad for p in inference.parameters())
    train_seconds = 0.0
    epochs = 0
    if trained:
        config = TrainConfig(epochs=args.epochs, batch_size=32, inference_lr=args.lr,
                             lr_decay=args.lr_decay, train_model=False, seed=args.seed,
                             progress=not args.no_progress, valid_every=args.valid_every)
        trainer = Trainer(model, inference, config, run_dir=Path(args.out) / "runs" / name)
        trainer.fit(train, valid)
        train_seconds = trainer.wall_time
        epochs = trainer.epoch
        best = Path(args.out) / "runs" / name / "best.pt"
        if best.exists():  # score the best validation checkpoint, as `avf evaluate` does
            load_weights(best, model, inference)
    start = time.perf_counter()
    torch.manual_seed(args.seed + 100)
    repeats = [evaluate(model, inference, test.batches(64), progress=not args.no_progress,
                        desc=f"{name} pass {r + 1}/{args.eval_repeats}",
                        per_sequence=True)
               for r in range(args.eval_repeats)]
    eval_seconds = time.perf_counter() - start
    steps = int(test.mask.sum())
    f_star_seq, ref_info = reference_per_sequence(model, test, args.particles)
    f_star = float(f_star_seq.sum()) / steps
    # paired with the exact per-sequence optimum, so the data's own variation cancels
    totals = torch.stack([torch.tensor(s.sequence_totals, dtype=torch.float64)
                          for s in repeats]).mean(0)
    gaps = (totals - f_star_seq) / test.mask.sum(1)
    free_energy = sum(s.free_energy for s in repeats) / len(repeats)
    trace = torch.tensor([s.trace for s in repeats]).mean(0).tolist()
    result = {
        "method": name, "description": description, "free_energy": free_energy,
        "macro_free_energy": sum(s.macro_free_energy for s in repeats) / len(repeats),
        "gap_to_optimum": free_energy - f_star,
        "gap_standard_error": float(gaps.std() / len(gaps) ** 0.5),
        "optimum": f_star, **ref_info,
        "kl": sum(s.kl for s in repeats) / len(repeats),
        "recon": sum(s.recon for s in repeats) / len(repeats),
        "trace": trace, "epochs": epochs, "train_seconds": train_seconds,
        "eval_seconds": eval_seconds, "test_steps": repeats[0].steps,
        "settings": {k: v for k, v in vars(args).items() if k not in ("methods", "report")},
        "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
    }
    out = Path(args.out) / f"{name}.json"
    out.write_text(json.dumps(result, indent=2))
    return result


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(p.read_text()) for p in sorted(Path(args.out).glob("*.json"))]
    order = list(methods(args.hidden))
    rows.sort(key=lambda r: order.index(r["method"]) if r["method"] in order else 99)
    if not rows:
        print(f"no results in {args.out}")
        return
    extra = (f", exact -log p(x)/T = {rows[0]['exact_nll']:.4f}" if "exact_nll" in rows[0]
             else "")
    reference = rows[0].get("reference", "analytic filtering optimum F*")
    print(f"reference ({reference}) = {rows[0]['optimum']:.4f}{extra} "
          f"({rows[0]['test_steps']} test steps)")
    header = (f"{'method':<12} {'F/step':>8} {'macro':>8} {'gap':>9} {'± se':>6} "
              f"{'epochs':>6} {'train s':>8} {'eval s':>7}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['method']:<12} {r['free_energy']:>8.4f} {r['macro_free_energy']:>8.4f} "
              f"{r['gap_to_optimum']:>9.4f} {r['gap_standard_error']:>6.4f} "
              f"{r['epochs']:>6} {r['train_seconds']:>8.0f} "
              f"{r['eval_seconds']:>7.0f}")
    Path(args.json).write_text(json.dumps(rows, indent=2))
    print(f"wrote {args.json}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=("lgssm", "growth"), default="lgssm")
    parser.add_argument("--methods", default=",".join(methods(256)))
    parser.add_argument("--particles", type=int, default=10000,
                        help="particles of the reference filter (growth model)")
    parser.add_argument("--out", help="run folder (default benchmarks/out/MODEL)")
    parser.add_argument("--json", help="table JSON (default benchmarks/results/gap_MODEL.json)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=0.8)
    parser.add_argument("--train-sequences", type=int, default=4096)
    parser.add_argument("--test-sequences", type=int, default=256)
    parser.add_argument("--valid-every", type=int, default=1)
    parser.add_argument("--eval-repeats", type=int, default=4,
                        help="passes over the test set (fresh samples each) to average")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--report", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out = args.out or f"benchmarks/out/{args.model}"
    args.json = args.json or f"benchmarks/results/gap_{args.model}.json"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args)
        return
    for name in args.methods.split(","):
        if name not in methods(args.hidden):
            raise SystemExit(f"unknown method {name!r}; known: {', '.join(methods(args.hidden))}")
        r = run_method(name, args)
        print(f"{name}: F/step {r['free_energy']:.4f}, gap {r['gap_to_optimum']:.4f}",
              flush=True)


if __name__ == "__main__":
    main()

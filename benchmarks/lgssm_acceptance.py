"""Acceptance benchmark: filtering inference on a 4-d linear-Gaussian SSM against exact answers.

The model (diagonal C, Q, R; full A) is fixed and only the inference procedures learn, so every
method is scored against the same ground truth: the analytic filtering optimum F* (the best any
filtering posterior can do) and the exact -log p(x)/T. Each method trains in its own run
directory and resumes from its checkpoint, so the script can be stopped and rerun; each writes
``<out>/<method>.json``, and ``--report`` prints the table of whatever has finished.

    python benchmarks/lgssm_acceptance.py --methods avf_k2_x,avf_k2      # train + score
    python benchmarks/lgssm_acceptance.py --report                      # table + JSON
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from avf.data.synthetic import sample_dataset
from avf.evaluation import evaluate
from avf.inference import Direct, GradientDescent, InferenceProcedure, Iterative, PriorOnly
from avf.model import state_dim
from avf.models import LinearGaussian
from avf.training import TrainConfig, Trainer

DZ = DX = 4


def methods(hidden: int) -> dict[str, tuple[str, Callable[[LinearGaussian], InferenceProcedure]]]:
    """name → (description, factory). Trained unless the procedure has no parameters."""
    return {
        "prior": ("prior only (no inference)", lambda _: PriorOnly()),
        "direct": (f"Direct encoder (x_t, prior, state; 2x{hidden} highway)",
                   lambda m: Direct(DX, DZ, state_dim(m), hidden=hidden)),
        "avf_k2_x": (f"AVF K=2, + x_t input, signlog (2x{hidden})",
                     lambda _: Iterative(DZ, 2, x_dim=DX, hidden=hidden)),
        "avf_k2": (f"AVF K=2, model-agnostic, signlog (2x{hidden})",
                   lambda _: Iterative(DZ, 2, hidden=hidden)),
        "avf_k2_gs8": (f"AVF K=2, model-agnostic, signlog, 8-sample gradients (2x{hidden})",
                       lambda _: Iterative(DZ, 2, hidden=hidden, grad_samples=8)),
        "avf_k2_paper": (f"AVF K=2, model-agnostic, paper layernorm encoding (2x{hidden})",
                         lambda _: Iterative(DZ, 2, hidden=hidden, encoding="layernorm")),
        "gd100": ("gradient descent, 100 Adam steps (lr 0.1, linear decay)",
                  lambda _: GradientDescent(100, lr=0.1)),
    }


def build_model() -> LinearGaussian:
    model = LinearGaussian.random(DZ, DX, diagonal=True, seed=0)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def run_method(name: str, args: argparse.Namespace) -> dict:
    model = build_model()
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
        history = trainer.fit(train, valid)
        train_seconds = trainer.wall_time
        epochs = trainer.epoch
        best = Path(args.out) / "runs" / name / "best.pt"
        if best.exists():  # score the best validation checkpoint, as `avf evaluate` does
            inference.load_state_dict(torch.load(best, weights_only=False)["inference"])
        del history
    start = time.perf_counter()
    torch.manual_seed(args.seed + 100)
    repeats = [evaluate(model, inference, test.batches(64), progress=not args.no_progress,
                        desc=f"{name} pass {r + 1}/{args.eval_repeats}",
                        per_sequence=True)
               for r in range(args.eval_repeats)]
    eval_seconds = time.perf_counter() - start
    steps = int(test.mask.sum())
    f_star_seq = model.optimal_filtering_free_energy(test.x).sum(1)  # [N] per sequence
    f_star = float(f_star_seq.sum()) / steps
    nll = -float(model.kalman_log_likelihood(test.x).sum()) / steps
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
        "optimum": f_star, "exact_nll": nll,
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
    print(f"F* = {rows[0]['optimum']:.4f}, exact -log p(x)/T = {rows[0]['exact_nll']:.4f} "
          f"({rows[0]['test_steps']} test steps)")
    header = (f"{'method':<12} {'F/step':>8} {'macro':>8} {'gap to F*':>9} {'± se':>6} "
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
    parser.add_argument("--methods", default=",".join(methods(256)))
    parser.add_argument("--out", default="benchmarks/out/lgssm")
    parser.add_argument("--json", default="benchmarks/results/lgssm_acceptance.json")
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
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.report:
        report(args)
        return
    for name in args.methods.split(","):
        if name not in methods(args.hidden):
            raise SystemExit(f"unknown method {name!r}; known: {', '.join(methods(args.hidden))}")
        r = run_method(name, args)
        print(f"{name}: F/step {r['free_energy']:.4f}, gap to F* {r['gap_to_optimum']:.4f}",
              flush=True)


if __name__ == "__main__":
    main()

"""``avf evaluate``: a run's score on a split, by the evaluation protocol, as JSON too."""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from avf.atomic import atomic_write
from avf.data import Sequences
from avf.evaluation import Score, evaluate, particle_score
from avf.runs import (
    on_dataset,
    resolve_device,
    restore,
    run_config,
    split_data,
    weights_used,
)


def evaluate_run(args: argparse.Namespace) -> int:
    """``avf evaluate``: print each run's score and write it to ``eval_<split>.json``
    (``eval_<split>_on_<data set>.json`` with ``--dataset``, so that the score on the run's own
    data, which ``avf runs`` and the benchmark tables read, stays as it was).

    Several run directories are scored one after the other (the seeds of an experiment, say);
    the first that fails stops the command, with the reports of those before it written.
    """
    for run_dir in args.run_dirs:
        _evaluate_one(run_dir, args)
    return 0


def _evaluate_one(run_dir: Path, args: argparse.Namespace) -> None:
    cfg = run_config(run_dir)
    device = resolve_device(args.device if args.device is not None else cfg.device)
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    if args.particles < 0:
        raise ValueError(f"--particles must be >= 0 (0: no particle filter), got "
                         f"{args.particles}")
    batch_size = cfg.training.batch_size if args.batch_size is None else args.batch_size
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    scored, label = on_dataset(cfg, args.dataset)
    data = split_data(scored, args.split, args.data_dir)
    model, inference, path, ckpt = restore(cfg, run_dir, args.checkpoint, args.weights)
    model, inference = model.to(device), inference.to(device)
    torch.manual_seed(cfg.seed)
    score = evaluate(model, inference, _batches(data, batch_size, device, args, "scoring"),
                     n_samples=args.samples)
    report: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": path.name,
                              "epoch": int(ckpt["epoch"]), "split": args.split,
                              "dataset": scored.data.dataset,
                              "weights": weights_used(ckpt, args.weights),
                              "samples": args.samples, **score.as_dict()}
    report.update(exact_answers(model, data))
    if getattr(model, "bin_width", None) is not None:
        torch.manual_seed(cfg.seed)
        batches = _batches(data, batch_size, device, args, "discretised scoring")
        binned = evaluate(model, inference, batches, n_samples=args.samples, discretized=True)
        report["discretized"] = {"bin_width": float(model.bin_width), **binned.as_dict()}
    if args.particles:
        binned = "discretized" in report  # score as the paper does: bins where they exist
        batches = _batches(data, batch_size, device, args, f"{args.particles} particles on")
        smc = particle_score(model, inference, batches, args.particles, seed=cfg.seed,
                             discretized=binned)
        report["smc"] = {"discretized": binned, **smc.as_dict()}
    print(format_report(report, score))
    out = run_dir / f"eval_{args.split}{'' if label is None else f'_on_{label}'}.json"
    text = (json.dumps(report, indent=2) + "\n").encode("utf-8")
    atomic_write(out, lambda f: f.write(text))  # `avf runs` never reads half a report
    print(f"wrote {out}")


def _batches(data: Sequences, batch_size: int, device: torch.device, args: argparse.Namespace,
             what: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The split's batches on ``device``, behind a progress bar: whole long songs take minutes."""
    moved = ((x.to(device), m.to(device)) for x, m in data.batches(batch_size))
    yield from tqdm(moved, total=data.num_batches(batch_size), leave=False, unit="batch",
                    desc=f"{what} {args.split} ({len(data)} sequences)", disable=args.no_progress)


def exact_answers(model: nn.Module, data: Sequences) -> dict[str, float]:
    """For models with closed forms (the LGSSM): F* and the exact -log p(x), per scored step."""
    needed = ("optimal_filtering_free_energy", "kalman_log_likelihood")
    if not all(callable(getattr(model, n, None)) for n in needed):
        return {}
    cpu = copy.deepcopy(model).cpu()  # the closed forms build their tensors on the CPU
    steps = data.mask.sum()
    optimum = cpu.optimal_filtering_free_energy(data.x, data.mask)
    log_lik = cpu.kalman_log_likelihood(data.x, data.mask)
    return {"optimal_free_energy": float(optimum.sum() / steps),
            "exact_nll": float(-log_lik.sum() / steps)}


def format_report(report: dict[str, Any], score: Score) -> str:
    """The lines ``avf evaluate`` prints: the score, and whatever the report adds to it."""
    lines = [
        f"{report['run_dir']}: {report['checkpoint']} (epoch {report['epoch']}"
        f"{', weight average' if report.get('weights') == 'average' else ''}), "
        f"{report['split']} split{_of(report.get('dataset'))}: {score.sequences} sequences, "
        f"{score.steps} steps",
        f"free energy: {score.free_energy:.4f} nats/step (micro), "
        f"{score.macro_free_energy:.4f} (macro)",
        f"  reconstruction {score.recon:.4f}, KL {score.kl:.4f}",
    ]
    if "optimal_free_energy" in report:
        optimum = report["optimal_free_energy"]
        lines.append(f"filtering optimum F*: {optimum:.4f} nats/step "
                     f"(gap {score.free_energy - optimum:+.4f})")
        lines.append(f"exact -log p(x)/T (Kalman): {report['exact_nll']:.4f} nats/step")
    if "discretized" in report:
        binned = report["discretized"]
        lines.append(f"discretised (bin {binned['bin_width']:.4g}): free energy "
                     f"{binned['free_energy']:.4f} nats/step (micro), "
                     f"{binned['macro_free_energy']:.4f} (macro); reconstruction "
                     f"{binned['recon']:.4f}, KL {binned['kl']:.4f}")
        lines.append("  (the free energy above uses the density; the discretised one is a "
                     "probability and the number to compare with the paper)")
    if "smc" in report:
        smc = report["smc"]
        kind = "discretised " if smc["discretized"] else ""
        lines.append(f"particle filter ({smc['particles']} particles, the run's inference as "
                     f"proposal): {kind}-log p(x)/T estimate {smc['nll']:.4f} nats/step "
                     f"(micro), {smc['macro_nll']:.4f} (macro); an upper bound in expectation")
    return "\n".join(lines)


def _of(dataset: str | None) -> str:
    """" of <data set>" for the report's first line (nothing for synthetic data)."""
    return "" if dataset is None else f" of {dataset}"

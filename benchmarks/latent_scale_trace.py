"""Trace the latent's scale batch by batch while `avf train` runs: how a DMM run diverges.

For every training batch it records, over all time steps of the batch: the largest |z| that
entered the prior (the state), the range of the prior's and the posterior's log-variance, and
the largest |μ_q − μ_p| / σ_p, and the global norm of each part's gradient before clipping
(θ: ``grad_norm_model``, φ: ``grad_norm_inference``). A run that diverges shows |z| and the
log-variance range widening over hundreds of updates before the non-finite error; a healthy one
stays put.

    python benchmarks/latent_scale_trace.py --out trace.jsonl -- \
        experiments/music/jsb_dmm_avf_k1.toml --data-dir ../shared/data --epochs 2 \
        --set inference.options.hidden=256 --set training.model_lr=1e-3 \
        --set training.inference_lr=1e-3 --run-dir runs/trace

Everything after ``--`` goes to ``avf train``. For models with a diagonal-Gaussian prior and
posterior whose state is the latent sample (the DMM) or a dict that holds it as ``"z"`` (SRNN);
it wraps three internal functions of avf (``avf.filtering.filter_step``,
``Trainer._train_step`` and the ``backward`` the trainer calls), so it is a diagnostic, not an API.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

import avf.filtering as filtering
import avf.training as training
from avf.cli import main as avf_main


def install(out_path: Path, every: int) -> None:
    """Wrap the engine's step and the trainer's batch so that each batch writes one record."""
    step_stats: list[dict[str, float]] = []
    original_step = filtering.filter_step
    original_batch = training.Trainer._train_step
    original_backward = training.backward
    grad_norms: dict[str, float] = {}
    current: dict[str, Any] = {}
    counter = {"batch": 0}
    out = out_path.open("w", encoding="utf-8")

    def filter_step(model, inference, state, carry, x, beta=1.0, n_samples=1):
        result = original_step(model, inference, state, carry, x, beta, n_samples)
        z = state.get("z") if isinstance(state, dict) else state
        if torch.is_grad_enabled() and isinstance(z, torch.Tensor):
            with torch.no_grad():
                prior = model.prior(state).base_dist
                q_mean, q_log_var = inference.family.blocks(result.params.detach())
                p_log_var = 2 * prior.scale.log()
                step_stats.append({
                    "z": float(z.abs().max()),
                    "p_lv_min": float(p_log_var.min()), "p_lv_max": float(p_log_var.max()),
                    "q_lv_min": float(q_log_var.min()), "q_lv_max": float(q_log_var.max()),
                    "shift": float(((q_mean - prior.loc) / prior.scale).abs().max()),
                })
        return result

    def backward(out, model, inference):
        original_backward(out, model, inference)
        trainer = current["trainer"]
        for part, opt in trainer.optimizers.items():
            if opt is not None:  # in float64, so that squares of 1e20 do not overflow
                grads = [p.grad for group in opt.param_groups for p in group["params"]
                         if p.grad is not None]
                norms = [torch.linalg.vector_norm(g, dtype=torch.float64) for g in grads]
                total = torch.linalg.vector_norm(torch.stack(norms)) if norms else 0.0
                grad_norms[part] = float(total)

    def train_step(self, x, mask, beta, where):
        step_stats.clear()
        grad_norms.clear()
        current["trainer"] = self
        try:
            return original_batch(self, x, mask, beta, where)
        finally:
            counter["batch"] += 1
            if step_stats:
                record = _summary(counter["batch"], beta, step_stats)
                record.update({f"grad_norm_{k}": v for k, v in grad_norms.items()})
                out.write(json.dumps(record) + "\n")
                out.flush()
                if counter["batch"] % every == 0:
                    print(" ".join(f"{k} {v:.4g}" for k, v in record.items()), flush=True)

    filtering.filter_step = filter_step
    training.Trainer._train_step = train_step
    training.backward = backward


def _summary(batch: int, beta: float, stats: list[dict[str, float]]) -> dict[str, Any]:
    return {
        "batch": batch, "beta": beta,
        "max_abs_z": max(s["z"] for s in stats),
        "prior_log_var_min": min(s["p_lv_min"] for s in stats),
        "prior_log_var_max": max(s["p_lv_max"] for s in stats),
        "posterior_log_var_min": min(s["q_lv_min"] for s in stats),
        "posterior_log_var_max": max(s["q_lv_max"] for s in stats),
        "max_mean_shift_in_prior_sigmas": max(s["shift"] for s in stats),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("usage: latent_scale_trace.py [--out F] [--every N] -- CONFIG [avf train "
                         "options]")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("latent_scale_trace.jsonl"))
    parser.add_argument("--every", type=int, default=10, help="print every N-th batch")
    args = parser.parse_args(argv[:cut])
    install(args.out, args.every)
    return avf_main(["train", *argv[cut + 1:]])


if __name__ == "__main__":
    raise SystemExit(main())

"""How much of its previous estimate AVF's highway update keeps, on validation crops of a run.

A diagnostic for posterior collapse: a gate near 1 means each update returns (almost) the
prior, and then the gradient reaching the update's output is scaled by 1 − gate, close to 0.
Prints the mean gate over the mean and log-variance halves of λ, the KL per step, and the free
energy before and after the update, for the ``best.pt`` of each run given.

    python benchmarks/gate_usage.py runs/jsb_srnn_avf_k1_x runs/jsb_srnn_avf_k1_x_lr1e-3
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from avf.filtering import filter_sequences
from avf.runs import restore, run_config, split_data


def gate_usage(run_dir: Path, data_dir: str | None, sequences: int) -> dict[str, float]:
    cfg = run_config(run_dir)
    model, inference, _, ckpt = restore(cfg, run_dir, "best")
    if getattr(inference, "gate", None) is None:
        raise ValueError(f"{run_dir}: the inference procedure has no highway gate")
    gates: list[torch.Tensor] = []
    inference.gate.register_forward_hook(
        lambda _module, _inputs, out: gates.append(torch.sigmoid(out).mean(0)))
    x, mask = next(iter(split_data(cfg, "valid", data_dir).batches(sequences)))
    torch.manual_seed(0)
    with torch.no_grad():
        out = filter_sequences(model, inference, x, mask)
    gate = torch.stack(gates).mean(0)
    half = gate.shape[0] // 2
    trace = out.trace.sum((0, 1)) / out.steps
    return {"run": str(run_dir), "epoch": int(ckpt["epoch"]),
            "gate_mean": float(gate[:half].mean()), "gate_log_var": float(gate[half:].mean()),
            "kl": float(out.kl.sum() / out.steps), "free_energy_before": float(trace[0]),
            "free_energy_after": float(trace[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data-dir")
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [gate_usage(run, args.data_dir, args.sequences) for run in args.runs]
    print("| run | epoch | gate (mean) | gate (log-var) | KL | F before update | F after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {Path(r['run']).name} | {r['epoch']} | {r['gate_mean']:.3f} | "
              f"{r['gate_log_var']:.3f} | {r['kl']:.3f} | {r['free_energy_before']:.3f} | "
              f"{r['free_energy_after']:.3f} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

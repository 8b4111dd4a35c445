"""Inference alone on a trained model: how close does a new procedure get to the run's own?

Loads a run's model (θ, fixed) and its inference procedure, builds another procedure from a
config, trains only that one on the run's training data and scores both (and the prior) on the
validation split after every epoch. This separates "the inference model cannot fit" from "joint
training settles on a model that uses the latent little".

    python benchmarks/fixed_model_inference.py runs/fsdd_vrnn_baseline \\
        experiments/speech/fsdd_vrnn_avf_k1.toml --epochs 5 --set encoding=layernorm
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from avf.builders import build_inference, observation_size
from avf.config import load_config, parse_value
from avf.datasets import build_training_data
from avf.evaluation import evaluate
from avf.inference import PriorOnly
from avf.runs import restore, weights_used
from avf.training import TrainConfig, Trainer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a trained run (its best.pt is loaded)")
    parser.add_argument("config", type=Path, help="config whose [inference] is trained")
    parser.add_argument("--set", dest="options", action="append", default=[],
                        metavar="KEY=VALUE", help="override an [inference.options] entry")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--grad-clip", type=float, default=None)
    parser.add_argument("--data-dir", help="data directory (default: $AVF_DATA_DIR)")
    parser.add_argument("--weights", choices=("average", "trained"), default="average",
                        help="with training.ema_decay, fix the model at its weight average "
                        "(default, the weights validation chose by) or at the raw weights")
    parser.add_argument("--json", type=Path, help="write the scores here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    cfg = load_config(args.run_dir / "config.toml")
    model, own, _, ckpt = restore(cfg, args.run_dir, "best", args.weights)
    train, valid = build_training_data(cfg, args.data_dir)
    other = load_config(args.config).inference
    options = dict(other.options)
    for item in args.options:
        key, _, text = item.partition("=")
        options[key.strip()] = parse_value(text.strip())
    inference = build_inference(dataclasses.replace(other, options=options), model,
                                observation_size(model))

    def score(procedure: torch.nn.Module) -> float:
        torch.manual_seed(0)
        return evaluate(model, procedure, valid.batches(64)).free_energy

    result = {"run": str(args.run_dir), "config": str(args.config), "options": options,
              "weights": weights_used(ckpt, args.weights),
              "own_inference": score(own), "prior": score(PriorOnly()), "epochs": []}
    print(f"valid F with the run's own inference: {result['own_inference']:.2f}; "
          f"at the prior: {result['prior']:.4g}")
    settings = TrainConfig(epochs=0, batch_size=cfg.training.batch_size, inference_lr=args.lr,
                           grad_clip=args.grad_clip, train_model=False, progress=False)
    trainer = Trainer(model, inference, settings)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        trainer.config = dataclasses.replace(settings, epochs=epoch)
        trainer.fit(train, None)
        value = score(inference)
        result["epochs"].append({"epoch": epoch, "valid_free_energy": value,
                                 "seconds": time.perf_counter() - start})
        print(f"epoch {epoch}: valid F {value:.4g} ({time.perf_counter() - start:.0f} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

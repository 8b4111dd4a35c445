"""The ``avf`` command: train from a config file, evaluate a run, run the demo.

A run directory is self-describing: ``config.toml`` (the resolved config) plus checkpoints, so
``avf evaluate RUN_DIR`` rebuilds everything from it. Mistakes in configs and paths are
reported as one line on stderr with exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avf.builders import SPLITS, build_datasets, build_inference, build_model, observation_size
from avf.config import ExperimentConfig, load_config, save_config
from avf.data import Sequences
from avf.evaluation import Score, evaluate
from avf.training import BEST, CHECKPOINT, Trainer, load_weights
from avf.validation import NonFiniteError

USER_ERRORS = (OSError, ValueError, TypeError)
CONFIG_NAME = "config.toml"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``avf`` console script; returns the exit status."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if extra and args.command != "demo":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "train":
            return train(args)
        if args.command == "evaluate":
            return evaluate_run(args)
        if args.command == "data":
            return manage_data(args)
        return demo(args, extra)
    except NonFiniteError as err:
        if args.debug:
            raise
        _error(err)
        return 1
    except USER_ERRORS as err:
        if args.debug:
            raise
        _error(err)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avf", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("train", parents=[common], help="train from a TOML config")
    p.add_argument("config", type=Path, help="experiment config (TOML)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. training.epochs=3 (repeatable)")
    p.add_argument("--run-dir", type=Path, help="where to write the run (default runs/NAME)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's device)")
    p.add_argument("--epochs", type=int, help="shortcut for --set training.epochs=N")

    p = sub.add_parser("evaluate", parents=[common], help="score a trained run")
    p.add_argument("run_dir", type=Path, help="a directory written by `avf train`")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's device)")
    p.add_argument("--samples", type=int, default=1, help="samples per step for the estimate")

    # no -h of its own: ``avf demo --help`` reaches the demo's parser with the other options
    p = sub.add_parser("demo", parents=[common], add_help=False,
                       help="the demo (options: avf demo --help)")
    p.add_argument("--quick", action="store_true", help="a short version")
    p.add_argument("--out", help="output directory")

    p = sub.add_parser("data", parents=[common], help="list, verify or download data files")
    actions = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    for name, text in (("list", "known data files and whether they are here"),
                       ("verify", "check the files here against their SHA-256"),
                       ("download", "fetch data files (all, or the NAMEs given)")):
        q = actions.add_parser(name, parents=[common], help=text)
        if name == "download":
            q.add_argument("names", nargs="*", metavar="NAME",
                           help="a data set (jsb, nottingham, musedata, piano) or a file name")
        q.add_argument("--data-dir", help="data directory (default: $AVF_DATA_DIR, else "
                       "~/.cache/avf)")
    return parser


# -- train ------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"training.epochs={args.epochs}")
    cfg = load_config(args.config, overrides)
    if args.device is not None:
        cfg.device = args.device
    device = resolve_device(cfg.device)
    run_dir = args.run_dir if args.run_dir is not None else Path("runs") / cfg.name
    data = build_datasets(cfg)
    model, inference = build(cfg)
    save_config(cfg, run_dir / CONFIG_NAME)
    print(f"training {cfg.name}: {cfg.model.name} model, {cfg.inference.name} inference, "
          f"{len(data['train'])} training sequences -> {run_dir}")
    history = Trainer(model, inference, cfg.training, run_dir, device).fit(
        data["train"], data["valid"])
    last = next((r for r in reversed(history) if "valid_free_energy" in r), None)
    if last is None:
        print("no validation set (data.valid_sequences = 0)")
    else:
        print(f"validation after epoch {last['epoch']}: free energy "
              f"{last['valid_free_energy']:.4f} nats/step (micro), "
              f"{last['valid_macro_free_energy']:.4f} (macro); "
              f"recon {last['valid_recon']:.4f}, KL {last['valid_kl']:.4f}")
    return 0


def build(cfg: ExperimentConfig) -> tuple[nn.Module, nn.Module]:
    """Model and inference, initialised from ``cfg.seed`` (the same every time)."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model)
    inference = build_inference(cfg.inference, model, observation_size(model))
    return model, inference


def resolve_device(name: str) -> torch.device:
    """The device named, or a ``ValueError`` saying why it cannot be used."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r} (use cpu, cuda or cuda:N)")
    return device


# -- evaluate ---------------------------------------------------------------------------------
def evaluate_run(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    config_path = run_dir / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {run_dir} (is it a run directory?)")
    cfg = load_config(config_path)
    device = resolve_device(args.device if args.device is not None else cfg.device)
    if args.samples < 1:
        raise ValueError(f"--samples must be at least 1, got {args.samples}")
    data = build_datasets(cfg)[args.split]
    if data is None:
        raise ValueError(f"the {args.split} split is empty (data.{args.split}_sequences = 0)")
    model, inference = build(cfg)
    path = run_dir / (BEST if args.checkpoint == "best" else CHECKPOINT)
    if not path.is_file():
        hint = " (no validation improved yet; try --checkpoint last)" if args.checkpoint == \
            "best" else ""
        raise FileNotFoundError(f"no checkpoint {path}{hint}")
    ckpt = load_weights(path, model, inference)
    model, inference = model.to(device), inference.to(device)
    torch.manual_seed(cfg.seed)
    batches = ((x.to(device), m.to(device)) for x, m in data.batches(cfg.training.batch_size))
    score = evaluate(model, inference, batches, n_samples=args.samples)
    report: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": path.name,
                              "epoch": int(ckpt["epoch"]), "split": args.split,
                              "samples": args.samples, **score.as_dict()}
    report.update(exact_answers(model, data))
    print(format_report(report, score))
    out = run_dir / f"eval_{args.split}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


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
    lines = [
        f"{report['run_dir']}: {report['checkpoint']} (epoch {report['epoch']}), "
        f"{report['split']} split: {score.sequences} sequences, {score.steps} steps",
        f"free energy: {score.free_energy:.4f} nats/step (micro), "
        f"{score.macro_free_energy:.4f} (macro)",
        f"  reconstruction {score.recon:.4f}, KL {score.kl:.4f}",
    ]
    if "optimal_free_energy" in report:
        optimum = report["optimal_free_energy"]
        lines.append(f"filtering optimum F*: {optimum:.4f} nats/step "
                     f"(gap {score.free_energy - optimum:+.4f})")
        lines.append(f"exact -log p(x)/T (Kalman): {report['exact_nll']:.4f} nats/step")
    return "\n".join(lines)


# -- demo -------------------------------------------------------------------------------------
def demo(args: argparse.Namespace, extra: list[str]) -> int:
    from avf.demo import main as demo_main

    argv = (["--quick"] if args.quick else []) + (["--out", args.out] if args.out else [])
    result = demo_main([*argv, *extra])
    return int(result) if isinstance(result, int) else 0


# -- data -------------------------------------------------------------------------------------
def manage_data(args: argparse.Namespace) -> int:
    """``avf data list|verify|download``: exit status 1 when a file here has the wrong hash."""
    from avf.data import datadir

    root = datadir.resolve_data_dir(args.data_dir)
    # unknown names fail before anything is printed or downloaded
    entries = datadir.known_files(getattr(args, "names", ()))
    print(f"data directory: {root} (from {datadir.data_dir_origin(args.data_dir)})")
    if args.data_command == "download":
        for status in datadir.verify(root, [e.name for e in entries]):
            if status.status == "ok":
                print(f"present   {status.path}")
                continue
            print(f"fetching  {status.file.url}", flush=True)
            print(f"ok        {datadir.fetch(status.file, root)}")
        return 0
    statuses = datadir.verify(root)
    for s in statuses:
        entry = s.file
        if args.data_command == "list":
            print(f"{s.status:9s} {entry.dataset:11s} {entry.name:26s} {entry.size:>10,d} B  "
                  f"{entry.url}")
        else:
            found = f"  (SHA-256 {s.sha256})" if s.status == "mismatch" else ""
            print(f"{s.status:9s} {s.path}{found}")
    counts = {k: sum(s.status == k for s in statuses) for k in ("ok", "missing", "mismatch")}
    print(", ".join(f"{n} {k}" for k, n in counts.items()))
    if counts["missing"]:
        print("fetch missing files with `avf data download [NAME...]`, or copy them into "
              f"{root / 'polyphonic'}")
    return 1 if counts["mismatch"] else 0


def _error(err: BaseException) -> None:
    text = " ".join(str(err).split()) or type(err).__name__
    print(f"avf: error: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""``avf train``: a config file to a run directory, resumable and safe to interrupt."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TextIO

import torch
from torch import nn

from avf.cli.dry_run import dry_run
from avf.config import ExperimentConfig, config_changes, load_config, save_config
from avf.data.batching import Sequences
from avf.datasets import build_training_data, describe_training_data, with_bin_width
from avf.run_lock import exclusive_run_dir, training_process
from avf.runs import (
    CONFIG_NAME,
    build,
    resolve_device,
    run_config,
)
from avf.stopping import cut_epochs
from avf.training import (
    CHECKPOINT,
    RESUMED_FROM_CHECKPOINT,
    TrainData,
    Trainer,
    init_checkpoint,
    load_weights,
)


def train(args: argparse.Namespace) -> int:
    """``avf train``: build from the config, train (resuming the run directory if it holds
    a checkpoint) and say why training stopped."""
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"training.epochs={args.epochs}")
    if args.seed is not None:
        overrides += [f"seed={args.seed}", f"training.seed={args.seed}"]
    cfg = load_config(args.config, overrides)
    if args.device is not None:
        cfg.device = args.device
    device = resolve_device(cfg.device)
    run_dir = args.run_dir if args.run_dir is not None else Path("runs") / cfg.name
    train_data, valid = build_training_data(cfg, args.data_dir)
    cfg = with_bin_width(cfg, args.data_dir)
    model, inference = build(cfg)
    if args.dry_run:
        resuming = (run_dir / CHECKPOINT).is_file()
        if resuming:
            cfg = _check_resume(cfg, model, inference, run_dir, dry_run=True)
        else:
            _check_init(cfg, model, inference, sys.stderr)
        pid = training_process(run_dir)
        if pid is not None:
            print(f"note: {run_dir} is being trained now (pid {pid or 'unknown'})",
                  file=sys.stderr)
        return dry_run(cfg, model, inference, train_data, valid, run_dir, resuming, device)
    with exclusive_run_dir(run_dir):  # before config.toml of a run being trained is rewritten
        return _train(args, cfg, model, inference, train_data, valid, run_dir, device)


def _train(args: argparse.Namespace, cfg: ExperimentConfig, model: nn.Module,
           inference: nn.Module, train_data: TrainData, valid: Sequences | None,
           run_dir: Path, device: torch.device) -> int:
    if (run_dir / CHECKPOINT).is_file():
        cfg = _check_resume(cfg, model, inference, run_dir)
    else:
        _check_init(cfg, model, inference, sys.stdout)  # before the run directory is written
    save_config(cfg, run_dir / CONFIG_NAME)
    print(f"training {cfg.name}: {cfg.model.name} model, {cfg.inference.name} inference, "
          f"{describe_training_data(train_data)} -> {run_dir}")
    time_limit = None if args.time_limit is None else 60.0 * args.time_limit
    trainer = Trainer(model, inference, cfg.training, run_dir, device)
    try:
        history = trainer.fit(train_data, valid, time_limit=time_limit)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"avf: interrupted in epoch {trainer.epoch + 1}; {_resume_point(trainer, run_dir)}",
              file=sys.stderr)
        return 130
    stop_reason = trainer.stop_reason()
    if stop_reason == "plateau_max_cuts":
        print(f"stopped early after epoch {trainer.epoch}: a plateau after "
              f"{cfg.training.plateau_max_cuts} learning-rate cut(s) (training.plateau_max_cuts)")
    elif stop_reason == "plateau_without_gain":
        print(f"stopped early after epoch {trainer.epoch}: a plateau after a learning-rate cut "
              "that brought no new best (training.plateau_stop_without_gain)")
    elif stop_reason == "patience":
        print(f"stopped early after epoch {trainer.epoch}: {cfg.training.patience} validations "
              "without a new best")
    elif trainer.epoch < cfg.training.epochs:
        print(f"stopped at the time limit after epoch {trainer.epoch} of "
              f"{cfg.training.epochs}; run the same command to resume")
    cuts, divergences = cut_epochs(history)
    if cuts:
        print(f"learning rates cut by {cfg.training.plateau_factor:g} after epoch(s) "
              f"{', '.join(map(str, cuts))} (training.plateau_patience)")
    for record in history:
        if record["epoch"] in divergences:
            print(f"learning rates cut by {cfg.training.plateau_factor:g} from the best weights "
                  f"in epoch {record['epoch']} after a divergence (training.divergence_cuts): "
                  f"{record['divergence']}")
    last = next((r for r in reversed(history) if "valid_free_energy" in r), None)
    if last is None:
        print("no validation set (data.valid_sequences = 0)")
    else:
        print(f"validation after epoch {last['epoch']}: free energy "
              f"{last['valid_free_energy']:.4f} nats/step (micro), "
              f"{last['valid_macro_free_energy']:.4f} (macro); "
              f"recon {last['valid_recon']:.4f}, KL {last['valid_kl']:.4f}")
    return 0


def _check_resume(cfg: ExperimentConfig, model: nn.Module, inference: nn.Module,
                  run_dir: Path, dry_run: bool = False) -> ExperimentConfig:
    """The config to resume ``run_dir`` with, checked before ``config.toml`` is rewritten.

    Says which epoch the run goes on from: a run killed between checkpoints repeats the
    epochs after the last one, and a user should not mistake a resumed run for a fresh one.

    The checkpoint must fit the new config's networks, else the run directory would describe a
    model its weights do not fit. Changed settings are listed. Those a resumed run takes from
    its checkpoint (learning rates, their decay, seeds) keep the run's values, so that
    ``config.toml`` says what the run really uses.
    """
    try:
        ckpt = load_weights(run_dir / CHECKPOINT, model, inference)
    except ValueError as err:
        raise ValueError(f"{err} {run_dir} keeps its config.toml as it was; to start a new "
                         "run with this config, give another --run-dir") from err
    verb = "would resume" if dry_run else "resuming"
    out = sys.stderr if dry_run else sys.stdout  # a dry run's stdout is the config alone
    print(f"{verb} {run_dir} from its checkpoint of epoch {int(ckpt['epoch'])} "
          f"({float(ckpt['wall_time']) / 60:.1f} min of training so far)", file=out)
    try:
        old = run_config(run_dir)
    except (OSError, ValueError):  # no readable old config: nothing to compare with
        return cfg
    changes = config_changes(old, cfg)
    kept = {"seed", *(f"training.{key}" for key in RESUMED_FROM_CHECKPOINT)}
    applied = [f"{key}: {change}" for key, change in changes.items() if key not in kept]
    ignored = [f"{key}: {change}" for key, change in changes.items() if key in kept]
    if applied:
        print(f"{verb} {run_dir} with changed settings: {'; '.join(applied)}", file=out)
    if ignored:
        print(f"not applied when resuming {run_dir} (the checkpoint's weights, learning "
              f"rates, their schedule and random state go on; config.toml keeps the run's "
              f"values): "
              f"{'; '.join(ignored)}", file=sys.stderr)
    training = dataclasses.replace(cfg.training, **{
        key: getattr(old.training, key) for key in RESUMED_FROM_CHECKPOINT})
    return dataclasses.replace(cfg, seed=old.seed, training=training)


def _check_init(cfg: ExperimentConfig, model: nn.Module, inference: nn.Module,
                out: TextIO) -> None:
    """With ``training.init_from``, load its weights now (the trainer loads them again when
    it starts), so that a missing file or weights that do not fit are refused before the run
    directory is written, and say where the run starts from."""
    if cfg.training.init_from is None:
        return
    path = init_checkpoint(cfg.training.init_from)
    ckpt = load_weights(path, model, inference, averaged=True)
    averaged = ", weight average" if ckpt.get("average") else ""
    print(f"starting from the weights of {path} (epoch {int(ckpt['epoch'])}{averaged}; "
          "training.init_from)", file=out)


def _resume_point(trainer: Trainer, run_dir: Path) -> str:
    """Where the same command would continue from: epochs after the checkpoint are lost."""
    saved = trainer.checkpoint_epoch
    if saved is None:
        return (f"no checkpoint was written yet (every {trainer.config.checkpoint_every} "
                "epoch(s)), so the same command starts over")
    lost = trainer.epoch - saved
    tail = f"; the {lost} epoch(s) after it will run again" if lost else ""
    return (f"{run_dir / CHECKPOINT} holds epoch {saved}: run the same command to continue "
            f"from there{tail}")

"""The ``avf`` command: train from a config file, evaluate or plot a run, run the demo.

A run directory is self-describing: ``config.toml`` (the resolved config) plus checkpoints, so
``avf evaluate RUN_DIR`` and ``avf plot RUN_DIR`` rebuild everything from it. Real data are not
part of a run: they come from ``--data-dir``, else ``$AVF_DATA_DIR``, else the default folder.
Mistakes in configs and paths, and a missing optional dependency, are reported as one line on
stderr with exit status 2; ``--debug`` shows the traceback instead. Ctrl-C ends any command
with status 130 and, for ``avf train``, says which epoch the run directory's checkpoint holds.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from avf import __version__
from avf.builders import (
    SPLITS,
    build_training_data,
    with_bin_width,
)
from avf.config import MUSIC_CROP, ExperimentConfig, config_changes, load_config, save_config
from avf.data import Sequences
from avf.evaluation import Score, evaluate, particle_score
from avf.runs import CONFIG_NAME, build, restore, run_config, split_data, weights_used
from avf.training import (
    CHECKPOINT,
    METRICS,
    RESUMED_FROM_CHECKPOINT,
    Trainer,
    load_weights,
)
from avf.validation import NonFiniteError

USER_ERRORS = (OSError, ValueError, TypeError, ImportError)


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
        if args.command == "plot":
            return plot_run(args)
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
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("avf: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avf", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action="version",
                        version=f"avf {__version__} (torch {torch.__version__})")
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
    p.add_argument("--time-limit", type=float, metavar="MINUTES",
                   help="stop after the epoch that ends past this many minutes, with a "
                   "checkpoint; the same command resumes")
    _data_dir_option(p)

    p = sub.add_parser("evaluate", parents=[common], help="score a trained run")
    p.add_argument("run_dir", type=Path, help="a directory written by `avf train`")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    _weights_option(p)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: the config's device)")
    p.add_argument("--samples", type=int, default=1, help="samples per step for the estimate")
    p.add_argument("--batch-size", type=int, metavar="N", help="sequences filtered together "
                   "(default: the run's training batch size; larger is faster on a GPU and "
                   "does not change the score's expectation)")
    p.add_argument("--particles", type=int, default=0, metavar="N",
                   help="also estimate -log p(x) per step with a particle filter of N "
                   "particles that proposes from the run's inference (0: off; cost grows "
                   "as batch size x N)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr)")
    _data_dir_option(p)

    p = sub.add_parser("plot", parents=[common], help="learning curves, free energy per "
                       "inference iteration, and one sequence of a run")
    p.add_argument("run_dir", type=Path, help="a directory written by `avf train`")
    p.add_argument("--out", type=Path, help="where to write the PNGs (default RUN_DIR/plots)")
    p.add_argument("--split", choices=SPLITS, default="test")
    p.add_argument("--song", type=int, default=0, metavar="N",
                   help="which sequence of the split to draw (default 0)")
    p.add_argument("--sequences", type=int, default=16, metavar="N",
                   help="sequences behind the per-iteration free energy (default 16)")
    p.add_argument("--max-steps", type=int, default=400, metavar="T",
                   help="draw at most the first T steps of the sequence (0: all; default 400)")
    p.add_argument("--checkpoint", choices=("best", "last"), default="best")
    _weights_option(p)
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
    _data_dir_option(p)

    # no -h of its own: ``avf demo --help`` reaches the demo's parser with the other options
    p = sub.add_parser("demo", parents=[common], add_help=False,
                       help="the demo (options: avf demo --help)")
    p.add_argument("--quick", action="store_true", help="a short version")
    p.add_argument("--out", help="output directory")

    p = sub.add_parser("data", parents=[common], help="list, verify or download data files; "
                       "import MIDI files")
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
    q = actions.add_parser("midi", parents=[common], help="turn a folder of your own MIDI files "
                           "into a music data set (JSON) for [data] dataset")
    q.add_argument("folder", help="MIDI files (.mid, .midi), searched recursively; subfolders "
                   "train/, valid/, test/ are used as the split when present")
    q.add_argument("--out", required=True, help="JSON file to write")
    q.add_argument("--valid-fraction", type=float, default=0.1,
                   help="share of the songs held out for validation (default 0.1)")
    q.add_argument("--test-fraction", type=float, default=0.1,
                   help="share of the songs held out for testing (default 0.1)")
    q.add_argument("--seed", type=int, default=0, help="draws the random split (default 0)")
    q.add_argument("--steps-per-quarter", type=int, default=1,
                   help="time steps per quarter note (default 1, as in the four sets)")
    q.add_argument("--drums", action="store_true", help="keep channel 10 (drums)")
    q.add_argument("--drop-out-of-range", action="store_true",
                   help="skip notes off the 88 piano keys instead of stopping with an error")
    q.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return parser


def _weights_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", choices=("average", "trained"), default="average",
                   help="with training.ema_decay, score the weight average (default; the weights "
                   "validation chose by) or the raw trained weights; without it both are raw")


def _data_dir_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data directory for real data sets (default: "
                   "$AVF_DATA_DIR, else ~/.cache/avf)")


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
    train_data, valid = build_training_data(cfg, args.data_dir)
    cfg = with_bin_width(cfg, args.data_dir)
    model, inference = build(cfg)
    if (run_dir / CHECKPOINT).is_file():
        cfg = _check_resume(cfg, model, inference, run_dir)
    save_config(cfg, run_dir / CONFIG_NAME)
    fresh = " (fresh every epoch)" if not isinstance(train_data, Sequences) else ""
    print(f"training {cfg.name}: {cfg.model.name} model, {cfg.inference.name} inference, "
          f"{len(train_data)} training sequences{fresh} -> {run_dir}")
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
    elif stop_reason == "patience":
        print(f"stopped early after epoch {trainer.epoch}: {cfg.training.patience} validations "
              "without a new best")
    elif trainer.epoch < cfg.training.epochs:
        print(f"stopped at the time limit after epoch {trainer.epoch} of "
              f"{cfg.training.epochs}; run the same command to resume")
    cuts = [str(r["epoch"]) for r in history if r.get("lr_cut")]
    if cuts:
        print(f"learning rates cut by {cfg.training.plateau_factor:g} after epoch(s) "
              f"{', '.join(cuts)} (training.plateau_patience)")
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
                  run_dir: Path) -> ExperimentConfig:
    """The config to resume ``run_dir`` with, checked before ``config.toml`` is rewritten.

    The checkpoint must fit the new config's networks, else the run directory would describe a
    model its weights do not fit. Changed settings are listed. Those a resumed run takes from
    its checkpoint (learning rates, their decay, seeds) keep the run's values, so that
    ``config.toml`` says what the run really uses.
    """
    try:
        load_weights(run_dir / CHECKPOINT, model, inference)
    except ValueError as err:
        raise ValueError(f"{err} {run_dir} keeps its config.toml as it was; to start a new "
                         "run with this config, give another --run-dir") from err
    try:
        old = run_config(run_dir)
    except (OSError, ValueError):  # no readable old config: nothing to compare with
        return cfg
    changes = config_changes(old, cfg)
    kept = {"seed", *(f"training.{key}" for key in RESUMED_FROM_CHECKPOINT)}
    applied = [f"{key}: {change}" for key, change in changes.items() if key not in kept]
    ignored = [f"{key}: {change}" for key, change in changes.items() if key in kept]
    if applied:
        print(f"resuming {run_dir} with changed settings: {'; '.join(applied)}")
    if ignored:
        print(f"not applied when resuming {run_dir} (the checkpoint's learning rates, their "
              f"schedule and random state go on; config.toml keeps the run's values): "
              f"{'; '.join(ignored)}", file=sys.stderr)
    training = dataclasses.replace(cfg.training, **{
        key: getattr(old.training, key) for key in RESUMED_FROM_CHECKPOINT})
    return dataclasses.replace(cfg, seed=old.seed, training=training)


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
    data = split_data(cfg, args.split, args.data_dir)
    model, inference, path, ckpt = restore(cfg, run_dir, args.checkpoint, args.weights)
    model, inference = model.to(device), inference.to(device)
    torch.manual_seed(cfg.seed)
    score = evaluate(model, inference, _batches(data, batch_size, device, args, "scoring"),
                     n_samples=args.samples)
    report: dict[str, Any] = {"run_dir": str(run_dir), "checkpoint": path.name,
                              "epoch": int(ckpt["epoch"]), "split": args.split,
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
    out = run_dir / f"eval_{args.split}.json"
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


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
    lines = [
        f"{report['run_dir']}: {report['checkpoint']} (epoch {report['epoch']}"
        f"{', weight average' if report.get('weights') == 'average' else ''}), "
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


# -- plot -------------------------------------------------------------------------------------
def plot_run(args: argparse.Namespace) -> int:
    """``avf plot``: learning curves, free energy per inference iteration, one sequence."""
    from avf import plots

    plots.pyplot()  # a missing matplotlib fails before any work
    if args.sequences < 1:
        raise ValueError(f"--sequences must be at least 1, got {args.sequences}")
    if args.max_steps < 0:
        raise ValueError(f"--max-steps must be >= 0 (0: the whole sequence), got "
                         f"{args.max_steps}")
    run_dir: Path = args.run_dir
    cfg = run_config(run_dir)
    device = resolve_device(args.device if args.device is not None else "cpu")
    out: Path = args.out if args.out is not None else run_dir / "plots"
    data = split_data(cfg, args.split, args.data_dir)
    if not 0 <= args.song < len(data):
        raise ValueError(f"--song {args.song} is not in the {args.split} split "
                         f"(0 to {len(data) - 1})")
    written = [plots.plot_learning_curves(plots.read_metrics(run_dir / METRICS),
                                          out / "learning_curves.png", title=cfg.name)]
    model, inference, path, ckpt = restore(cfg, run_dir, args.checkpoint, args.weights)
    model, inference = model.to(device), inference.to(device)
    averaged = ", weight average" if weights_used(ckpt, args.weights) == "average" else ""
    where = f"{cfg.name}, {path.name} (epoch {int(ckpt['epoch'])}{averaged})"

    torch.manual_seed(cfg.seed)
    few = data.subset(range(min(args.sequences, len(data)))).to(device)
    trace = plots.iteration_trace(model, inference, few, cfg.training.batch_size)
    label = f"{cfg.inference.name} inference (K = {inference.iterations})"
    written.append(plots.plot_iterations(
        trace, out / "iterations.png", label,
        title=f"{where}: {len(few)} {args.split} sequences, {few.steps} steps"))

    song = data.subset([args.song])
    length = int(song.lengths[0])
    shown = length if args.max_steps == 0 else min(length, args.max_steps)
    view = plots.view_sequence(model, inference, song.x[0, :shown].to(device))
    title = (f"{where}: {args.split} sequence {args.song}, steps 0-{shown - 1} of {length}; "
             f"free energy {float(view.free_energy.mean()):.3f} nats/step")
    if cfg.data.source == "music":
        written.append(plots.plot_piano_roll(view, out / "piano_roll.png", title))
    elif cfg.data.source == "speech":
        from avf.builders import speech_data
        from avf.plots_av import plot_waveform

        speech = speech_data(cfg, args.data_dir)
        norm = speech.standardizer
        written.append(plot_waveform(view, out / "waveform.png", title,
                                     sample_rate=speech.sample_rate, scale=norm.std,
                                     offset=norm.mean))
    elif cfg.data.source == "video":
        written += _plot_video(model, inference, song.x[0, :length].to(device), view, out,
                               title)
    else:
        written.append(plots.plot_lines(view, out / "sequence.png", title))
    for item in written:
        print(f"wrote {item}")
    return 0


def _plot_video(model: nn.Module, inference: nn.Module, clip: torch.Tensor,
                view: Any, out: Path, title: str, context: int = 5, samples: int = 4) -> list[Path]:
    """A grid of frames (data, prediction, reconstruction) and sampled futures of ``clip``."""
    from avf.plots_av import plot_frames, plot_futures, sample_futures

    shape = tuple(clip.shape[1:])
    written = [plot_frames(view, shape, out / "frames.png", title)]
    context = min(context, clip.shape[0] - 1)
    if context >= 1:
        horizon = clip.shape[0] - context
        torch.manual_seed(0)
        futures = sample_futures(model, inference, clip[:context], samples, horizon)
        written.append(plot_futures(clip[:context].cpu(), futures, clip[context:].cpu(),
                                    out / "futures.png",
                                    f"{title}\n{samples} futures sampled after {context} "
                                    "observed frames"))
    return written


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

    if args.data_command == "midi":
        return import_midi(args)
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
            print(f"ok        {datadir.fetch(status.file, root, progress=True)}")
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


def import_midi(args: argparse.Namespace) -> int:
    """``avf data midi FOLDER --out FILE``: one JSON file that fixes the songs and their split."""
    from avf.data.midi import load_midi_directory
    from avf.data.music import save_json

    out = Path(args.out).expanduser()
    if out.suffix.lower() != ".json":
        raise ValueError(f"--out must name a .json file (the layout `[data] dataset` reads), "
                         f"got {str(out)!r}")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    songs = load_midi_directory(
        args.folder, args.valid_fraction, args.test_fraction, args.seed,
        steps_per_quarter=args.steps_per_quarter, drums=args.drums,
        out_of_range="drop" if args.drop_out_of_range else "error", progress=True)
    save_json(songs, out)
    for split, rolls in songs.items():
        steps = sum(len(r) for r in rolls)
        short = sum(len(r) < MUSIC_CROP for r in rolls) if split != "test" else 0
        note = (f" ({short} shorter than {MUSIC_CROP} steps, which the default "
                f"{MUSIC_CROP}-step crops leave out)" if short else "")
        print(f"{split:5s} {len(rolls):5d} songs {steps:8d} steps{note}")
    print(f"wrote {out}; train on it with [data] source = \"music\", "
          f"dataset = \"{out.as_posix()}\"")
    return 0


def _error(err: BaseException) -> None:
    text = " ".join(str(err).split()) or type(err).__name__
    print(f"avf: error: {text}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

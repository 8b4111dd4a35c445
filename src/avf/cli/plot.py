"""``avf plot``: learning curves, free energy per inference iteration, and one sequence."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avf.checkpoints import METRICS
from avf.runs import (
    on_dataset,
    resolve_device,
    restore,
    run_config,
    split_data,
    weights_used,
)


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
    scored, label = on_dataset(cfg, args.dataset)
    # another data set's pictures go beside the run's own, not over them
    default_out = run_dir / ("plots" if label is None else f"plots_on_{label}")
    out: Path = args.out if args.out is not None else default_out
    data = split_data(scored, args.split, args.data_dir)
    split = f"{args.split} split" + ("" if label is None else f" of {args.dataset}")
    if not 0 <= args.song < len(data):
        raise ValueError(f"--song {args.song} is not in the {split} (0 to {len(data) - 1})")
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
        title=f"{where}: {len(few)} sequences of the {split}, {few.steps} steps"))

    song = data.subset([args.song])
    length = int(song.lengths[0])
    shown = length if args.max_steps == 0 else min(length, args.max_steps)
    view = plots.view_sequence(model, inference, song.x[0, :shown].to(device))
    title = (f"{where}: {split}, sequence {args.song}, steps 0-{shown - 1} of {length}; "
             f"free energy {float(view.free_energy.mean()):.3f} nats/step")
    if cfg.data.source == "music":
        written.append(plots.plot_piano_roll(view, out / "piano_roll.png", title))
    elif cfg.data.source == "speech":
        from avf.datasets import speech_data
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

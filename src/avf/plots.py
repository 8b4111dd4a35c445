"""Pictures of a run: learning curves, free energy per inference iteration, and one sequence.

The sequence view shows what filtering does at each step: the model's prediction of x_t from the
prior (before x_t is seen) and its reconstruction after inference, next to the data. For music
it is a piano roll. matplotlib is an optional dependency (``pip install avf[plot]``), imported
only when something is drawn, on the Agg backend so that plots work without a display.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from avf.data import Sequences
from avf.evaluation import evaluate
from avf.inference.base import InferenceProcedure
from avf.stopping import cut_epochs
from avf.streaming import StreamingFilter

TERMS = (("free_energy", "free energy"), ("recon", "reconstruction"), ("kl", "KL"))
LOWEST_KEY = 21  # MIDI note of piano-roll column 0 (avf.data.music)


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend; an ``ImportError`` saying how to get it."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError("plotting needs matplotlib, an optional dependency: "
                          "pip install 'avf[plot]' (or pip install matplotlib)") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# -- learning curves --------------------------------------------------------------------------
def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``, one per epoch."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file {path} (has the run finished an epoch?)")
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        return [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a metrics log (one JSON object per line): {err}") from err


def plot_learning_curves(records: Sequence[dict[str, Any]], path: str | Path,
                         title: str = "") -> Path:
    """Train and valid free energy, reconstruction and KL (nats/step, β = 1) against epoch,
    with the epochs that cut the learning rates marked (grey: a plateau, red: a divergence)."""
    if not records:
        raise ValueError("no epochs in the metrics log yet: nothing to plot")
    plt = pyplot()
    fig, axes = plt.subplots(1, len(TERMS), figsize=(5 * len(TERMS), 3.8))
    cuts, divergences = cut_epochs(records)
    for ax, (key, label) in zip(axes, TERMS, strict=True):
        for split, marker in (("train", "." if len(records) <= 50 else None), ("valid", "o")):
            points = curve_points(records, split, key)
            if points:
                ax.plot(*zip(*points, strict=True), label=split, marker=marker, ms=3, lw=1)
        for epochs, color, style, name in ((cuts, "grey", ":", "lr cut"),
                                           (divergences, "red", "--", "divergence, lr cut")):
            for i, epoch in enumerate(epochs):
                ax.axvline(epoch, color=color, ls=style, lw=0.8, label=None if i else name)
        ax.ticklabel_format(axis="both", useOffset=False)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{label} (nats / step)")
        ax.set_title(label)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path)


def curve_points(records: Sequence[dict[str, Any]], split: str,
                 key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of one curve. The training average of an epoch with a divergence is
    left out: the batches before the cut can reach 10¹⁸ nats/step, which would flatten every
    other epoch into one line; the epoch is marked instead."""
    return [(r["epoch"], r[f"{split}_{key}"]) for r in records
            if r.get(f"{split}_{key}") is not None
            and not (split == "train" and r.get("divergence"))]


def plot_run_comparison(curves: dict[str, Sequence[dict[str, Any]]], path: str | Path) -> Path:
    """Validation and training free energy against epoch, one line per run, the best
    validation marked: runs side by side, as their metrics logs hold them.

    Early epochs sit far above the rest (tens of nats/step at first on music), so the y-axis
    ends at the upper quartile of the values shown, where the curves can be told apart.
    """
    if not curves:
        raise ValueError("no runs to compare")
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, split in zip(axes, ("valid", "train"), strict=True):
        shown: list[float] = []
        for label, records in curves.items():
            points = [(r["epoch"], r[f"{split}_free_energy"]) for r in records
                      if r.get(f"{split}_free_energy") is not None]
            if not points:
                continue
            (line,) = ax.plot(*zip(*points, strict=True), lw=1, label=label)
            shown += [value for _, value in points]
            if split == "valid":
                epoch, value = min(points, key=lambda point: point[1])
                ax.plot([epoch], [value], "o", ms=4, color=line.get_color())
        if shown:
            low, top = min(shown), float(torch.tensor(shown).quantile(0.75))
            ax.set_ylim(low - 0.05 * (top - low), top + 1e-9)
        ax.ticklabel_format(axis="both", useOffset=False)
        ax.set_xlabel("epoch")
        ax.set_ylabel("free energy (nats / step)")
        ax.set_title(f"{split} (dot: best validation)" if split == "valid" else split)
    axes[0].legend(fontsize=7)
    return _save(plt, fig, path)

# -- free energy per inference iteration ------------------------------------------------------
def iteration_trace(model: nn.Module, inference: InferenceProcedure, data: Sequences,
                    batch_size: int) -> list[float]:
    """Free energy after each inference iteration, micro-averaged over ``data``.

    Entry 0 is the prior's prediction for iterative procedures; a direct encoder has one entry.
    """
    return evaluate(model, inference, data.batches(batch_size)).trace


def plot_iterations(trace: Sequence[float], path: str | Path, label: str,
                    title: str = "") -> Path:
    """Free energy (nats/step) against inference iteration; one value is drawn as a level."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    if len(trace) == 1:
        ax.axhline(trace[0], ls="--", label=f"{label} (one pass)")
        ax.set_xticks([])
    else:
        ax.plot(range(len(trace)), trace, marker="o", label=label)
        ax.set_xticks(range(len(trace)))
        ax.set_xlabel("inference iteration (0 = the prior's prediction)")
    ax.set_ylabel("free energy (nats / step)")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.legend(fontsize=8)
    ax.set_title(title or "free energy per inference iteration", fontsize=9)
    return _save(plt, fig, path)


# -- one sequence -----------------------------------------------------------------------------
@dataclass
class SequenceView:
    """One sequence, step by step, flattened to [T, D]; ``free_energy`` is per step, [T]."""

    data: Tensor
    prediction: Tensor  # likelihood mean at the prior mean of z_t: before x_t is seen
    reconstruction: Tensor  # likelihood mean at the posterior mean of z_t: after inference
    free_energy: Tensor


def view_sequence(model: nn.Module, inference: InferenceProcedure, x: Tensor) -> SequenceView:
    """Filter one sequence x [T, ...] online and record the prediction and reconstruction.

    Uses the streaming filter, so the model sees x one step at a time as in deployment.
    """
    model.eval()
    inference.eval()
    stream = StreamingFilter(model, inference, batch_size=1)
    rows: dict[str, list[Tensor]] = {"prediction": [], "reconstruction": [], "free_energy": []}
    for t in range(x.shape[0]):
        state = stream.state  # the state step t starts from (each step makes a new one)
        with torch.no_grad():
            prior_mean = model.prior(state).mean
            rows["prediction"].append(model.likelihood(prior_mean, state).mean)
        step = stream.step(x[t:t + 1])
        with torch.no_grad():
            posterior_mean = inference.family.distribution(step.params).mean
            rows["reconstruction"].append(model.likelihood(posterior_mean, state).mean)
        rows["free_energy"].append(step.free_energy)
    flat = {k: torch.cat(v).reshape(x.shape[0], -1).cpu() for k, v in rows.items()}
    return SequenceView(x.reshape(x.shape[0], -1).cpu().float(), flat["prediction"],
                        flat["reconstruction"], flat["free_energy"].reshape(-1))


def plot_piano_roll(view: SequenceView, path: str | Path, title: str = "") -> Path:
    """Data, prediction and reconstruction as three stacked piano rolls (time →, keys ↑).

    The keys shown are those the data or the model use, and the notes played are outlined in
    red on the model's panels, so misses and false alarms stand out.
    """
    plt = pyplot()
    steps = view.data.shape[0]
    lo, hi = _key_range(view)
    panels = (("data", view.data),
              ("prediction from the prior (before x_t is seen)", view.prediction),
              ("reconstruction after inference (posterior mean)", view.reconstruction))
    fig, axes = plt.subplots(3, 1, sharex=True, constrained_layout=True,
                             figsize=(min(max(8.0, steps / 12), 24.0), 9))
    played_t, played_k = view.data[:, lo:hi + 1].nonzero(as_tuple=True)
    image = None
    for i, (ax, (label, roll)) in enumerate(zip(axes, panels, strict=True)):
        image = ax.imshow(roll[:, lo:hi + 1].T.numpy(), aspect="auto", origin="lower",
                          cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
                          extent=(-0.5, steps - 0.5, lo + LOWEST_KEY - 0.5,
                                  hi + LOWEST_KEY + 0.5))
        if i > 0 and len(played_t):
            ax.scatter(played_t.numpy(), (played_k + lo + LOWEST_KEY).numpy(), s=6,
                       marker="s", facecolors="none", edgecolors="tab:red", linewidths=0.5)
        ax.set_ylabel("MIDI note")
        ax.set_title(label, fontsize=9)
    axes[-1].set_xlabel("time step")
    fig.colorbar(image, ax=list(axes), label="P(key down)", shrink=0.6)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path, tight=False)


def plot_lines(view: SequenceView, path: str | Path, title: str = "", max_dims: int = 4) -> Path:
    """Data, prediction and reconstruction as lines, one panel per dimension (the first few)."""
    plt = pyplot()
    dims = min(view.data.shape[1], max_dims)
    fig, axes = plt.subplots(dims, 1, sharex=True, figsize=(9, 2.2 * dims + 0.8), squeeze=False)
    steps = range(view.data.shape[0])
    for d, ax in enumerate(axes[:, 0]):
        ax.plot(steps, view.data[:, d].numpy(), "k.-", lw=0.8, label="data")
        ax.plot(steps, view.prediction[:, d].numpy(), "--", label="prediction from the prior")
        ax.plot(steps, view.reconstruction[:, d].numpy(), label="reconstruction after inference")
        ax.set_ylabel(f"x[{d}]")
    axes[0, 0].legend(fontsize=8)
    axes[-1, 0].set_xlabel("time step")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def _key_range(view: SequenceView, threshold: float = 0.2, margin: int = 2) -> tuple[int, int]:
    """First and last column that the data or a confident model output use, with a margin."""
    used = (view.data > 0) | (view.prediction > threshold) | (view.reconstruction > threshold)
    keys = used.any(0).nonzero().flatten()
    if len(keys) == 0:
        return 0, view.data.shape[1] - 1
    return (max(int(keys[0]) - margin, 0),
            min(int(keys[-1]) + margin, view.data.shape[1] - 1))


def _save(plt: Any, fig: Any, path: str | Path, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

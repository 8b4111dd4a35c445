"""Pictures of continuous sequences: waveforms for speech, frame grids and sampled futures for
video.

Like the piano roll, they show what filtering does at each step: the prediction of x_t from the
prior (before x_t is seen) and the reconstruction after inference, beside the data. For video,
the model is also run forward on its own after a few observed frames, to show the futures it
imagines. matplotlib is imported only when something is drawn (see :func:`avf.plots.pyplot`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from avf.inference.base import InferenceProcedure
from avf.plots import SequenceView, _save, pyplot
from avf.streaming import StreamingFilter


def plot_waveform(view: SequenceView, path: str | Path, title: str = "",
                  sample_rate: int | None = None, scale: float = 1.0, offset: float = 0.0) -> Path:
    """The utterance with the model's prediction and reconstruction, as waveforms.

    ``view`` holds frames [T, frame size]; they are joined back into one signal. ``scale`` and
    ``offset`` undo the standardisation (x · scale + offset) so the axis is the file's amplitude.
    The bottom panel shows the errors of both, which is where prediction and inference differ.
    """
    plt = pyplot()
    signals = {name: getattr(view, name).reshape(-1).double() * scale + offset
               for name in ("data", "prediction", "reconstruction")}
    n = signals["data"].shape[0]
    time = torch.arange(n, dtype=torch.float64)
    unit = "sample"
    if sample_rate:
        time, unit = time / sample_rate, "time (s)"
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(11, 7))
    axes[0].plot(time, signals["data"], "k", lw=0.6, label="data")
    axes[0].plot(time, signals["prediction"], lw=0.6, alpha=0.8,
                 label="prediction from the prior (before x_t is seen)")
    axes[1].plot(time, signals["data"], "k", lw=0.6, label="data")
    axes[1].plot(time, signals["reconstruction"], lw=0.6, alpha=0.8, color="tab:green",
                 label="reconstruction after inference (posterior mean)")
    axes[2].plot(time, signals["prediction"] - signals["data"], lw=0.5, alpha=0.8,
                 label="prediction error")
    axes[2].plot(time, signals["reconstruction"] - signals["data"], lw=0.5, alpha=0.8,
                 color="tab:green", label="reconstruction error")
    for ax in axes:
        ax.legend(fontsize=8, loc="upper right")
        ax.set_ylabel("amplitude")
    axes[-1].set_xlabel(unit)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(plt, fig, path)


def plot_frames(view: SequenceView, frame_shape: tuple[int, ...], path: str | Path,
                title: str = "", max_frames: int = 12) -> Path:
    """A grid of frames: data, prediction from the prior, reconstruction after inference."""
    rows = (("data", view.data), ("prediction", view.prediction),
            ("reconstruction", view.reconstruction))
    grid = [[_image(frames[t], frame_shape) for t in range(min(len(frames), max_frames))]
            for _, frames in rows]
    return _image_grid(grid, [label for label, _ in rows], path, title, first_step=0)


@torch.no_grad()
def sample_futures(model: nn.Module, inference: InferenceProcedure, context: Tensor,
                   samples: int, horizon: int) -> Tensor:
    """Filter ``context`` [T0, ...] then run the model on its own for ``horizon`` steps.

    Each of ``samples`` futures draws z_t from the prior and feeds the likelihood's mean back as
    the next observation. Returns the imagined frames [samples, horizon, ...].
    """
    if context.shape[0] < 1:
        raise ValueError("sample_futures needs at least one observed step as context")
    model.eval()
    inference.eval()
    stream = StreamingFilter(model, inference, batch_size=1)
    for t in range(context.shape[0]):
        stream.step(context[t:t + 1])
    return stream.forecast(horizon, samples, observations="mean").x[0].cpu()


def plot_futures(context: Tensor, futures: Tensor, truth: Tensor | None, path: str | Path,
                 title: str = "", max_frames: int = 12) -> Path:
    """Rows: the observed context then the true continuation, then one row per sampled future."""
    shape = tuple(context.shape[1:])
    observed = [_image(f, shape) for f in context]
    rows, labels = [], []
    if truth is not None:
        rows.append(observed + [_image(f, shape) for f in truth[:max_frames]])
        labels.append("data")
    for i, future in enumerate(futures):
        rows.append([None] * len(observed) + [_image(f, shape) for f in future[:max_frames]])
        labels.append(f"sample {i + 1}")
    return _image_grid(rows, labels, path, title, first_step=0,
                       divider=len(observed) - 0.5)


def _image(frame: Tensor, frame_shape: tuple[int, ...]) -> Tensor:
    """One frame as an [H, W] (grayscale) or [H, W, 3] image in [0, 1]."""
    image = frame.reshape(frame_shape).float().clamp(0, 1)
    if image.dim() == 3:
        image = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0)
    return image


def _image_grid(grid: list[list[Tensor | None]], labels: list[str], path: str | Path,
                title: str, first_step: int, divider: float | None = None) -> Path:
    plt = pyplot()
    cols = max(len(row) for row in grid)
    fig, axes = plt.subplots(len(grid), cols, squeeze=False,
                             figsize=(1.1 * cols + 1.2, 1.2 * len(grid) + 0.6))
    for r, row in enumerate(grid):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            image = row[c] if c < len(row) else None
            if image is None:
                ax.set_axis_off()
                continue
            ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if r == 0:
                ax.set_title(f"t={first_step + c}", fontsize=7)
            if c == 0 or (row[c - 1] is None):
                ax.set_ylabel(labels[r], fontsize=7)
            if divider is not None and c == int(divider + 0.5):
                ax.spines["left"].set_color("tab:red")
                ax.spines["left"].set_linewidth(2)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(plt, fig, path)

"""The files of a run directory and how to read a checkpoint's weights back.

``checkpoint.pt`` is what a run resumes from, ``best.pt`` the best validation's weights,
``metrics.jsonl`` one JSON line per epoch; :class:`avf.training.Trainer` writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
METRICS = "metrics.jsonl"


def init_checkpoint(source: str | Path) -> Path:
    """The checkpoint that ``training.init_from`` names: the file itself, or a run
    directory's ``best.pt`` (the weights its validation chose)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / BEST).is_file():
            raise FileNotFoundError(f"training.init_from: {path} has no {BEST} (no validation "
                                    f"improved there yet); name its {CHECKPOINT} instead")
        return path / BEST
    if not path.is_file():
        raise FileNotFoundError(f"training.init_from: no checkpoint or run directory at {path}")
    return path


def load_weights(path: str | Path, model: nn.Module, inference: nn.Module,
                 averaged: bool = False) -> dict[str, Any]:
    """Load a checkpoint's model and inference weights; returns the whole checkpoint.

    With ``averaged``, a part the checkpoint holds a weight average for (``training.ema_decay``)
    gets the averaged weights, the ones its validation scored; other parts get the raw ones.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for a damaged file
        raise ValueError(f"{path} is not a readable checkpoint: {err}") from err
    averages = (ckpt.get("average") or {}) if averaged else {}
    for name, module in (("model", model), ("inference", inference)):
        try:
            module.load_state_dict(averages[name]["weights"] if name in averages else ckpt[name])
        except (RuntimeError, KeyError) as err:
            first = str(err).strip().splitlines()[0]
            raise ValueError(f"{path}: the {name} weights do not fit this {name} ({first}); "
                             "was it built from a different config?") from err
    return ckpt

"""Copy a run's checkpoint into a new run directory with its validation history set aside.

For continuing a run on *different validation data* (e.g. ``data.crop_sampling`` changes the
valid windows): the old scores are not comparable with the new ones, and left in place they
would keep ``best.pt`` and the learning-rate cuts tied to a number the new validation cannot be
measured against. Each epoch's ``valid_free_energy`` is kept under
``valid_free_energy_before`` and ``best_valid`` is cleared, so the first new validation is the
best; weights, optimisers, averages, counters and RNG states are copied as they are, with the
run's ``config.toml``. Then ``avf train ... --run-dir DST`` continues with the new settings.

    python benchmarks/fresh_validation.py runs/musedata_srnn_baseline_fast runs/musedata_perstep
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch

from avf.atomic import atomic_write
from avf.runs import CONFIG_NAME
from avf.training import CHECKPOINT

SET_ASIDE = "valid_free_energy_before"


def fresh_validation(src: Path, dst: Path) -> int:
    """Write ``dst``/checkpoint.pt and config.toml; returns the checkpoint's epoch."""
    checkpoint = src / CHECKPOINT
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint} not found: is {src} a run directory?")
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} is not empty: the copy would mix two runs")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for record in state["history"]:
        if "valid_free_energy" in record:
            record[SET_ASIDE] = record.pop("valid_free_energy")
    state["best_valid"] = None
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write(dst / CHECKPOINT, lambda f: torch.save(state, f))
    shutil.copy(src / CONFIG_NAME, dst / CONFIG_NAME)
    return int(state["epoch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the run directory to continue")
    parser.add_argument("dst", type=Path, help="a new (or empty) run directory")
    args = parser.parse_args()
    epoch = fresh_validation(args.src, args.dst)
    print(f"{args.src} (epoch {epoch}) -> {args.dst}, validation history set aside")


if __name__ == "__main__":
    main()

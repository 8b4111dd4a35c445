"""Every random stream training draws from, saved with a checkpoint and put back on resume.

A resumed run matches an uninterrupted one bit for bit only if torch's, CUDA's, numpy's and
Python's generators and the trainer's own shuffling generator all continue where they were;
the state is kept in types that ``torch.load(weights_only=True)`` reads.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's ``random``: whatever a user's model may draw from."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block on torch's global RNG (and ``device``'s, if CUDA) seeded with ``seed``,
    then put the caller's RNG back as it was.

    ``torch.distributions`` samples from the global RNG and takes no generator, so a block
    that must draw the same numbers on every call (a particle filter's estimate, a validation
    with common random numbers) forks the global RNG instead of passing a generator.
    """
    devices: list[int] = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def random_state(shuffle: torch.Generator) -> dict[str, Any]:
    """Every random stream training draws from, in types ``torch.load`` reads safely."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "key": torch.from_numpy(key.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "python": random.getstate(),
        "shuffle": shuffle.get_state(),
    }


def set_random_state(state: dict[str, Any], shuffle: torch.Generator) -> None:
    """Put back every stream :func:`random_state` saved (CUDA's only where CUDA is here)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["key"].numpy().astype(np.uint32),
                         np_state["pos"], np_state["has_gauss"], np_state["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    shuffle.set_state(state["shuffle"])

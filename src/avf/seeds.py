"""Means over seeds, and paired differences between two methods seed by seed.

One run per method says little where seeds differ by more than the methods do (BENCHMARKS
§5.13). The honest comparison trains both methods with the same seeds and looks at the
difference seed by seed, whose spread is smaller than either method's own, since the seed moves
both the same way. ``avf sweep`` and ``benchmarks/seed_summary.py`` both report it from here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """``n``, ``mean``, sample ``sd`` and the standard error of the mean ``se`` (``None``
    for one value, where there is no spread to estimate)."""
    if not values:
        raise ValueError("no values to average")
    n = len(values)
    sd = statistics.stdev(values) if n > 1 else None
    return {"n": n, "mean": statistics.fmean(values), "sd": sd,
            "se": None if sd is None else sd / math.sqrt(n)}


def paired_difference(scores: Sequence[float], reference: Sequence[float]) -> dict[str, Any]:
    """The spread of ``score − reference`` over pairs (scores of the same seed, lower is
    better), with ``better``: how many pairs the method wins, and ``pairs``."""
    if len(scores) != len(reference):
        raise ValueError(f"{len(scores)} scores against {len(reference)} reference scores: "
                         "pairs need one of each")
    differences = [a - b for a, b in zip(scores, reference, strict=True)]
    return {**spread(differences), "better": sum(d < 0 for d in differences),
            "pairs": len(differences)}

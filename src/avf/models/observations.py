"""Observation heads shared by the models with a choice of output: Bernoulli or Gaussian.

VRNN and SRNN decode x_t the same way once their decoder has produced a vector: one logit per
dimension for binary data (piano rolls), or a mean and a soft-limited log-variance per dimension
for continuous data (raw speech), optionally scored as quantisation bins' probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent

from avf.discretized import gaussian_observation

Output = Literal["bernoulli", "gaussian"]

LOG_VAR_RANGE = (-20.0, 6.0)
"""Default soft limits of the Gaussian output's log-variance, for standardised data.

The floor keeps the density finite where a signal is nearly constant (silence in audio): there
the density grows without bound as σ → 0, and so do its gradients. It sits at σ ≈ 4.5e-5 (the
AVF reference VRNN clamps at the same −20): a fifth of a 16-bit step (2⁻¹⁵ / std) or less
for recordings with std ≤ 0.15 in [−1, 1] units (TIMIT: std ≈ 0.017, step ≈ 1.8e-3, σ ≈ step/40).
With σ that small a bin holds nearly all the mass, so the floor costs a discretised score at
most ~0.03 nats per dimension. The ceiling (σ ≈ 20) is far above any conditional spread of
unit-variance data and only stops a runaway early in training.
"""


def observation_outputs(output: str, bin_width: float | None,
                        log_var_range: Sequence[float] = LOG_VAR_RANGE) -> int:
    """Decoder outputs per observed dimension: 1 logit (Bernoulli), or mean and log-variance.

    Checks the options together, so that a bin width given to a Bernoulli model (which has
    nothing to discretise) fails when the model is built rather than silently doing nothing.
    """
    if output not in ("bernoulli", "gaussian"):
        raise ValueError(f"output must be 'bernoulli' or 'gaussian', got {output!r}")
    if bin_width is not None:
        if output == "bernoulli":
            raise ValueError("bin_width only applies to output='gaussian': Bernoulli "
                             "observations are already probabilities")
        if not bin_width > 0:
            raise ValueError(f"bin_width must be positive, got {bin_width!r}")
    low, high = log_var_range
    if not low < high:
        raise ValueError(f"log_var_range must be (low, high) with low < high, got "
                         f"{tuple(log_var_range)}")
    return 1 if output == "bernoulli" else 2


def observation(out: Tensor, output: str, bin_width: float | None,
                log_var_range: tuple[float, float] = LOG_VAR_RANGE) -> Independent:
    """p(x_t | ·) from the decoder head's output [..., per_dim · x_dim].

    Gaussian: the first half is the mean, the second the log-variance, soft-limited to
    ``log_var_range``; with ``bin_width`` the density becomes the bins' probabilities.
    """
    if output == "bernoulli":
        return Independent(Bernoulli(logits=out), 1)
    mean, log_var = out.chunk(2, -1)
    log_var = soft_clamp(log_var, *log_var_range)
    return gaussian_observation(mean, torch.exp(0.5 * log_var), bin_width)


def soft_clamp(x: Tensor, low: float, high: float) -> Tensor:
    """A smooth clamp to (low, high): the identity well inside, softplus bends at the edges.

    Unlike ``clamp`` its gradient is not cut off at a bound (it decays smoothly past it), so a
    log-variance pushed past one can still come back; unlike a sigmoid squash it leaves the
    inside alone (an untrained head's output ≈ 0 means unit variance, not mid-range).
    """
    floored = low + nn.functional.softplus(x - low)
    return high - nn.functional.softplus(high - floored)


def prior_log_var_bounds(bounds: Sequence[float] | None) -> tuple[float, float] | None:
    """``prior_log_var_range`` as (low, high) from a TOML list or a tuple, or None (no bound);
    an error names what is wrong with it."""
    if bounds is None:
        return None
    values = tuple(bounds)
    if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or not (
            values[0] < values[1]):
        raise ValueError(f"prior_log_var_range must be [low, high] with low < high, got "
                         f"{bounds!r}")
    return float(values[0]), float(values[1])

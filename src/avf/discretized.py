"""Discretised Gaussian observations: scoring continuous models on quantised data.

Audio samples are 16-bit integers and pixels are 8-bit, so a Gaussian *density* on them is not
a probability and can be made arbitrarily large by shrinking the variance. The AVF paper scores
such data as probabilities instead: the Gaussian integrated over each value's quantisation bin,
log P(x) = log(Φ((x + w/2 − μ)/σ) − Φ((x − w/2 − μ)/σ)). Models train on the density (its
gradients are smooth) and are scored both ways; :func:`discretized` switches a model's
likelihood to the binned form for scoring.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, constraints
from torch.special import log_ndtr

# Below this bin width (in standard deviations) the mass is taken as φ(z)·w·sinh(zw/2)/(zw/2),
# exact up to a factor 1 + O(w²) (< 1e-11 here) at any distance z from the mean, while
# differences of Φ start to cancel. (The plain midpoint rule φ(z)·w is off by w²(z² − 1)/24,
# which far in the tails is not small: 4e-4 nats at z = 1e4.)
_NARROW_BELOW = 1e-5


def log_normal_interval(a: Tensor, b: Tensor) -> Tensor:
    """log(Φ(b) − Φ(a)) for a < b, stable in both tails and for narrow intervals.

    Intervals above the mean are reflected below it (Φ(b) − Φ(a) = Φ(−a) − Φ(−b)) so both
    log-CDFs are taken where they are far from 0, then log Φ(b) + log(1 − exp(log Φ(a) − log Φ(b))).
    """
    upper = (a + b) > 0
    lo = torch.where(upper, -b, a)
    hi = torch.where(upper, -a, b)
    log_hi = log_ndtr(hi)
    gap = log_ndtr(lo) - log_hi  # ≤ 0
    return log_hi + _log1mexp(gap)


def _log_sinhc(u: Tensor) -> Tensor:
    """log(sinh(u)/u), even in u: the series u²/6 near 0 (no 0/0), the closed form elsewhere."""
    u = u.abs()
    small = u < 1e-3
    safe = torch.where(small, torch.ones_like(u), u)  # keeps the unused branch's gradient finite
    closed = safe + torch.log1p(-torch.exp(-2 * safe)) - torch.log(2 * safe)
    return torch.where(small, u * u / 6, closed)


def _log1mexp(d: Tensor) -> Tensor:
    """log(1 − exp(d)) for d ≤ 0 (Mächler's two-branch form)."""
    d = d.clamp_max(-1e-300)
    small = d > -math.log(2.0)
    return torch.where(small, torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


class DiscretizedNormal(Distribution):
    """A Normal whose ``log_prob(x)`` is the mass of the bin [x − w/2, x + w/2].

    ``bin_width`` broadcasts against ``loc``. With ``low``/``high`` (the data's range), values at
    the edges take the whole tail, so the bins sum to one over the data's grid. The mass is
    computed in float64 and returned in the input's dtype. Sampling draws from the underlying
    Normal (continuous values), which is what reparameterised training needs.
    """

    arg_constraints: ClassVar[dict[str, constraints.Constraint]] = {
        "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc: Tensor, scale: Tensor, bin_width: float | Tensor,
                 low: float | None = None, high: float | None = None,
                 validate_args: bool | None = None) -> None:
        self.normal = Normal(loc, scale, validate_args=validate_args)
        self.loc, self.scale = self.normal.loc, self.normal.scale
        if isinstance(bin_width, Tensor):
            positive = bool((bin_width > 0).all())
            width = bin_width.to(self.loc.device)
        else:  # a number: no device sync to check it, and float64 so that bins tile exactly
            positive = bin_width > 0
            width = torch.tensor(bin_width, dtype=torch.float64, device=self.loc.device)
        if not positive:
            raise ValueError(f"bin_width must be positive, got {bin_width!r}")
        self.bin_width = width
        self.low, self.high = low, high
        super().__init__(self.normal.batch_shape, validate_args=validate_args)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        return self.scale.pow(2)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:  # noqa: B008
        return self.normal.rsample(sample_shape)

    def log_prob(self, value: Tensor) -> Tensor:
        dtype = torch.promote_types(value.dtype, self.loc.dtype)
        x, loc, scale = (t.to(torch.float64) for t in (value, self.loc, self.scale))
        half = self.bin_width.to(torch.float64) / 2
        a = (x - half - loc) / scale
        b = (x + half - loc) / scale
        log_mass = log_normal_interval(a, b)
        width = 2 * half / scale  # not b − a, which rounds at the magnitude of x
        narrow = (Normal(loc, scale).log_prob(x) + torch.log(2 * half)
                  + _log_sinhc((x - loc) / scale * width / 2))
        log_mass = torch.where(width < _NARROW_BELOW, narrow, log_mass)
        if self.low is not None:
            log_mass = torch.where(x - half <= self.low, log_ndtr(b), log_mass)
        if self.high is not None:
            log_mass = torch.where(x + half >= self.high, log_ndtr(-a), log_mass)
        return log_mass.to(dtype)


def gaussian_observation(loc: Tensor, scale: Tensor, bin_width: float | Tensor | None = None,
                         event_dims: int = 1, low: float | None = None,
                         high: float | None = None) -> Independent:
    """p(x_t | ·) as a Normal (``bin_width=None``) or a discretised Normal, with ``event_dims``
    trailing dimensions reinterpreted as the event (1 for vectors, 3 for [C, H, W] frames)."""
    if bin_width is None:
        return Independent(Normal(loc, scale), event_dims)
    return Independent(DiscretizedNormal(loc, scale, bin_width, low, high), event_dims)


@contextmanager
def discretized(model: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """While active, ``model`` scores observations as binned probabilities.

    The model must support it: a ``bin_width`` attribute (not None) and a ``discretized`` flag
    its likelihood reads (the Gaussian-output models in :mod:`avf.models` have both).
    """
    if not enabled:
        yield model
        return
    if getattr(model, "bin_width", None) is None or not hasattr(model, "discretized"):
        raise ValueError(
            f"{type(model).__name__} has no quantisation bin to score with: discretised scoring "
            "needs a Gaussian-output model built with bin_width (e.g. 1/256 for pixels)"
        )
    previous = model.discretized
    model.discretized = True
    try:
        yield model
    finally:
        model.discretized = previous

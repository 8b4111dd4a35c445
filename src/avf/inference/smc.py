"""Sequential Monte Carlo (a particle filter) on any step model, for evaluation.

A filtering posterior bounds log p(x) through the free energy, but a unimodal q can be far from
the truth (a bimodal posterior, say). Used as the proposal of a particle filter, the same q gives
an estimate p̂(x_1:T) that is unbiased for p(x_1:T): E[log p̂] is then a stochastic lower bound
on log p(x_1:T) that tightens as particles are added. That makes SMC the yardstick for how much
the variational family and the inference procedure lose.

It needs nothing beyond the step contract: the model's state is replicated N times along the
batch dimension (B·N streams, the N particles of a sequence next to each other), so the model
never knows it is being run by a particle filter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from avf.inference.base import InferenceProcedure, StepProblem
from avf.model import check_model, map_state, select_state
from avf.objectives import log_prob_per_example
from avf.random_state import seeded
from avf.validation import (
    NonFiniteError,
    check_sequences,
    mask_has_holes,
    observation_shape,
    zero_padding,
)

Resampling = Literal["systematic", "multinomial"]


@dataclass
class ParticleFilterResult:
    """Estimates per sequence; per-step tensors are 0 at masked steps.

    ``log_marginal`` [B] is log p̂(x_1:T); p̂ is unbiased for p(x_1:T), so ``log_marginal`` is
    a lower bound on log p(x_1:T) in expectation. ``log_increments`` [B, T] holds
    log p̂(x_t | x_<t), ``ess`` [B, T] the effective sample size after weighting step t and
    ``resampled`` [B, T] whether the particles were resampled after step t. With
    ``keep_particles`` the weighted particle cloud of every step is kept: ``particles``
    [B, T, N, Dz] and normalised ``log_weights`` [B, T, N] (the filtering distribution
    p(z_t | x_≤t), before any resampling; meaningless at masked steps).
    """

    log_marginal: Tensor
    log_increments: Tensor
    ess: Tensor
    resampled: Tensor
    particles: Tensor | None = None
    log_weights: Tensor | None = None


def systematic_resample(log_weights: Tensor) -> Tensor:
    """Ancestor indices [B, N] from normalised log-weights [B, N]: one uniform per sequence.

    Lower variance than multinomial resampling at the same cost.
    """
    batch, n = log_weights.shape
    cdf = torch.softmax(log_weights.double(), dim=1).cumsum(1)
    cdf = cdf / cdf[:, -1:]
    offsets = torch.arange(n, dtype=torch.float64, device=log_weights.device)
    u = (torch.rand(batch, 1, dtype=torch.float64, device=log_weights.device) + offsets) / n
    return torch.searchsorted(cdf, u, right=True).clamp_max(n - 1)


def multinomial_resample(log_weights: Tensor) -> Tensor:
    """Ancestor indices [B, N] drawn independently from the weights."""
    probs = torch.softmax(log_weights.double(), dim=1)
    return torch.multinomial(probs, log_weights.shape[1], replacement=True)


RESAMPLERS: dict[str, Callable[[Tensor], Tensor]] = {
    "systematic": systematic_resample,
    "multinomial": multinomial_resample,
}


@contextmanager
def _randomness_from(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Draw every random number from ``generator`` and leave the global RNG untouched.

    ``torch.distributions`` samples from the global RNG and takes no generator, so the global
    RNG is forked, seeded from ``generator``, and restored afterwards.
    """
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    with seeded(seed, device):
        yield


def _propose(
    model: nn.Module, proposal: InferenceProcedure | None, state: Any, carry: Any, x: Tensor
) -> tuple[Tensor, Tensor, Any]:
    """Particles z [B·N, Dz], their log incremental weights [B·N] and the proposal's carry.

    A proposal whose parameters depend on its own random draws (a stochastic gradient, say) is
    still valid: given those draws, p/q has expectation p(x_t | ·) under q.
    """
    prior = model.prior(state)
    if proposal is None:
        z = prior.sample()
        return z, log_prob_per_example(model.likelihood(z, state), x, sample_dims=0), carry
    problem = StepProblem(model, state, prior, x, proposal.family)
    result = proposal(problem, carry)
    q = proposal.family.distribution(result.params.detach())
    z = q.sample()
    log_lik = log_prob_per_example(model.likelihood(z, state), x, sample_dims=0)
    return z, log_lik + prior.log_prob(z) - q.log_prob(z), result.carry


def particle_filter(
    model: nn.Module,
    x: Tensor,
    mask: Tensor | None = None,
    n_particles: int = 1000,
    proposal: InferenceProcedure | None = None,
    resample: Resampling = "systematic",
    ess_threshold: float = 0.5,
    generator: torch.Generator | None = None,
    progress: bool = False,
    keep_particles: bool = False,
) -> ParticleFilterResult:
    """Estimate log p(x_1:T) for x [B, T, ...] with ``n_particles`` particles per sequence.

    ``proposal=None`` is the bootstrap filter (particles from the prior, weighted by the
    likelihood); an :class:`InferenceProcedure` proposes from its posterior q and weights by
    p(x|z) p(z) / q(z), its carry following the particles through resampling. Particles are
    resampled per sequence when the effective sample size falls below ``ess_threshold`` · N
    (0 never resamples, 1 nearly always). Masked steps (``mask`` [B, T], padding) neither
    count nor move the particles. ``generator`` makes the run reproducible without touching the
    global RNG. Runs without autograd; procedures that need ∇_λ F_t enable it locally.
    Memory and time grow as B · N: the model sees a batch of B · N streams.
    """
    check_model(model)
    if n_particles < 1:
        raise ValueError(f"n_particles must be at least 1, got {n_particles}")
    if resample not in RESAMPLERS:
        raise ValueError(f"unknown resample {resample!r}: use {' or '.join(RESAMPLERS)}")
    if not 0.0 <= ess_threshold <= 1.0:
        raise ValueError(f"ess_threshold must lie in [0, 1], got {ess_threshold}")
    device = x.device if isinstance(x, Tensor) else torch.device("cpu")
    with _randomness_from(generator, device), torch.no_grad():
        mask = check_sequences(x, mask, observation_shape(model))
        return _run(model, x, mask, n_particles, proposal, RESAMPLERS[resample], ess_threshold,
                    progress, keep_particles)


def _run(
    model: nn.Module, x: Tensor, mask: Tensor, n: int, proposal: InferenceProcedure | None,
    resampler: Callable[[Tensor], Tensor], ess_threshold: float, progress: bool,
    keep_particles: bool,
) -> ParticleFilterResult:
    batch, steps = x.shape[:2]
    x = zero_padding(x, mask)

    def rep(t: Tensor) -> Tensor:
        return t.repeat_interleave(n, dim=0)

    use_context = hasattr(model, "precompute") and not mask_has_holes(mask)  # as the engine
    context = model.precompute(x) if use_context else None
    state = map_state(rep, model.initial_state(batch))
    carry = proposal.initial_carry(batch, x.device) if proposal is not None else None
    carry = map_state(rep, carry) if carry is not None else None
    base = torch.arange(batch, device=x.device)[:, None] * n
    log_w: Tensor | None = None  # normalised log-weights [B, N]
    cols: dict[str, list[Tensor]] = {"inc": [], "ess": [], "res": [], "z": [], "w": []}
    for t in tqdm(range(steps), desc="particle filter", disable=not progress, leave=False):
        keep = mask[:, t]
        if context is not None:
            state = model.use_precomputed(state, map_state(lambda c, t=t: rep(c[:, t]), context))
        x_t = rep(x[:, t])
        z, log_inc, new_carry = _propose(model, proposal, state, carry, x_t)
        log_inc = log_inc.reshape(batch, n)
        if log_w is None:
            log_w = torch.full_like(log_inc, -math.log(n))
        joint = log_w + log_inc
        increment = torch.logsumexp(joint, dim=1)
        _check_weights(t, log_inc, increment, keep)
        new_log_w = joint - increment[:, None]
        ess = torch.exp(-torch.logsumexp(2 * new_log_w, dim=1))
        keep_n = rep(keep)
        state = select_state(keep_n, model.transition(state, z, x_t), state)
        if new_carry is not None and carry is not None:
            carry = select_state(keep_n, new_carry, carry)
        else:
            carry = new_carry
        log_w = torch.where(keep[:, None], new_log_w, log_w)
        do = keep & (ess < ess_threshold * n)
        if t == steps - 1:
            do = torch.zeros_like(do)  # nothing follows, so resampling would only add noise
        if bool(do.any()):
            idx = torch.where(do[:, None], resampler(log_w), torch.arange(n, device=x.device))
            flat = (idx + base).flatten()
            state = map_state(lambda s, flat=flat: s[flat], state)
            carry = map_state(lambda s, flat=flat: s[flat], carry) if carry is not None else None
            log_w = torch.where(do[:, None], torch.full_like(log_w, -math.log(n)), log_w)
        cols["inc"].append(torch.where(keep, increment, torch.zeros_like(increment)))
        cols["ess"].append(torch.where(keep, ess, torch.zeros_like(ess)))
        cols["res"].append(do)
        if keep_particles:
            cols["z"].append(z.reshape(batch, n, *z.shape[1:]))
            cols["w"].append(new_log_w)
    increments = torch.stack(cols["inc"], dim=1)
    return ParticleFilterResult(
        log_marginal=increments.sum(1),
        log_increments=increments,
        ess=torch.stack(cols["ess"], dim=1),
        resampled=torch.stack(cols["res"], dim=1),
        particles=torch.stack(cols["z"], dim=1) if keep_particles else None,
        log_weights=torch.stack(cols["w"], dim=1) if keep_particles else None,
    )


def _check_weights(t: int, log_inc: Tensor, increment: Tensor, keep: Tensor) -> None:
    """Fail with the step and sequence named when the weights cannot carry on."""
    bad = (torch.isnan(log_inc) | (log_inc == math.inf)).any(1) & keep
    dead = (increment == -math.inf) & keep
    if bool(bad.any()):
        raise NonFiniteError(f"NaN or +inf particle weight at time step {t} (sequences "
                             f"{bad.nonzero().flatten().tolist()[:5]})")
    if bool(dead.any()):
        raise NonFiniteError(
            f"every particle has zero weight at time step {t} (sequences "
            f"{dead.nonzero().flatten().tolist()[:5]}); use more particles or a better proposal"
        )

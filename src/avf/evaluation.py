"""Scoring by the evaluation protocol: free energy in nats per time step, micro and macro."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from avf.discretized import discretized as scoring
from avf.filtering import filter_sequences
from avf.inference.base import InferenceProcedure


@dataclass
class Score:
    """Totals over a data set; the per-step averages are derived from them."""

    free_energy: float  # micro average, nats per scored step
    macro_free_energy: float  # mean over sequences of each sequence's per-step mean
    recon: float
    kl: float
    steps: int
    sequences: int
    trace: list[float]  # micro-averaged F after each inference iteration
    sequence_totals: list[float] | None = None  # F summed over each sequence, if asked for

    def as_dict(self) -> dict:
        return asdict(self)


class ScoreAccumulator:
    """Adds up per-step terms batch by batch so a data set never has to fit in one batch."""

    def __init__(self) -> None:
        self.total_fe = 0.0
        self.total_recon = 0.0
        self.total_kl = 0.0
        self.steps = 0
        self.seq_totals: list[float] = []
        self.seq_lengths: list[float] = []
        self.trace: Tensor | None = None

    def add(
        self, free_energy: Tensor, recon: Tensor, kl: Tensor, trace: Tensor, mask: Tensor
    ) -> None:
        m = mask.to(free_energy.dtype)
        self.total_fe += float((free_energy * m).sum())
        self.total_recon += float((recon * m).sum())
        self.total_kl += float((kl * m).sum())
        self.steps += int(mask.sum())
        self.seq_totals += (free_energy * m).sum(1).tolist()
        self.seq_lengths += m.sum(1).tolist()
        t = (trace * m[..., None]).sum((0, 1)).double()
        self.trace = t if self.trace is None else self.trace + t

    def result(self, per_sequence: bool = False) -> Score:
        if self.steps == 0:
            raise ValueError("nothing was scored: the data set is empty")
        n = self.steps
        trace = (self.trace / n).tolist() if self.trace is not None else []
        means = [f / length for f, length in zip(self.seq_totals, self.seq_lengths, strict=True)]
        return Score(self.total_fe / n, sum(means) / len(means),
                     self.total_recon / n, self.total_kl / n, n, len(means), trace,
                     list(self.seq_totals) if per_sequence else None)


def evaluate(
    model: nn.Module,
    inference: InferenceProcedure,
    batches: Iterable[tuple[Tensor, Tensor | None]],
    n_samples: int = 1,
    progress: bool = False,
    desc: str = "evaluate",
    per_sequence: bool = False,
    discretized: bool = False,
) -> Score:
    """Free energy (β = 1) of whole sequences under filtering inference.

    ``batches`` yields (x [B, T, ...], mask [B, T] or None). No training graph is kept;
    procedures that need ∇_λ F_t enable autograd locally. ``per_sequence`` also returns each
    sequence's total free energy (for paired comparisons and standard errors).
    ``discretized`` scores continuous observations as probabilities of their quantisation bins
    (see :mod:`avf.discretized`; the model must have a ``bin_width``).
    """
    acc = ScoreAccumulator()
    with eval_mode(model, inference), torch.no_grad(), scoring(model, discretized):
        for x, mask in tqdm(batches, desc=desc, disable=not progress, leave=False):
            out = filter_sequences(model, inference, x, mask, beta=1.0, n_samples=n_samples)
            acc.add(out.free_energy, out.recon, out.kl, out.trace, out.mask)
    return acc.result(per_sequence)


@contextmanager
def eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """The modules in eval mode (dropout off) while scoring, each put back in the mode it was
    in afterwards, also on an error; ``None`` entries (no proposal) are skipped."""
    present = [m for m in modules if m is not None]
    was_training = [m.training for m in present]
    for m in present:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(present, was_training, strict=True):
            m.train(mode)


@dataclass
class ParticleScore:
    """An SMC estimate of −log p(x) per step. p̂ is unbiased, so the estimate is an upper bound
    on the true −log p(x) in expectation; it tightens as particles are added, and with the
    filter's own q as the proposal its expectation is no higher than the free energy."""

    nll: float  # micro: −Σ log p̂(x_1:T) ÷ scored steps
    macro_nll: float  # mean over sequences of −log p̂(x_1:T) ÷ T
    particles: int
    steps: int
    sequences: int

    def as_dict(self) -> dict:
        return asdict(self)


def particle_score(
    model: nn.Module,
    proposal: InferenceProcedure | None,
    batches: Iterable[tuple[Tensor, Tensor | None]],
    n_particles: int,
    seed: int = 0,
    discretized: bool = False,
) -> ParticleScore:
    """−log p(x) per step estimated by a particle filter with ``proposal`` (``None``: the
    bootstrap filter), the evaluation protocol's micro and macro averages over whole sequences.

    Time and memory grow as batch × ``n_particles``; batches are drawn from one generator
    seeded with ``seed``, so the estimate is the same on every call.
    """
    from avf.inference.smc import particle_filter  # smc imports the engine's helpers

    generator = torch.Generator().manual_seed(seed)
    total, steps, per_sequence = 0.0, 0, []
    with eval_mode(model, proposal), scoring(model, discretized):
        for x, mask in batches:
            result = particle_filter(model, x, mask, n_particles=n_particles,
                                     proposal=proposal, generator=generator)
            scored = torch.ones(x.shape[:2]) if mask is None else mask.cpu().double()
            lengths = scored.sum(1)
            nll = -result.log_marginal.cpu().double()
            total += float(nll.sum())
            steps += int(lengths.sum())
            per_sequence += (nll / lengths).tolist()
    if steps == 0:
        raise ValueError("no scored steps: the batches were empty")
    return ParticleScore(total / steps, sum(per_sequence) / len(per_sequence), n_particles,
                         steps, len(per_sequence))

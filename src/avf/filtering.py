"""The filtering engine: runs a step model and an inference procedure over sequences.

Per step: prediction (prior from the state), update (the inference procedure), then the
free energy at the final posterior with the model's live graph, and the state transition with
a detached sample. Two losses come out, each meant for one set of parameters:

* ``model_loss`` for θ: Σ_t F_t(λ_t^final) with λ fixed, back-propagated through time;
* ``inference_loss`` for φ: Σ_t Σ_k F_t(λ_t^k), where the state and prior are constants.

Use :func:`backward` to send each loss to its own parameters only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from avf.inference.base import InferenceProcedure, StepProblem
from avf.model import check_model, detach_state, map_state, select_state
from avf.objectives import StepTerms, detach_distribution, step_terms
from avf.validation import (
    NonFiniteError,
    check_finite_terms,
    check_sequences,
    mask_has_holes,
    observation_shape,
    zero_padding,
)


@dataclass
class FilterOutput:
    """Per-step results [B, T] (zero at masked steps) and the two training losses."""

    free_energy: Tensor
    recon: Tensor
    kl: Tensor
    trace: Tensor  # [B, T, K+1]: F_t after each inference iteration (detached)
    mask: Tensor
    params: Tensor  # [B, T, P] final posterior parameters (detached)
    model_loss: Tensor
    inference_loss: Tensor  # model_loss + extra_loss
    extra_loss: Tensor  # Σ_t Σ_{k<K} F_t(λ_k): the iterations before the final one (φ only)

    @property
    def steps(self) -> Tensor:
        return self.mask.sum()

    def per_step(self) -> float:
        """Micro average: total free energy over all scored steps ÷ number of scored steps."""
        return float(self.free_energy.detach().sum() / self.steps)


@dataclass
class StepOutput:
    """One step of filtering for every stream."""

    terms: StepTerms
    params: Tensor
    trace: list[Tensor]
    extra_loss: Tensor | None
    state: Any
    carry: Any


def filter_step(
    model: nn.Module, inference: InferenceProcedure, state: Any, carry: Any, x: Tensor,
    beta: float = 1.0, n_samples: int = 1,
) -> StepOutput:
    """Predict, update, score and transition for one time step."""
    prior = model.prior(state)
    problem = StepProblem(model, detach_state(state), detach_distribution(prior), x,
                          inference.family, beta, n_samples)
    result = inference(problem, carry)
    q = inference.family.distribution(result.params)
    terms = step_terms(model, state, prior, x, q, n_samples, beta)
    trace = [*result.trace, terms.free_energy.detach()]
    next_state = model.transition(state, terms.z[0].detach(), x)
    return StepOutput(terms, result.params, trace, result.extra_loss, next_state, result.carry)


def filter_sequences(
    model: nn.Module,
    inference: InferenceProcedure,
    x: Tensor,
    mask: Tensor | None = None,
    beta: float = 1.0,
    n_samples: int = 1,
    check_finite: bool = True,
) -> FilterOutput:
    """Filter a batch of sequences x [B, T, ...] (optional mask [B, T] for variable lengths).

    Masked steps neither count nor change the state. Under ``torch.no_grad()`` this is
    evaluation: inference procedures that need ∇_λ F_t enable autograd locally.
    """
    check_model(model)
    mask = check_sequences(x, mask, observation_shape(model))
    batch, steps = x.shape[:2]
    device = x.device
    x = zero_padding(x, mask)
    use_context = hasattr(model, "precompute") and not mask_has_holes(mask)
    context = model.precompute(x) if use_context else None
    state = model.initial_state(batch)
    carry = inference.initial_carry(batch, device)
    cols: dict[str, list[Tensor]] = {"fe": [], "recon": [], "kl": [], "obj": [], "extra": [],
                                      "trace": [], "params": []}
    for t in range(steps):
        keep = mask[:, t]
        if context is not None:
            state = model.use_precomputed(state, map_state(lambda c, t=t: c[:, t], context))
        try:
            out = filter_step(model, inference, state, carry, x[:, t], beta, n_samples)
        except ValueError as err:  # e.g. torch.distributions' argument checks
            raise _step_error(t, err) from err
        if check_finite:
            check_finite_terms(t, keep, reconstruction=out.terms.recon, kl=out.terms.kl)
        cols["fe"].append(_scored(out.terms.free_energy, keep))
        cols["recon"].append(_scored(out.terms.recon, keep))
        cols["kl"].append(_scored(out.terms.kl, keep))
        cols["obj"].append(_scored(out.terms.objective, keep))
        extra = out.extra_loss if out.extra_loss is not None else torch.zeros_like(out.terms.kl)
        cols["extra"].append(_scored(extra, keep))
        cols["trace"].append(_scored(torch.stack(out.trace, dim=-1), keep))
        cols["params"].append(out.params.detach())
        state = select_state(keep, out.state, state) if not bool(keep.all()) else out.state
        if out.carry is not None and carry is not None and not bool(keep.all()):
            carry = select_state(keep, out.carry, carry)
        else:
            carry = out.carry
    n = mask.sum().clamp_min(1)
    objective = torch.stack(cols["obj"], 1)
    model_loss = objective.sum() / n
    extra_loss = torch.stack(cols["extra"], 1).sum() / n
    inference_loss = model_loss + extra_loss
    return FilterOutput(
        free_energy=torch.stack(cols["fe"], 1),
        recon=torch.stack(cols["recon"], 1),
        kl=torch.stack(cols["kl"], 1),
        trace=torch.stack(cols["trace"], 1).detach(),
        mask=mask,
        params=torch.stack(cols["params"], 1),
        model_loss=model_loss,
        inference_loss=inference_loss,
        extra_loss=extra_loss,
    )


def _scored(value: Tensor, keep: Tensor) -> Tensor:
    """``value`` [B, ...] with masked batch elements set to 0 (``where``, so NaN cannot leak)."""
    k = keep.reshape(keep.shape + (1,) * (value.dim() - 1))
    return torch.where(k, value, torch.zeros_like(value))


def trainable(params: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    """The parameters an optimiser should see: frozen ones (``requires_grad=False``) left out."""
    return [p for p in params if p.requires_grad]


def backward(output: FilterOutput, model: nn.Module | None, inference: nn.Module | None) -> None:
    """Accumulate ∂model_loss/∂θ into θ and ∂inference_loss/∂φ into φ, and nothing else.

    Pass ``model=None`` (or a model without trainable parameters) to train inference alone.
    The final iterate's term is shared by both losses (λ has no path back to θ, so its θ-gradient
    is the one with λ held fixed), so one pass over the shared graph serves θ and φ together and
    only the earlier iterates' terms need a second, local pass.
    """
    theta = trainable(model.parameters()) if model is not None else []
    phi = trainable(inference.parameters()) if inference is not None else []
    extra = bool(phi) and output.extra_loss.requires_grad
    if theta and output.model_loss.requires_grad:
        output.model_loss.backward(inputs=theta + phi, retain_graph=extra)
        if extra:
            output.extra_loss.backward(inputs=phi)
    elif phi and output.inference_loss.requires_grad:
        output.inference_loss.backward(inputs=phi)


def _step_error(t: int, err: ValueError) -> Exception:
    """torch.distributions' message without the tensor it prints, and who is at fault.

    Data outside the likelihood's support stay a ``ValueError``. An invalid distribution
    parameter (a scale of 0, a NaN mean) in the middle of a sequence nearly always means the
    weights diverged, so it becomes a :class:`NonFiniteError`, which the trainer reports with
    the epoch and batch, like a NaN free energy.
    """
    text = str(err)
    cut = text.find("but found invalid values")
    if cut < 0:
        return ValueError(f"at time step {t}: {text}")
    if text.startswith("Expected value argument"):
        return ValueError(f"at time step {t}: {text[:cut]}but found invalid values: the data at "
                          "this step are outside the likelihood's support (for a Bernoulli, "
                          "values other than 0 and 1)")
    return NonFiniteError(f"at time step {t}: {text[:cut]}but found invalid values (NaN, "
                          "infinite or outside the allowed range); lower the learning rates or "
                          "set training.grad_clip")

"""No inference at all: the posterior is the prior's prediction (the demo's worst case)."""

from __future__ import annotations

from typing import Any

from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem


class PriorOnly(InferenceProcedure):
    """q(z_t) = the posterior family's fit to p(z_t | x_<t, z_<t)."""

    def forward(self, problem: StepProblem, carry: Any = None) -> InferenceResult:
        return InferenceResult(params=problem.prior_params(), carry=carry)

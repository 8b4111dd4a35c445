"""Shared test models: a tiny deep model with learnable θ, and the LGSSM's exact posterior."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.distributions import Bernoulli, Independent, Normal

from avf.inference.base import InferenceProcedure, InferenceResult, StepProblem
from avf.model import StepModel
from avf.models import LinearGaussian

# tiny tensors: one thread avoids contention on small CI machines and is faster here
torch.set_num_threads(1)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# a music model small enough to train for an epoch on JSB in a few seconds on one CPU thread
TINY_MUSIC_RUN = ["model.options.latent_dim=4", "model.options.rnn_dim=8",
                  "model.options.hidden=8", "inference.options.hidden=16",
                  "inference.options.layers=1", "training.epochs=1", "training.batch_size=64",
                  "training.progress=false"]


def climbing_songs(lengths: dict[str, list[int]], first_key: int
                   ) -> dict[str, list[list[list[int]]]]:
    """A music data set as JSON note lists, songs of the given lengths per split: a two-note
    chord that climbs one key per step from ``first_key`` (MIDI numbers)."""
    return {split: [[[first_key + t % 30, first_key + 4 + t % 30] for t in range(n)]
                    for n in ns] for split, ns in lengths.items()}


def tiny_music_args(songs_file: Path, *more: str) -> list[str]:
    """``--set`` arguments for a tiny music run (:data:`TINY_MUSIC_RUN`) on a JSON song file,
    in 4-step windows, batch 4, plus ``more`` settings."""
    sets = [*TINY_MUSIC_RUN, f"data.dataset={json.dumps(str(songs_file))}", "data.crop=4",
            "training.batch_size=4", *more]
    return [arg for item in sets for arg in ("--set", item)]


@pytest.fixture
def songs_file(tmp_path: Path) -> Path:
    """A tiny music data set (:func:`climbing_songs`) as a JSON song file."""
    path = tmp_path / "songs.json"
    path.write_text(json.dumps(climbing_songs({"train": [12] * 8, "valid": [10] * 2,
                                               "test": [11, 6]}, 40)))
    return path


def music_data_dir() -> Path:
    """The first of $AVF_DATA_DIR and the team's shared data folder that holds the polyphonic
    music (JSB at least), or skip the test saying where it looked."""
    for root in (os.environ.get("AVF_DATA_DIR"), SHARED):
        if root and (Path(root) / "polyphonic" / "JSB_Chorales.mat").is_file():
            return Path(root)
    pytest.skip(f"the polyphonic music data are not in {SHARED} nor in $AVF_DATA_DIR")


class TinyDeepModel(StepModel):
    """A small VRNN-like model: GRU state fed by (z, x), MLP prior, Bernoulli likelihood."""

    def __init__(self, x_dim: int = 5, z_dim: int = 3, h_dim: int = 8) -> None:
        super().__init__()
        self.h_dim = h_dim
        self.cell = nn.GRUCell(x_dim + z_dim, h_dim)
        self.prior_net = nn.Linear(h_dim, 2 * z_dim)
        self.decoder = nn.Linear(h_dim + z_dim, x_dim)

    def initial_state(self, batch_size: int) -> Tensor:
        return torch.zeros(batch_size, self.h_dim)

    def prior(self, state: Tensor) -> Independent:
        mean, log_var = self.prior_net(state).chunk(2, -1)
        return Independent(Normal(mean, torch.exp(0.5 * log_var)), 1)

    def likelihood(self, z: Tensor, state: Tensor) -> Independent:
        h = state.expand(*z.shape[:-1], state.shape[-1])
        return Independent(Bernoulli(logits=self.decoder(torch.cat([h, z], -1))), 1)

    def transition(self, state: Tensor, z: Tensor, x: Tensor) -> Tensor:
        return self.cell(torch.cat([z, x], -1), state)


class ExactLGSSMPosterior(InferenceProcedure):
    """Oracle for a LinearGaussian with diagonal C, Q, R: q = p(z_t | z_{t-1}, x_t) exactly."""

    def __init__(self, model: LinearGaussian) -> None:
        super().__init__()
        self.model = model

    def forward(self, problem: StepProblem, carry=None) -> InferenceResult:
        prior = problem.prior
        c = self.model.C.detach().double()
        r_inv = torch.linalg.inv(self.model.R.detach().double())
        p_inv = torch.linalg.inv(prior.covariance_matrix.double())
        cov = torch.linalg.inv(p_inv + c.T @ r_inv @ c)
        info = (p_inv @ prior.loc.double().unsqueeze(-1)).squeeze(-1) + problem.x.double() @ (
            r_inv @ c)
        mean = (cov @ info.unsqueeze(-1)).squeeze(-1)
        log_var = cov.diagonal(dim1=-2, dim2=-1).log()
        return InferenceResult(params=torch.cat([mean, log_var], -1).float(), carry=carry)


def frozen(model: nn.Module) -> nn.Module:
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture
def tiny_model() -> TinyDeepModel:
    torch.manual_seed(0)
    return TinyDeepModel()


@pytest.fixture
def binary_data() -> Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(4, 6, 5, generator=g) < 0.4).float()

"""Linear-Gaussian state space model, with its exact answers.

z_1 ~ N(m0, P0),  z_t = A z_{t-1} + N(0, Q),  x_t = C z_t + N(0, R).

Everything is linear-Gaussian, so two quantities are known in closed form and serve as ground
truth for inference: the exact log p(x_1:T) (Kalman filter) and the best free energy that
*filtering* inference can reach, :meth:`LinearGaussian.optimal_filtering_free_energy`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import MultivariateNormal

from avf.model import StepModel


def _tril_param(cov: Tensor) -> Tensor:
    """Unconstrained parameter of a covariance: its Cholesky factor with log-diagonal."""
    chol = torch.linalg.cholesky(cov)
    return chol.tril(-1) + torch.diag_embed(chol.diagonal().log())


def _tril_value(raw: Tensor) -> Tensor:
    return raw.tril(-1) + torch.diag_embed(raw.diagonal().exp())


class LinearGaussian(StepModel):
    """Linear-Gaussian SSM with learnable A, C, Q, R, m0, P0 (full matrices allowed)."""

    def __init__(self, A: Tensor, C: Tensor, Q: Tensor, R: Tensor, m0: Tensor, P0: Tensor) -> None:
        super().__init__()
        dz, dx = A.shape[0], C.shape[0]
        expected = {"A": (dz, dz), "C": (dx, dz), "Q": (dz, dz), "R": (dx, dx), "m0": (dz,),
                    "P0": (dz, dz)}
        given = {"A": A, "C": C, "Q": Q, "R": R, "m0": m0, "P0": P0}
        for name, shape in expected.items():
            if tuple(given[name].shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(given[name].shape)}")
        self.A = nn.Parameter(A.clone().float())
        self.C = nn.Parameter(C.clone().float())
        self.m0 = nn.Parameter(m0.clone().float())
        self.Q_raw = nn.Parameter(_tril_param(Q.double()).float())
        self.R_raw = nn.Parameter(_tril_param(R.double()).float())
        self.P0_raw = nn.Parameter(_tril_param(P0.double()).float())

    @classmethod
    def random(
        cls, latent_dim: int = 4, obs_dim: int = 4, diagonal: bool = True, seed: int = 0,
        spectral_radius: float = 0.9, q_scale: float = 0.5, r_scale: float = 0.5,
    ) -> LinearGaussian:
        """A stable random model; ``diagonal`` makes C, Q, R diagonal (A stays full).

        With diagonal C, Q and R the exact filtering posterior p(z_t | z_{t-1}, x_t) is a
        diagonal Gaussian, so the optimum lies in the default posterior family.
        """
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(latent_dim, latent_dim, generator=g, dtype=torch.float64)
        a = a * spectral_radius / torch.linalg.eigvals(a).abs().max()
        if diagonal:
            if obs_dim != latent_dim:
                raise ValueError("a diagonal C needs obs_dim == latent_dim")
            c = torch.diag(0.5 + torch.rand(latent_dim, generator=g, dtype=torch.float64))
            f64 = torch.float64
            q = torch.diag(q_scale * (0.5 + torch.rand(latent_dim, generator=g, dtype=f64)))
            r = torch.diag(r_scale * (0.5 + torch.rand(obs_dim, generator=g, dtype=f64)))
        else:
            c = torch.randn(obs_dim, latent_dim, generator=g, dtype=torch.float64)
            b = torch.randn(latent_dim, latent_dim, generator=g, dtype=torch.float64)
            q = q_scale * (b @ b.T / latent_dim + 0.5 * torch.eye(latent_dim, dtype=torch.float64))
            e = torch.randn(obs_dim, obs_dim, generator=g, dtype=torch.float64)
            r = r_scale * (e @ e.T / obs_dim + 0.5 * torch.eye(obs_dim, dtype=torch.float64))
        m0 = torch.zeros(latent_dim, dtype=torch.float64)
        p0 = torch.eye(latent_dim, dtype=torch.float64)
        return cls(a, c, q, r, m0, p0)

    # -- matrices ---------------------------------------------------------------------------
    @property
    def Q(self) -> Tensor:  # noqa: N802 - standard notation
        lq = _tril_value(self.Q_raw)
        return lq @ lq.T

    @property
    def R(self) -> Tensor:  # noqa: N802
        lr = _tril_value(self.R_raw)
        return lr @ lr.T

    @property
    def P0(self) -> Tensor:  # noqa: N802
        lp = _tril_value(self.P0_raw)
        return lp @ lp.T

    @property
    def latent_dim(self) -> int:
        return self.A.shape[0]

    @property
    def obs_dim(self) -> int:
        return self.C.shape[0]

    # -- the step contract ------------------------------------------------------------------
    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        loc = self.m0.expand(batch_size, -1)
        first = torch.ones(batch_size, dtype=torch.bool, device=self.A.device)
        return loc, first

    def prior(self, state: tuple[Tensor, Tensor]) -> MultivariateNormal:
        loc, first = state
        if bool(first.all()):  # one shared factor: cheaper than a per-element [B, D, D] one
            tril = _tril_value(self.P0_raw)
        elif not bool(first.any()):
            tril = _tril_value(self.Q_raw)
        else:
            tril = torch.where(first[:, None, None], _tril_value(self.P0_raw),
                               _tril_value(self.Q_raw))
        # the parameterisation guarantees a valid factor, so skip torch's per-call checks
        return MultivariateNormal(loc, scale_tril=tril, validate_args=False)

    def likelihood(self, z: Tensor, state: tuple[Tensor, Tensor]) -> MultivariateNormal:
        return MultivariateNormal(z @ self.C.T, scale_tril=_tril_value(self.R_raw),
                                  validate_args=False)

    def transition(
        self, state: tuple[Tensor, Tensor], z: Tensor, x: Tensor
    ) -> tuple[Tensor, Tensor]:
        return z @ self.A.T, torch.zeros_like(state[1])

    # -- exact answers ----------------------------------------------------------------------
    def _matrices64(self) -> tuple[Tensor, ...]:
        with torch.no_grad():
            return tuple(m.detach().double() for m in (self.A, self.C, self.Q, self.R, self.m0,
                                                        self.P0))

    # the closed forms below run in float64 on the device of x (the model's device)

    @torch.no_grad()
    def kalman_log_likelihood(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Exact log p(x_t | x_<t) for every step [B, T] (0 at masked steps), in float64."""
        a, c, q, r, m0, p0 = self._matrices64()
        x, mask = _float64_with_mask(x, mask)
        batch, steps = x.shape[:2]
        dev = x.device
        m = m0.expand(batch, -1).clone()
        p = p0.expand(batch, -1, -1).clone()
        eye = torch.eye(a.shape[0], dtype=torch.float64, device=dev)
        out = torch.zeros(batch, steps, dtype=torch.float64, device=dev)
        first = torch.ones(batch, dtype=torch.bool, device=dev)
        for t in range(steps):
            keep = mask[:, t]
            m_pred = torch.where(first[:, None], m, m @ a.T)
            p_pred = torch.where(first[:, None, None], p, a @ p @ a.T + q)
            s = c @ p_pred @ c.T + r
            ll = MultivariateNormal(m_pred @ c.T, covariance_matrix=s).log_prob(x[:, t])
            gain = p_pred @ c.T @ torch.linalg.inv(s)
            m_new = m_pred + (gain @ (x[:, t] - m_pred @ c.T).unsqueeze(-1)).squeeze(-1)
            p_new = (eye - gain @ c) @ p_pred
            p_new = 0.5 * (p_new + p_new.transpose(-1, -2))
            out[:, t] = torch.where(keep, ll, torch.zeros_like(ll))
            m = torch.where(keep[:, None], m_new, m)
            p = torch.where(keep[:, None, None], p_new, p)
            first = first & ~keep
        return out

    @torch.no_grad()
    def optimal_filtering_free_energy(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """F*_t [B, T]: the expected per-step free energy of the best filtering posterior.

        At each step q(z_t) = p(z_t | z_{t-1}, x_t) exactly, with z_{t-1} drawn from the
        previous step's q. Then F_t = -log p(x_t | z_{t-1}), and z_{t-1} is Gaussian with a mean
        and covariance propagated in closed form, so E[F_t] is exact:
        F*_t = -log N(x_t; C A m, S) + ½ tr(S⁻¹ C A P Aᵀ Cᵀ), S = C Q Cᵀ + R.
        This is the fixed point of variational filtering: every step's F_t minimised given the
        past, which is what all of avf's inference procedures aim at (their objective has no
        gradient across steps). It is not a lower bound on the *total*: a posterior narrower
        than optimal costs a little at its own step but shrinks the spread of z_{t-1} that the
        next step pays for, so the total can dip slightly below Σ F*_t (variances scaled by 0.8
        measured about 0.03 nats/step below it). -log p(x) from the Kalman filter is the floor.
        """
        a, c, q, r, m0, p0 = self._matrices64()
        x, mask = _float64_with_mask(x, mask)
        batch, steps = x.shape[:2]
        dev = x.device
        eye = torch.eye(a.shape[0], dtype=torch.float64, device=dev)
        r_inv = torch.linalg.inv(r)
        out = torch.zeros(batch, steps, dtype=torch.float64, device=dev)
        m = m0.expand(batch, -1).clone()  # moments of z_{t-1} under the chain of optimal q's
        p = torch.zeros(batch, a.shape[0], a.shape[0], dtype=torch.float64, device=dev)
        first = torch.ones(batch, dtype=torch.bool, device=dev)
        sigma_q = torch.linalg.inv(torch.linalg.inv(q) + c.T @ r_inv @ c)  # posterior cov, t > 1
        sigma_0 = torch.linalg.inv(torch.linalg.inv(p0) + c.T @ r_inv @ c)  # posterior cov, t = 1
        for t in range(steps):
            keep = mask[:, t]
            f = first[:, None, None]
            # the prior mean is linear in z_{t-1}: mu = M z_{t-1} + b (M = A, or 0 at t = 1)
            lin = torch.where(f, torch.zeros_like(p), a.expand(batch, -1, -1))
            mean_prior = torch.where(first[:, None], m0.expand(batch, -1), m @ a.T)
            cov_prior = torch.where(f, p0.expand(batch, -1, -1), q.expand(batch, -1, -1))
            s = c @ cov_prior @ c.T + r
            pred = mean_prior @ c.T
            spread = c @ lin @ p @ lin.transpose(-1, -2) @ c.T
            nll = -MultivariateNormal(pred, covariance_matrix=s).log_prob(x[:, t])
            nll = nll + 0.5 * torch.linalg.solve(s, spread).diagonal(dim1=-2, dim2=-1).sum(-1)
            sigma = torch.where(f, sigma_0.expand(batch, -1, -1), sigma_q.expand(batch, -1, -1))
            gain = sigma @ c.T @ r_inv
            shrink = eye - gain @ c
            m_new = torch.einsum("bij,bj->bi", shrink, mean_prior) + torch.einsum(
                "bij,bj->bi", gain, x[:, t])
            spread_z = lin @ p @ lin.transpose(-1, -2)
            p_new = shrink @ spread_z @ shrink.transpose(-1, -2) + sigma
            out[:, t] = torch.where(keep, nll, torch.zeros_like(nll))
            m = torch.where(keep[:, None], m_new, m)
            p = torch.where(keep[:, None, None], p_new, p)
            first = first & ~keep
        return out

    @torch.no_grad()
    def optimal_filtering_posterior(
        self, z_prev: Tensor | None, x: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Mean [B, Dz] and covariance [Dz, Dz] of p(z_t|z_{t-1}, x_t); ``z_prev=None`` is t = 1."""
        a, c, q, r, m0, p0 = self._matrices64()
        x = x.double()
        mean_prior = m0.expand(x.shape[0], -1) if z_prev is None else z_prev.double() @ a.T
        cov_prior = p0 if z_prev is None else q
        r_inv = torch.linalg.inv(r)
        sigma = torch.linalg.inv(torch.linalg.inv(cov_prior) + c.T @ r_inv @ c)
        resid = x - mean_prior @ c.T
        mean = mean_prior + resid @ (sigma @ c.T @ r_inv).T
        return mean, sigma


def _float64_with_mask(x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """x in float64 and a boolean mask on its device (all steps observed if ``mask`` is None)."""
    x = x.double()
    if mask is None:
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return x, mask.bool().to(x.device)

"""Variational Laplace: SPM's ``spm_nlsi_GN`` scheme, batched over independent fits.

Model: y = g(θ) + ε, θ ~ N(η, Σ), ε ~ N(0, Π(h)⁻¹) with Π(h) = Σᵢ exp(hᵢ)Qᵢ and h ~ N(h_E, h_C).
The posterior q(θ) = N(μ, C) and the log-precisions h are found by the scheme of SPM's
``spm_nlsi_GN`` (see ``specs/spm_dcm.md``):

1. the parameters are reduced to the directions of non-zero prior variance (θ = η + V·p);
2. each iteration takes the Jacobian dg/dθ·V (automatic differentiation by default; no finite
   differences in the default path), runs up to 8 Fisher-scoring (M-) steps on h, evaluates the free
   energy F = L₁ + L₂ + L₃ (accuracy, parameter complexity, hyperparameter complexity), accepts the
   step if F increased (always in the first two iterations) or returns to the last accepted point and
   shortens the step, and takes a Levenberg–Marquardt-like local-linearisation step
   dp = (exp(t·H) − I)·H⁻¹·g with log t = v − log|H|/n (v from −4, +½ on acceptance, −2 on rejection);
3. it stops when the predicted increase dF = gᵀ·dp is below ``tol`` (0.1) on 4 consecutive iterations.

Every fit of a batch runs this scheme independently; the batch shares one forward/Jacobian call per
iteration (vectorised over the still-running fits). A likelihood temperature β (thermodynamic VL)
scales the log-likelihood: β·ln p(y | θ, h).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from thalia._logging import logger
from thalia.inference._linalg import local_linear_step, logdet, symmetric_inverse
from thalia.inference.forward import ForwardJacobian
from thalia.inference.noise import PRECISION_FLOOR, student_t_weights

Tensor = torch.Tensor
LOG_2PI = math.log(2 * math.pi)
#: Jacobians with an entry above this (or non-finite) count as a failed evaluation (SPM: exp(32)).
MAX_JACOBIAN = math.exp(32.0)


@dataclass(frozen=True)
class VLSettings:
    """Options of the scheme (SPM's values by default).

    Attributes
    ----------
    max_iter : int
        Most iterations (SPM's ``M.Nmax``: 128).
    tol : float
        Convergence: predicted dF below ``tol`` on ``n_converge`` consecutive iterations.
    n_converge : int
    mstep_iter, mstep_tol : int, float
        Fisher-scoring steps on h per iteration and their stopping rule (dFdh·dh < mstep_tol).
    initial_log_step : float
        Starting v of the step-size schedule.
    noise : {"gaussian", "student_t"}
    dof : float
        Student-t degrees of freedom (robust noise).
    """

    max_iter: int = 128
    tol: float = 0.1
    n_converge: int = 4
    mstep_iter: int = 8
    mstep_tol: float = 1e-2
    initial_log_step: float = -4.0
    noise: str = "gaussian"
    dof: float = 4.0


@dataclass
class Problem:
    """A batch of inversions sharing a model, a free-parameter basis and a hyperprior.

    Attributes
    ----------
    y : (B, c, n_y)       real view of the data
    prior_mean : (B, P)   η
    prior_cov : (P, P)    Σ (shared)
    Q : (B, n_h, n_y, n_y) precision components
    hE : (B, n_h)         hyperprior means
    hC : (n_h, n_h) or None  hyperprior covariance; None fixes h = hE (known noise precision)
    beta : (B,)           likelihood temperatures
    """

    y: Tensor
    prior_mean: Tensor
    prior_cov: Tensor
    Q: Tensor
    hE: Tensor
    hC: Tensor | None
    beta: Tensor
    basis: Tensor = field(init=False)
    ipC: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.basis = free_basis(self.prior_cov)
        reduced = self.basis.T @ self.prior_cov @ self.basis
        self.ipC = symmetric_inverse(reduced)

    @property
    def n_free(self) -> int:
        return self.basis.shape[1]

    def theta(self, p: Tensor, rows: Tensor) -> Tensor:
        """θ = η + V·p for the fits ``rows``."""
        return self.prior_mean[rows] + p @ self.basis.T


def free_basis(prior_cov: Tensor) -> Tensor:
    """(P, n_free) orthonormal basis of the directions with non-zero prior variance.

    A diagonal prior gives unit vectors in parameter order; otherwise the eigenvectors of Σ whose
    eigenvalues exceed 64·eps relative to the largest (as SPM's ``spm_svd``).
    """
    diag = torch.diagonal(prior_cov)
    tol = 64 * torch.finfo(prior_cov.dtype).eps
    if bool((prior_cov == torch.diag(diag)).all()):
        keep = diag / diag.max().clamp_min(1e-300) > tol
        return torch.eye(len(diag), dtype=prior_cov.dtype, device=prior_cov.device)[:, keep]
    values, vectors = torch.linalg.eigh((prior_cov + prior_cov.T) / 2)
    keep = values / values.max().clamp_min(1e-300) > tol
    return vectors[:, keep].flip(-1)


@dataclass
class Raw:
    """Per-fit results of :func:`run` (batch dimension first), before packaging as Posteriors."""

    mean: Tensor
    cov: Tensor
    F: Tensor
    L: Tensor
    h: Tensor
    h_cov: Tensor
    predicted: Tensor
    iterations: Tensor
    converged: Tensor
    failed: Tensor
    failure: list[str]
    trace: list[list[dict]]
    seconds: float


class _State:
    """The scheme's state for every fit (batch first)."""

    def __init__(self, problem: Problem, p0: Tensor, h0: Tensor, settings: VLSettings) -> None:
        B, n = p0.shape
        like = p0
        self.p, self.h = p0.clone(), h0.clone()
        self.v = torch.full((B,), settings.initial_log_step, dtype=like.dtype, device=like.device)
        self.best_F = torch.full((B,), -math.inf, dtype=like.dtype, device=like.device)
        self.best_p, self.best_h = p0.clone(), h0.clone()
        self.best_Cp = problem.prior_cov.new_zeros(B, n, n) + torch.linalg.inv(problem.ipC)
        nh = h0.shape[1]
        self.best_Ch = h0.new_zeros(B, nh, nh)
        self.best_L = like.new_zeros(B, 3)
        self.best_f = problem.y.new_full(problem.y.shape, float("nan"))
        self.dFdp = like.new_zeros(B, n)
        self.dFdpp = like.new_zeros(B, n, n) - problem.ipC
        self.streak = torch.zeros(B, dtype=torch.long, device=like.device)
        self.active = torch.ones(B, dtype=torch.bool, device=like.device)
        self.converged = torch.zeros(B, dtype=torch.bool, device=like.device)
        self.failed = torch.zeros(B, dtype=torch.bool, device=like.device)
        self.iterations = torch.zeros(B, dtype=torch.long, device=like.device)
        self.F0 = torch.full((B,), math.nan, dtype=like.dtype, device=like.device)
        self.failure = [""] * B
        self.tol, self.n_converge = settings.tol, settings.n_converge
        self.trace: list[list[dict]] = [[] for _ in range(B)]


def _quad(a: Tensor, m: Tensor, b: Tensor) -> Tensor:
    """Σ_c a_cᵀ·M·b_c for real views a (..., c, n, [k]) and b, M (..., n, n)."""
    m = m.unsqueeze(-3)
    if a.ndim == m.ndim - 1:  # vectors (..., c, n)
        return ((a.unsqueeze(-2) @ m)[..., 0, :] * b).sum((-1, -2))
    return (a.transpose(-1, -2) @ (m @ b)).sum(-3)


def _precision(Q: Tensor, h: Tensor) -> Tensor:
    return (Q * (PRECISION_FLOOR + torch.exp(h))[..., None, None]).sum(-3)


def _weighted(Q: Tensor, weights: Tensor | None) -> Tensor:
    if weights is None:
        return Q
    root = weights.sqrt()
    return Q * root[:, None, :, None] * root[:, None, None, :]


def m_step(problem: Problem, rows: Tensor, J: Tensor, e: Tensor, h: Tensor, Q: Tensor, settings: VLSettings):
    """Fisher scoring on the log-precisions h (SPM's M-step) for the fits ``rows``.

    Returns the precision Π, parameter covariance Cp, hyperparameter covariance Ch and h − hE at the
    last step taken (the values the free energy uses), and the updated h.
    """
    beta = problem.beta[rows]
    hE = problem.hE[rows]

    def moments(h_: Tensor):
        iS = _precision(Q, h_)
        Cp = symmetric_inverse(beta[:, None, None] * _quad(J, iS, J) + problem.ipC)
        return iS, Cp

    if problem.hC is None:
        iS, Cp = moments(h)
        nh = h.shape[1]
        return iS, Cp, h.new_zeros(len(rows), nh, nh), h - hE, h
    ihC = torch.linalg.inv(problem.hC)
    still = torch.ones(len(rows), dtype=torch.bool, device=h.device)
    out = None
    for _ in range(settings.mstep_iter):
        iS, Cp = moments(h)
        S = torch.linalg.inv(iS)
        P = Q * torch.exp(h)[..., None, None]  # (b, nh, n, n)
        PS = P @ S[:, None]
        JPJ = _quad(J[:, None], P, J[:, None])  # (b, nh, np, np)
        trace_ps = torch.diagonal(PS, dim1=-2, dim2=-1).sum(-1)
        ePe = _quad(e[:, None], P, e[:, None])
        trace_cp = (Cp[:, None] * JPJ.transpose(-1, -2)).sum((-1, -2))
        dFdh0 = beta[:, None] * (trace_ps / 2 - ePe / 2 - trace_cp / 2)
        dFdhh = -beta[:, None, None] * (PS[:, :, None] * PS[:, None].transpose(-1, -2)).sum((-1, -2)) / 2
        dFdhh = dFdhh + torch.diag_embed(dFdh0)
        d = h - hE
        dFdh = dFdh0 - d @ ihC.T
        dFdhh = dFdhh - ihC
        Ch = symmetric_inverse(-dFdhh)
        step = local_linear_step(dFdhh, dFdh, 4.0).clamp(-1.0, 1.0)
        current = (iS, Cp, Ch, d)
        out = (
            current
            if out is None
            else tuple(torch.where(_expand(still, c), c, o) for c, o in zip(current, out, strict=True))
        )
        h = torch.where(still[:, None], h + step, h)
        still = still & ((dFdh * step).sum(-1) >= settings.mstep_tol)
        if not bool(still.any()):
            break
    return (*out, h)


def _expand(mask: Tensor, like: Tensor) -> Tensor:
    return mask.reshape(-1, *([1] * (like.ndim - 1)))


def free_energy(problem, rows, e, p, iS, Cp, Ch, d) -> Tensor:
    """(b, 3): L₁ (accuracy), L₂ (parameter complexity), L₃ (hyperparameter complexity)."""
    beta = problem.beta[rows]
    n_y = e.shape[-1]
    L1 = beta * (logdet(iS) / 2 - _quad(e, iS, e) / 2 - n_y * LOG_2PI / 2)
    ipC = problem.ipC
    L2 = logdet(ipC @ Cp) / 2 - torch.einsum("bi,ij,bj->b", p, ipC, p) / 2
    if problem.hC is None:
        L3 = torch.zeros_like(L1)
    else:
        ihC = torch.linalg.inv(problem.hC)
        L3 = logdet(ihC @ Ch) / 2 - torch.einsum("bi,ij,bj->b", d, ihC, d) / 2
    return torch.stack([L1, L2, L3], -1)


def _jacobian_ok(f: Tensor, J: Tensor) -> Tensor:
    finite = torch.isfinite(f).flatten(1).all(1) & torch.isfinite(J).flatten(1).all(1)
    return finite & (J.nan_to_num(0.0).abs().flatten(1).amax(1) <= MAX_JACOBIAN)


def _evaluate(problem: Problem, forward: ForwardJacobian, state: _State, rows: Tensor, settings: VLSettings, k: int):
    """f and J at the current p of ``rows``; where they fail, back off from the last accepted point
    (shorter steps, up to 4 times, as SPM) and mark fits that still fail."""
    f, J = forward(problem.theta(state.p[rows], rows), problem.basis)
    ok = _jacobian_ok(f, J)
    for _ in range(4):
        bad = rows[~ok]
        if len(bad) == 0 or k == 1:
            break
        state.v[bad] = torch.clamp(state.v[bad] - 2, max=-4.0)
        state.p[bad] = state.best_p[bad] + local_linear_step(state.dFdpp[bad], state.dFdp[bad], state.v[bad])
        f_bad, J_bad = forward(problem.theta(state.p[bad], bad), problem.basis)
        where = torch.nonzero(~ok).flatten()
        f[where], J[where] = f_bad, J_bad
        ok = _jacobian_ok(f, J)
    return f, J, ok


def run(
    problem: Problem,
    forward: ForwardJacobian,
    settings: VLSettings,
    p0: Tensor | None = None,
    h0: Tensor | None = None,
    progress=None,
) -> Raw:
    """Run the scheme on every fit of ``problem`` (see the module docstring)."""
    start = time.perf_counter()
    B = problem.y.shape[0]
    p0 = problem.y.new_zeros(B, problem.n_free) if p0 is None else p0
    h0 = problem.hE.clone() if h0 is None else h0
    state = _State(problem, p0, h0, settings)
    weights = None
    for k in range(1, settings.max_iter + 1):
        rows = torch.nonzero(state.active).flatten()
        if len(rows) == 0:
            break
        f, J, ok = _evaluate(problem, forward, state, rows, settings, k)
        _fail(state, rows[~ok], k)
        keep = ok
        rows, f, J = rows[keep], f[keep], J[keep]
        if len(rows) == 0:
            continue
        e = problem.y[rows] - f
        Q = problem.Q[rows]
        if settings.noise == "student_t":
            weights = student_t_weights(e, _precision(Q, state.h[rows]), settings.dof)
        Q = _weighted(Q, weights)
        iS, Cp, Ch, d, h = m_step(problem, rows, J, e, state.h[rows], Q, settings)
        state.h[rows] = h
        p = state.p[rows]
        L = free_energy(problem, rows, e, p, iS, Cp, Ch, d)
        F = L.sum(-1)
        if k == 1 and not bool(torch.isfinite(F).all()):
            bad = ~torch.isfinite(F)
            _fail(state, rows[bad], k, "the free energy is not finite (data or prediction too extreme)")
            rows, F, L, f, J, e, iS, Cp, Ch, p = (t[~bad] for t in (rows, F, L, f, J, e, iS, Cp, Ch, p))
        _accept_and_step(problem, state, rows, k, F, L, p, f, J, e, iS, Cp, Ch)
        if progress is not None:
            progress.update(1)
    state.iterations = torch.where(state.iterations == 0, torch.full_like(state.iterations, k), state.iterations)
    return _finish(problem, state, time.perf_counter() - start)


def _fail(state: _State, rows: Tensor, k: int, reason: str | None = None) -> None:
    where = "at the starting point" if k == 1 else f"at iteration {k}, after backing off 4 times"
    for r in rows.tolist():
        state.active[r] = False
        state.failed[r] = True
        state.iterations[r] = k
        state.failure[r] = reason or f"the forward model returned non-finite values or Jacobian {where}"


def _accept_and_step(problem, state, rows, k, F, L, p, f, J, e, iS, Cp, Ch) -> None:
    """SPM's accept/reject rule, the local-linearisation step and the convergence streak."""
    beta = problem.beta[rows]
    accept = (F > state.best_F[rows]) | ((k < 3) & torch.isfinite(F))
    if k == 1:
        state.F0[rows] = F
    a = rows[accept]
    state.best_F[a], state.best_L[a] = F[accept], L[accept]
    state.best_p[a], state.best_h[a] = p[accept], state.h[a]
    state.best_Cp[a], state.best_Ch[a], state.best_f[a] = Cp[accept], Ch[accept], f[accept]
    grad = beta[accept, None] * _quad(J[accept], iS[accept], e[accept][..., None])[..., 0]
    state.dFdp[a] = grad - p[accept] @ problem.ipC
    state.dFdpp[a] = -beta[accept, None, None] * _quad(J[accept], iS[accept], J[accept]) - problem.ipC
    state.v[a] = torch.clamp(state.v[a] + 0.5, max=4.0)
    r = rows[~accept]
    state.p[r], state.h[r] = state.best_p[r], state.best_h[r]
    state.v[r] = torch.clamp(state.v[r] - 2.0, max=-4.0)
    dp = local_linear_step(state.dFdpp[rows], state.dFdp[rows], state.v[rows])
    state.p[rows] = state.p[rows] + dp
    predicted = (state.dFdp[rows] * dp).sum(-1)
    small = predicted < state.tol
    state.streak[rows] = torch.where(small, state.streak[rows] + 1, torch.zeros_like(state.streak[rows]))
    for i, row in enumerate(rows.tolist()):
        state.trace[row].append(
            {
                "iteration": k,
                "accepted": bool(accept[i]),
                "F": float(F[i]),
                "F_gain": float(state.best_F[row] - state.F0[row]),
                "dF_predicted": float(predicted[i]),
                "log_step": float(state.v[row]),
            }
        )
        logger.debug(
            "VL %s: %d F: %.3e dF predicted: %.3e",
            "(+)" if accept[i] else "(-)",
            k,
            state.best_F[row] - state.F0[row],
            predicted[i],
        )
    done = state.streak[rows] >= state.n_converge
    state.converged[rows[done]] = True
    state.active[rows[done]] = False
    state.iterations[rows[done]] = k


def _finish(problem: Problem, state: _State, seconds: float) -> Raw:
    rows = torch.arange(problem.y.shape[0], device=problem.y.device)
    basis = problem.basis
    mean = problem.theta(state.best_p, rows)
    cov = basis @ state.best_Cp @ basis.T
    return Raw(
        mean=mean,
        cov=(cov + cov.transpose(-1, -2)) / 2,
        F=state.best_F,
        L=state.best_L,
        h=state.best_h,
        h_cov=state.best_Ch,
        predicted=state.best_f,
        iterations=state.iterations,
        converged=state.converged,
        failed=state.failed,
        failure=state.failure,
        trace=state.trace,
        seconds=seconds,
    )

"""Delay operators: folding axonal delays into a delay-free Jacobian (SPM's approach).

A linearised delayed system dx_i/dt = Σ_j J_ij x_j(t − D_ij) (D ≥ 0 in seconds) has characteristic
roots λ with (λI − J∘e^{−λD}) v = 0. SPM replaces it by dx/dt = Q·J x with a *delay operator* Q:

* :func:`first_order_operator` — Q = (I + D∘J)⁻¹, from x(t − d) ≈ x(t) − d·ẋ(t). SPM uses it for
  CMM_NMDA (written there as (I − D∘J)⁻¹ with D = −delays); thalia uses it for TCM's
  ``delay_mode="first_order"`` and the ``spm`` spectral mode of TCM.
* :func:`spm_series_operator` — SPM's ``spm_dcm_delay`` for CMC: the matrix X = Q·J solving
  X = Σₙ (J∘(−D)ⁿ) Xⁿ/n! by a Robbins–Monro iteration over truncated Taylor series, stopped at a
  relative tolerance of 1e-6 (reproduced step for step, so that SPM's numbers come out).
* :func:`exact_delay_jacobian` — the same X solved to machine precision: each eigenvalue of X is an
  exact characteristic root of the delayed system (if Xv = λv then λv = (J∘e^{−λD})v), so X is found
  by Newton's method on the nonlinear eigenproblem, one root per mode, started from the first-order
  operator's modes.
"""

from __future__ import annotations

import numpy as np
import torch

from thalia._validation import check_option
from thalia.mass._autodiff import tracks_derivatives, transforms_active

Tensor = torch.Tensor

DELAY_METHODS = ("exact", "spm_series", "first_order", "none")
#: SPM's Robbins–Monro step and its relative stopping tolerance (``spm_dcm_delay``).
RM_STEP = 0.25
RM_TOL = 1e-6
#: Tolerance of the series when it stands in for the exact solution.
SERIES_EXACT_TOL = 1e-12
#: Newton steps of the delayed modes under torch.func transforms (quadratic convergence from the
#: first-order modes: 5 reach machine precision for the reference CMC).
VMAP_NEWTON_STEPS = 8
#: Above this condition number the solved eigenvectors are not trusted as a basis.
MAX_MODE_CONDITION = 1e10


def _eye(n: int, like: Tensor) -> Tensor:
    return torch.eye(n, dtype=like.dtype, device=like.device)


def first_order_operator(J: Tensor, D: Tensor) -> Tensor:
    """Q = (I + D∘J)⁻¹ for delays ``D`` ≥ 0 (s); the delayed Jacobian is Q·J."""
    eye = _eye(J.shape[-1], J)
    return torch.linalg.solve(eye + D * J, eye.expand_as(J))


def _inf_norm(x: np.ndarray) -> float:
    return float(np.abs(x).sum(-1).max())


def spm_series_operator(J: Tensor, D: Tensor, n_terms: int = 256, tol: float = RM_TOL) -> Tensor:
    """SPM's ``spm_dcm_delay`` (Robbins–Monro over the Taylor series), returning Q with Q·J ≈ X.

    Reproduces SPM's iteration, including its truncations (terms stop once their ∞-norm is below
    1e-6·‖X₀‖∞, iterations once successive estimates differ by less), so the result differs from the
    exact solution (:func:`exact_delay_jacobian`) by about that tolerance. Its stopping rules make it
    a discontinuous function of J: it is computed in NumPy and not differentiated (use
    :func:`exact_delay_jacobian` for gradients). A smaller ``tol`` (with more ``n_terms``) runs the
    same iteration to convergence.
    """
    j = J.detach().cpu().numpy()
    minus_d = -D.detach().cpu().numpy()
    eye = np.eye(j.shape[0])
    qj = np.linalg.solve(eye - minus_d * j, j)
    tol = _inf_norm(qj) * tol
    q = j
    for _ in range(n_terms):
        power, q, dn = eye, j, np.ones_like(minus_d)
        for k in range(1, n_terms + 1):
            power = power @ qj / k
            dn = dn * minus_d
            dq = np.nan_to_num((dn * j) @ power, nan=0.0)
            q = q + dq
            if _inf_norm(dq) < tol:
                break
        qj = qj * (1 - RM_STEP) + q * RM_STEP
        if _inf_norm(qj - q) < tol:
            break
    operator = np.linalg.solve(j.T, q.T).T
    return torch.as_tensor(operator, dtype=J.dtype, device=J.device)


def _newton_system(J: Tensor, D: Tensor, lam: Tensor, v: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """Bordered Newton system of (λI − J∘e^{−λD}) v = 0, c·v = 1, batched over modes (rows of v).

    J and D complex; returns (system (k, n+1, n+1), right-hand side (k, n+1)).
    """
    n = J.shape[-1]
    coupled = J * torch.exp(-lam[:, None, None] * D)  # (k, n, n)
    m = lam[:, None, None] * torch.eye(n, dtype=lam.dtype, device=lam.device) - coupled
    residual = (m @ v[..., None])[..., 0]
    d_lam = v + ((coupled * D) @ v[..., None])[..., 0]
    top = torch.cat([m, d_lam[..., None]], 2)
    bottom = torch.cat([c, torch.zeros_like(lam)[:, None]], 1)[:, None]
    rhs = -torch.cat([residual, ((c * v).sum(-1) - 1)[:, None]], 1)
    return torch.cat([top, bottom], 1), rhs


def _delay_modes(J: np.ndarray, D: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton on every mode in NumPy (no autograd): (λ (k,), v (k, n), normalisation c (k, n)).

    The same bordered system as :func:`_newton_system`, assembled in place.
    """
    n = J.shape[0]
    lam, vecs = np.linalg.eig(np.linalg.solve(np.eye(n) + D * J, J))
    v = vecs.T.astype(complex)
    c = v.conj()
    system = np.zeros((n, n + 1, n + 1), dtype=complex)
    system[:, n, :n] = c
    rhs = np.empty((n, n + 1, 1), dtype=complex)
    diagonal = np.arange(n)
    jd = J * D
    for _ in range(max_iter):
        phase = np.exp(-lam[:, None, None] * D)
        coupled = J * phase
        system[:, :n, :n] = -coupled
        system[:, diagonal, diagonal] += lam[:, None]
        system[:, :n, n] = v + ((jd * phase) @ v[..., None])[..., 0]
        rhs[:, :n, 0] = (coupled @ v[..., None])[..., 0] - lam[:, None] * v
        rhs[:, n, 0] = 1 - (c * v).sum(-1)
        step = np.linalg.solve(system, rhs)[..., 0]
        v, lam = v + step[:, :n], lam + step[:, n]
        # quadratic convergence: after a step of relative size ε the error is O(ε²)
        if float((np.abs(step[:, n]) / np.maximum(np.abs(lam), 1.0)).max()) < tol:
            return lam, v, c
    raise RuntimeError("delay modes did not converge")


def exact_delay_jacobian(J: Tensor, D: Tensor, tol: float = 1e-8, max_iter: int = 40) -> Tensor:
    """X with X = Σₙ (J∘(−D)ⁿ) Xⁿ/n! exactly: its eigenvalues are characteristic roots of the delayed system.

    Newton's method on each mode (λ, v) of (λI − J∘e^{−λD}) v = 0 with the normalisation c·v = 1,
    started from the modes of the first-order operator's (I + D∘J)⁻¹J, iterated in NumPy until the
    relative step is below ``tol`` (quadratic convergence then leaves an error of order tol²); one more
    Newton step in torch makes the result differentiable in J and D (the implicit-function derivative).
    Raises ``RuntimeError`` if the iteration does not converge or the modes do not form a basis (then
    :func:`delay_operator` falls back to SPM's series).
    """
    n = J.shape[-1]
    cdtype = torch.complex128 if J.dtype == torch.float64 else torch.complex64
    if transforms_active():  # under vmap / jacfwd: a fixed number of torch Newton steps, no branches
        return _assemble(*_delay_modes_torch(J, D, cdtype)[:2])
    lam_np, v_np, c_np = _delay_modes(J.detach().cpu().numpy(), D.detach().cpu().numpy(), tol, max_iter)
    if np.linalg.cond(v_np) > MAX_MODE_CONDITION:  # modes collapsed onto one root: no basis
        raise RuntimeError("the delayed modes do not form a basis")
    lam, v, c = (torch.as_tensor(a, dtype=cdtype, device=J.device) for a in (lam_np, v_np, c_np))
    if tracks_derivatives(J, D):
        system, rhs = _newton_system(J.to(cdtype), D.to(cdtype), lam, v, c)
        step = torch.linalg.solve(system, rhs)
        v, lam = v + step[:, :n], lam + step[:, n]
    return _assemble(v, lam)


def _delay_modes_torch(J: Tensor, D: Tensor, cdtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """(v, λ, quality) after ``VMAP_NEWTON_STEPS`` Newton steps in torch (vmap-safe, no branches).

    ``quality`` is the last relative eigenvalue step, or +inf when the modes do not form a basis:
    above ~1e-10 the result is not converged and should be recomputed eagerly.
    """
    n = J.shape[-1]
    lam, vecs = torch.linalg.eig(first_order_operator(J, D) @ J)
    v = vecs.transpose(-1, -2)
    c = v.conj()
    step = torch.zeros_like(lam)
    for _ in range(VMAP_NEWTON_STEPS):
        system, rhs = _newton_system(J.to(cdtype), D.to(cdtype), lam, v, c)
        delta = torch.linalg.solve(system, rhs)
        v, lam, step = v + delta[:, :n], lam + delta[:, n], delta[:, n]
    last = (step.abs() / lam.abs().clamp_min(1.0)).max()
    basis = torch.linalg.cond(v) < MAX_MODE_CONDITION
    quality = torch.where(basis & torch.isfinite(last), last, torch.full_like(last, float("inf")))
    return v, lam, quality


def delay_mode_quality(J: Tensor, D: Tensor) -> Tensor:
    """Convergence measure of the vmap-safe delayed-mode solve (see :func:`_delay_modes_torch`)."""
    cdtype = torch.complex128 if J.dtype == torch.float64 else torch.complex64
    return _delay_modes_torch(J, D, cdtype)[2]


def _assemble(v: Tensor, lam: Tensor) -> Tensor:
    """X = V diag(λ) V⁻¹ from modes stored as rows of ``v``."""
    vecs = v.transpose(-1, -2)
    return (vecs @ torch.diag_embed(lam) @ torch.linalg.inv(vecs)).real


def delay_operator(J: Tensor, D: Tensor, method: str) -> Tensor:
    """The delay operator Q (Q·J is the delayed Jacobian) for delays ``D`` (s) by ``method``:
    "exact", "spm_series", "first_order", or "none" (the delays are ignored: Q = I).

    ``"exact"`` falls back to SPM's series iterated to a relative tolerance of 1e-12 when the mode
    iteration fails (clustered, nearly defective modes, e.g. several near-identical sources).
    """
    check_option("delay", method, DELAY_METHODS)
    if method == "none":
        return _eye(J.shape[-1], J)
    D = D.to(J)
    if method == "first_order":
        return first_order_operator(J, D)
    if method == "spm_series":
        return spm_series_operator(J, D)
    try:
        x = exact_delay_jacobian(J, D)
    except (RuntimeError, torch.linalg.LinAlgError, np.linalg.LinAlgError):
        return spm_series_operator(J, D, n_terms=2048, tol=SERIES_EXACT_TOL)
    return torch.linalg.solve(J.transpose(-1, -2), x.transpose(-1, -2)).transpose(-1, -2)

"""Laplace-domain transfer functions with element-wise delays (tcm_model.md Part A §4, §6).

For a linearisation dx/dt = A x + B u observed through y = C x, with the delay of each coupling
applied as a phase factor, A_eff(ω) = A ∘ exp(−iωD), the transfer function is

    H(ω) = C (iωI − A_eff(ω))⁻¹ B.

Two kernels compute it as batched linear solves over frequencies (no eigendecomposition, so it is
differentiable and exact for defective or nearly defective Jacobians):

* :func:`transfer_dense` — any A, D: one n×n complex solve per frequency.
* :func:`transfer_schur` — when the state splits into a block whose own coupling is *diagonal*
  (the conductances of a conductance-based model each relax only to their own target), the
  Schur complement reduces every solve to the small block exactly (8·ns instead of 56·ns for TCM).
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def laplace_s(freqs_hz: Tensor, like: Tensor) -> Tensor:
    """s = i·2π·f for frequencies in Hz, complex with the precision (and device) of ``like``."""
    f = freqs_hz.to(dtype=like.dtype, device=like.device)
    return torch.complex(torch.zeros_like(f), 2.0 * math.pi * f)


def transfer_dense(A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, freqs_hz: Tensor) -> Tensor:
    """H(ω) = C (sI − A∘e^{−sD})⁻¹ B for every frequency: (F, n_out, n_in) complex.

    Parameters
    ----------
    A : (n, n) real Jacobian ∂f/∂x (s⁻¹).
    B : (n, k) input matrix ∂f/∂u.
    C : (p, n) observation matrix.
    D : (n, n) delays (s), or None for none.
    freqs_hz : (F,) frequencies (Hz).
    """
    s = laplace_s(freqs_hz, A)
    n = A.shape[-1]
    a_eff = A.to(s.dtype)[None]
    if D is not None:
        a_eff = a_eff * torch.exp(-s[:, None, None] * D.to(s.dtype)[None])
    eye = torch.eye(n, dtype=s.dtype, device=A.device)
    system = s[:, None, None] * eye - a_eff
    response = torch.linalg.solve(system, B.to(s.dtype).expand(len(s), *B.shape))
    return C.to(s.dtype) @ response


def schur_system(
    a11: Tensor, a12: Tensor, a21: Tensor, a22: Tensor, delay11: Tensor, self_delay: Tensor, s: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The Schur complement of sI − A∘e^{−sD} onto the v-block, for the layout of :func:`transfer_schur`.

    ``s`` is (F, 1) complex. Returns ``(S, m22, coef, phase)``: S (F, m, m); the diagonal g-block
    m22 = s − a22 e^{−s d} (F, G, m); coef = a12 e^{−s d} / m22 (F, G, m); phase = e^{−s D} (F, m, m).
    det(sI − A_eff) = det(S)·Π m22.
    """
    minus_s = -s
    # real × complex promotes to complex inside each op; only matmul operands are converted
    phase_self = torch.exp(minus_s * self_delay[None])  # (F, m)
    phase = torch.exp(minus_s[:, :, None] * delay11[None])  # (F, m, m)
    m22 = s[:, None, :] - a22[None] * phase_self[:, None, :]
    coef = (a12[None] * phase_self[:, None, :]) / m22
    # every group shares the phase of its (row, column) pair, so contract the groups first
    coupled = torch.einsum("fgm,gmn->fmn", coef, a21.to(s.dtype)) * phase
    return torch.diag_embed(s - a11[None] * phase_self) - coupled, m22, coef, phase


def transfer_schur(
    a11: Tensor,
    a12: Tensor,
    a21: Tensor,
    a22: Tensor,
    delay11: Tensor,
    self_delay: Tensor,
    b2: Tensor,
    c1: Tensor,
    c2: Tensor | None,
    freqs_hz: Tensor,
) -> Tensor:
    """Exact transfer function of a system whose fast block is diagonal, by Schur complement.

    The state is (v, g) with v of size m and g made of ``G`` groups of size m (g_X for X < G).
    The Jacobian is A = [[diag(a11), [diag(a12[X])]_X], [a21 stacked over X, diag(a22)]]: each g_X[i]
    couples back only to v[i]. Delays: entry (i, j) between the v-rows and any row is delayed by
    ``delay11[i, j]`` (s), and every entry on the diagonal of a row of group i by ``self_delay[i]``
    (the original's D[i, j] = Tc[p(i), p(j)] + ID[p(j)] has exactly this form). Inputs enter the
    g-block only (``b2``: (G, m, k)); outputs read v through ``c1`` (p, m) and g through ``c2``
    (G, p, m); ``c2=None`` means the g-block is not observed (its readout is skipped).

    Returns H (F, p, k) complex, equal to :func:`transfer_dense` on the assembled system.
    """
    s = laplace_s(freqs_hz, a11)[:, None]  # (F, 1)
    cdtype = s.dtype
    schur, m22, coef, phase = schur_system(a11, a12, a21, a22, delay11, self_delay, s)
    rhs = torch.einsum("fgm,gmk->fmk", coef, b2.to(cdtype))
    x1 = torch.linalg.solve(schur, rhs)  # (F, m, k)
    if c2 is None:
        return c1.to(cdtype) @ x1
    # g-block readout: Σ_g c2[g] M22⁻¹ (b2[g] + (a21[g]∘phase) x1)
    c2e = c2[None] / m22[:, :, None, :]  # (F, G, p, m)
    readout = torch.einsum("fgpm,gmn->fpmn", c2e, a21.to(cdtype)) * phase[:, None]  # (F, p, m, n)
    out = c1.to(cdtype) @ x1 + torch.einsum("fgpm,gmk->fpk", c2e, b2.to(cdtype))
    return out + torch.einsum("fpmn,fnk->fpk", readout, x1)

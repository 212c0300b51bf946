"""Small batched linear-algebra helpers of the variational Laplace scheme."""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor

#: Singular values outside (TOL, 1/TOL) are left out of log-determinants (as SPM's ``spm_logdet``).
LOGDET_TOL = 1e-16
#: Above this time step the local-linearisation update is the Gauss–Newton step.
MAX_STEP_TIME = math.exp(16.0)


def logdet(matrix: Tensor) -> Tensor:
    """log|det| of a batch of square matrices from their singular values in (1e-16, 1e16).

    Works for symmetric positive or negative definite matrices and for products of two symmetric
    positive definite ones (non-symmetric), as the free energy needs.
    """
    finite = torch.isfinite(matrix).flatten(-2).all(-1)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    s = torch.linalg.svdvals(torch.where(finite[..., None, None], matrix, eye))
    s = torch.where(finite[..., None], s, torch.full_like(s, float("nan")))
    keep = (s > LOGDET_TOL) & (s < 1.0 / LOGDET_TOL)
    logs = torch.where(keep, torch.log(torch.where(keep, s, torch.ones_like(s))), torch.zeros_like(s)).sum(-1)
    return torch.where(finite, logs, torch.full_like(logs, float("nan")))


def local_linear_step(hessian: Tensor, gradient: Tensor, log_time: Tensor | float) -> Tensor:
    """The local-linearisation (Ozaki) update of dx/dt = gradient + hessian·x over a time t.

    dx = (expm(t·H) − I)·H⁻¹·g with t = exp(log_time − log|H|/n) (SPM's ``spm_dx`` with a cell
    argument): a small t gives a gradient step of length ~t·g, a large t the Gauss–Newton step −H⁻¹g.

    Parameters
    ----------
    hessian : (..., n, n)
    gradient : (..., n)
    log_time : (...,) or float
        Log of the time step before the scaling by the Hessian's geometric-mean eigenvalue.
    """
    n = gradient.shape[-1]
    log_time = torch.as_tensor(log_time, dtype=gradient.dtype, device=gradient.device).expand(gradient.shape[:-1])
    t = torch.exp(log_time - logdet(hessian) / n)
    augmented = torch.zeros(*gradient.shape[:-1], n + 1, n + 1, dtype=gradient.dtype, device=gradient.device)
    augmented[..., 1:, 0] = t[..., None] * gradient
    augmented[..., 1:, 1:] = t[..., None, None] * hessian
    expm_step = torch.linalg.matrix_exp(augmented)[..., 1:, 0]
    large = t > MAX_STEP_TIME
    if bool(large.any()):
        newton = -(torch.linalg.pinv(hessian) @ gradient[..., None])[..., 0]
        expm_step = torch.where(large[..., None], newton, expm_step)
    return expm_step


def symmetric_inverse(matrix: Tensor) -> Tensor:
    """Inverse of a batch of symmetric positive definite matrices, symmetrised."""
    inverse = torch.linalg.inv(matrix)
    return (inverse + inverse.transpose(-1, -2)) / 2

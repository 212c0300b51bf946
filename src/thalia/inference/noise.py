"""Noise models of the inversion: precision components, SPM's CSD precision, robust reweighting.

The noise precision is Π(h) = Σᵢ exp(hᵢ)·Qᵢ over *precision components* Qᵢ (n_y × n_y) with
log-precisions h under a Gaussian hyperprior (SPM's ``spm_nlsi_GN``). Three helpers build components:

* :func:`identity_component` — one component, Q = I (i.i.d. noise);
* :func:`csd_component` — SPM's ``spm_dcm_csd_Q``: the sampling covariance of a CSD estimate,
  Qc(a, b) = Re[S_{i_a i_b}(w) · conj(S_{j_a j_b}(w))] for elements a = (w, i_a, j_a) and b = (w, i_b,
  j_b) at the same frequency (0 otherwise), regularised and inverted: Q = (Qc + ‖Qc‖₁/32·I)⁻¹. For one
  channel this is diag(1 / (S(w)² + max S²/32)): below about a fifth of the peak power every frequency
  weighs the same in linear power, so the fit follows the spectrum's peaks, not its 1/f shape;
* :func:`relative_component` — diag(1 / (S_ii(w) S_jj(w))), the sampling variance of a spectral
  estimate without the regulariser: relative errors weigh the same at every frequency (for one channel
  a fit of the log spectrum, to first order), so the 1/f slope counts as much as the peaks.

Robust noise (``noise="student_t"``) rescales the precision per data point by Student-t
scale-mixture weights wᵢ = (ν + 1) / (ν + zᵢ²) of the current residuals, with zᵢ² = Πᵢᵢrᵢ² relative to
its median over the data (iteratively reweighted least squares): a point far outside the rest of the
fit (a mains line, an artefact peak) loses weight, typical points keep weight ≈ 1. The free energy is
then that of the reweighted Gaussian (comparable between fits with the same weights only).
"""

from __future__ import annotations

import torch

from thalia._validation import check_option, check_positive_float

Tensor = torch.Tensor

NOISE_MODELS = ("gaussian", "student_t")
#: Floor on exp(h) in Π(h) (SPM: exp(−32)).
PRECISION_FLOOR = 1e-14


def identity_component(n_data: int, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
    """One precision component, the identity: (1, n_data, n_data)."""
    return torch.eye(n_data, dtype=dtype, device=device)[None]


def csd_component(csd: Tensor) -> Tensor:
    """SPM's precision component of a CSD (F, n, n) (flattened in C order): (1, F·n², F·n²)."""
    csd = torch.as_tensor(csd)
    if csd.ndim == 1:
        csd = csd[:, None, None]
    n_freq, n, _ = csd.shape
    # covariance of elements (i, j) and (k, l) at one frequency: S_ik · conj(S_jl)
    block = torch.einsum("fik,fjl->fijkl", csd, csd.conj()).real.reshape(n_freq, n * n, n * n)
    qc = torch.block_diag(*block) if n_freq > 1 else block[0]
    norm1 = qc.abs().sum(0).max()
    q = torch.linalg.inv(qc + norm1 / 32 * torch.eye(qc.shape[0], dtype=qc.dtype, device=qc.device))
    return ((q + q.T) / 2)[None]


def relative_component(csd: Tensor) -> Tensor:
    """Relative precision component of a CSD (F, n, n), diag(1 / (S_ii(w)·S_jj(w))): (1, F·n², F·n²)."""
    csd = torch.as_tensor(csd)
    if csd.ndim == 1:
        csd = csd[:, None, None]
    power = torch.diagonal(csd, dim1=-2, dim2=-1).real
    if not bool((power > 0).all()):
        raise ValueError("Invalid value for 'spectrum': relative weighting needs auto-spectra > 0 at every frequency.")
    return torch.diag((1.0 / (power[:, :, None] * power[:, None, :])).reshape(-1))[None]


def check_noise(noise: str, dof: float) -> tuple[str, float]:
    """Validated (noise model, degrees of freedom)."""
    return check_option("noise", noise, NOISE_MODELS), check_positive_float("dof", dof)


def student_t_weights(residual: Tensor, precision: Tensor, dof: float) -> Tensor:
    """Scale-mixture weights (B, n_y) from residuals (B, c, n_y) and precisions Π (B, n_y, n_y).

    Residuals are measured against their median scaled size, z² = Πᵢᵢrᵢ² / median(Πr²), so the
    weights (ν + 1)/(ν + z²) single out points that are outliers relative to the rest of the fit
    (the overall noise level is the noise precision's job).
    """
    squared = torch.diagonal(precision, dim1=-2, dim2=-1) * (residual**2).sum(-2)
    scale = squared.median(-1, keepdim=True).values.clamp_min(torch.finfo(squared.dtype).tiny)
    return (dof + 1.0) / (dof + squared / scale)

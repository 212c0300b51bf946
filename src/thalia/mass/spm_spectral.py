"""SPM's spectral mode (``spm_csd_mtf`` / ``spm_dcm_mtf``) for any neural mass model.

At an expansion point x (a model's ``expansion_point``):

1. J = ∂f/∂x and B = ∂f/∂u, exactly (automatic differentiation) or as SPM takes them (forward
   differences with step e⁻⁸, ``spm_diff``);
2. the delays are folded in: dfdx = Q·J, dfdu = Q·B with the delay operator Q (:mod:`thalia.mass.delays`);
3. the modes of dfdx: eigenvalues s_k, eigenvectors V; SPM's transform s ← i·Im s + Re s − e^{Re s}
   (which pushes unstable modes back into the left half-plane and leaves stable ones almost unchanged);
4. the transfer function S(w) = Σ_k (dgdx·V)_k (V⁻¹·dfdu)_k / (2πiw − s_k);
5. the CSD (|S|²Gu + Gs + Gn)·exp(f₁ + f₂·(1:nw)/nw) with innovations Gu = exp(a₁)w^{−exp(a₂)}·
   exp(X·d) (X: DCT basis functions 2–5 over the nw frequencies), common channel noise
   Gn = exp(b₁ − 2)w^{−exp(b₂)} and channel-specific noise Gs = exp(c₁ − 2)w^{−exp(c₂)} on the
   auto-spectra. Models without ``d`` or ``f`` (TCM) use d = 0, f = 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from thalia._validation import check_option
from thalia.mass.delays import delay_operator
from thalia.mass.noise import channel_noise, combine, innovation_spectrum

Tensor = torch.Tensor

#: SPM's finite-difference step (``spm_diff``): exp(−8).
FD_STEP = math.exp(-8.0)
JACOBIANS = ("exact", "finite_difference")
N_DCT = 5


@dataclass
class SpectralResponse:
    """Every intermediate of SPM's spectral model at one parameter set.

    Attributes
    ----------
    freqs : (F,) Hz. csd : (F, n_ch, n_ch) complex. transfer : (F, n_ch, n_u) complex, S(w).
    gu : (F, n_u) innovations. gs : (F, n_ch) channel noise. gn : (F,) common noise.
    spectral_filter : (F,) exp(f₁ + f₂·(1:nw)/nw).
    x : expansion point. jacobian : ∂f/∂x there (undelayed). dfdx, dfdu : delayed Jacobian and input
    matrix (Q·J, Q·B). dgdx : observation matrix. modes_raw, modes : eigenvalues of dfdx before and
    after SPM's transform.
    """

    freqs: Tensor
    csd: Tensor
    transfer: Tensor
    gu: Tensor
    gs: Tensor
    gn: Tensor
    spectral_filter: Tensor
    x: Tensor
    jacobian: Tensor
    dfdx: Tensor
    dfdu: Tensor
    dgdx: Tensor
    modes_raw: Tensor
    modes: Tensor


def forward_difference(fun: Callable[[Tensor], Tensor], z: Tensor, step: float = FD_STEP) -> Tensor:
    """SPM's ``spm_diff``: (f(z + h·e_i) − f(z)) / h for every i, as columns."""
    f0 = fun(z)
    points = z[None] + step * torch.eye(z.shape[0], dtype=z.dtype, device=z.device)
    return ((torch.func.vmap(fun)(points) - f0[None]) / step).T


def spm_mode_transform(s: Tensor) -> Tensor:
    """SPM's eigenvalue transform s ← i·Im s + Re s − exp(Re s)."""
    return torch.complex(s.real - torch.exp(s.real), s.imag)


def modal_transfer(
    dfdx: Tensor, dfdu: Tensor, dgdx: Tensor, freqs: Tensor, transform: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """S(w) (F, n_ch, n_u) by SPM's modal expansion; returns (S, raw eigenvalues, used eigenvalues).

    ``transform=False`` skips SPM's eigenvalue transform (then S is exactly dgdx (iωI − dfdx)⁻¹ dfdu).
    """
    s_raw, vecs = torch.linalg.eig(dfdx)
    s = spm_mode_transform(s_raw) if transform else s_raw
    cdtype = vecs.dtype
    dgdv = dgdx.to(cdtype) @ vecs
    dvdu = torch.linalg.solve(vecs, dfdu.to(cdtype))
    iw = torch.complex(torch.zeros_like(freqs), 2 * math.pi * freqs).to(cdtype)
    # a strongly unstable mode is sent to −∞ by the transform (e^{Re s} overflows): its term is 0
    finite = torch.isfinite(s.real)
    s_safe = torch.where(finite, s, torch.zeros_like(s))
    zero = torch.zeros((), dtype=cdtype, device=s.device)
    kernel = torch.where(finite[None], 1.0 / (iw[:, None] - s_safe[None]), zero)  # (F, k)
    transfer = torch.einsum("ck,fk,kj->fcj", dgdv, kernel, dvdu)
    return transfer, s_raw, s


def dct_basis(n: int, k: int, like: Tensor) -> Tensor:
    """(n, k) orthonormal DCT-II basis (SPM's ``spm_dctmtx``): column 0 constant."""
    return _dct_basis(n, k, like.dtype, like.device)


@functools.lru_cache(maxsize=32)
def _dct_basis(n: int, k: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    i = torch.arange(n, dtype=dtype, device=device)[:, None]
    j = torch.arange(k, dtype=dtype, device=device)[None]
    basis = math.sqrt(2.0 / n) * torch.cos(math.pi * (2 * i + 1) * j / (2 * n))
    return torch.cat([torch.full((n, 1), 1 / math.sqrt(n), dtype=dtype, device=device), basis[:, 1:]], 1)


def noise_spectra(t: Mapping[str, Tensor], freqs: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(Gu (F, n_u), Gs (F, n_ch), Gn (F,), filter (F,)) from the spectral parameters a, b, c, d, f."""
    nw = freqs.shape[0]
    gu = innovation_spectrum(t["a"].reshape(2, -1), freqs)
    if "d" in t:
        d = t["d"].reshape(t["d"].shape[0], -1)
        gu = gu * torch.exp(dct_basis(nw, N_DCT, freqs)[:, 1 : 1 + d.shape[0]] @ d)
    gs, gn = channel_noise(t["b"].reshape(2), t["c"].reshape(2, -1), freqs)
    index = torch.arange(1, nw + 1, dtype=freqs.dtype, device=freqs.device) / nw
    f = t["f"].reshape(-1) if "f" in t else torch.zeros(2, dtype=freqs.dtype, device=freqs.device)
    return gu, gs, gn, torch.exp(f[0] + f[1] * index)


def assemble(transfer: Tensor, gu: Tensor, gs: Tensor, gn: Tensor, spectral_filter: Tensor) -> Tensor:
    """CSD = (S diag(Gu) Sᴴ + diag(Gs) + Gn)·filter: (F, n_ch, n_ch)."""
    reps = transfer.shape[-1] // gu.shape[-1]
    gu = gu.repeat(1, reps) if reps > 1 else gu
    csd = combine(transfer, gu, gs, gn)
    return csd * spectral_filter[:, None, None].to(csd.dtype)


def derivatives(model: Any, t: Mapping[str, Tensor], x: Tensor, jacobian: str) -> tuple[Tensor, Tensor]:
    """(∂f/∂x, ∂f/∂u) at (x, u = 0): exact, or by SPM's forward differences."""
    check_option("jacobian", jacobian, JACOBIANS)
    u0 = model.zero_input(x)
    if jacobian == "exact":
        return model.jacobian(x, t, u0), model.input_matrix(x, t)
    return (
        forward_difference(lambda z: model.flow(z, u0, t), x),
        forward_difference(lambda v: model.flow(x, v, t), u0),
    )


def spectral_response(
    model: Any, t: Mapping[str, Tensor], freqs: Tensor, x: Tensor, *, jacobian: str = "exact", delay: str | None = None
) -> SpectralResponse:
    """SPM's spectral model of ``model`` at parameters ``t`` linearised at ``x`` (see module doc)."""
    J, B = derivatives(model, t, x, jacobian)
    q = delay_operator(J, model.delays(t), delay or model.delay_method)
    dfdx, dfdu = q @ J, q @ B
    dgdx = model.observation(t)
    freqs = freqs.to(J)
    transfer, s_raw, s = modal_transfer(dfdx, dfdu, dgdx, freqs)
    gu, gs, gn, spectral_filter = noise_spectra(t, freqs)
    csd = assemble(transfer, gu, gs, gn, spectral_filter)
    return SpectralResponse(freqs, csd, transfer, gu, gs, gn, spectral_filter, x, J, dfdx, dfdu, dgdx, s_raw, s)

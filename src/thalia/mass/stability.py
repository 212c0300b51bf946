"""Stability of a fixed point *with* its delays, by the argument principle.

The undelayed Jacobian's eigenvalues (``FixedPoint.leading_eigenvalue``) do not tell whether the
delayed linearisation dx/dt = Σ_j A_ij x_j(t − D_ij) is stable: delays can destabilise a stable
fixed point (they do for the TCM's original neutral parameters). The characteristic function
χ(s) = det(sI − A∘e^{−sD}) of that retarded system behaves like sⁿ for large |s| in the right
half-plane, so the number of its zeros with Re s > 0 is

    N = n/2 − Δarg χ(iω) / π,   ω from 0 to ∞,

which is computed here on a fine frequency grid, with the TCM's Schur factorisation
det(sI − A_eff) = det(S(s)) · Π (s − a22 e^{−s d}) keeping each determinant 8·ns × 8·ns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from thalia.mass.tcm import TCM
from thalia.mass.transfer import laplace_s, schur_system

Tensor = torch.Tensor


@dataclass(frozen=True)
class DelayedStability:
    """Result of :func:`count_unstable_roots`.

    Attributes
    ----------
    n_unstable : int
        Number of roots of det(sI − A∘e^{−sD}) with Re s > 0 (0 means stable).
    winding_residual : float
        Distance of the raw winding count from the nearest integer (< 0.2 means well resolved).
    f_max_hz : float
        Highest frequency of the grid.
    """

    n_unstable: int
    winding_residual: float
    f_max_hz: float

    @property
    def stable(self) -> bool:
        return self.n_unstable == 0


def _log_characteristic(model: TCM, x: Tensor, p: Mapping[str, Tensor], freqs: Tensor) -> Tensor:
    """log det(sI − A∘e^{−sD}) at s = 2πif (complex, principal branch per factor)."""
    c = model.coupling(p)
    blocks = model.jacobian_blocks(x, p)
    d11, self_delay = model.delay_blocks(p)
    s = laplace_s(freqs, c.W)[:, None]
    schur, m22, _, _ = schur_system(*blocks, d11, self_delay, s)
    return torch.log(torch.linalg.det(schur)) + torch.log(m22).sum((1, 2))


def count_unstable_roots(
    model: TCM,
    p: Mapping[str, Any],
    x: Any = None,
    *,
    df_hz: float = 0.05,
    f_max_hz: float | None = None,
) -> DelayedStability:
    """Count the unstable roots of the TCM's delayed linearisation at its fixed point (or ``x``).

    Parameters
    ----------
    model : TCM
        The model (its ``delay_mode`` decides whether delays are included; "first_order" is
        treated as element-wise, the exact delays it approximates).
    p : ParameterSet or mapping
        Parameters.
    df_hz : float
        Grid step below 500 Hz (coarser, 1 Hz, above); fine enough to follow the phase.
    f_max_hz : float, optional
        Upper end of the grid; by default 200× the largest Jacobian entry over 2π (≥ 20 kHz), where
        χ(iω) ≈ (iω)ⁿ holds to the accuracy needed.
    """
    t = model._tensors(p)
    with torch.no_grad():
        state = model.fixed_point(t).x if x is None else torch.as_tensor(x, dtype=torch.float64)
        scale = float(model.jacobian(state, t).abs().max())
        top = f_max_hz if f_max_hz is not None else max(20000.0, 200.0 * scale / (2 * math.pi))
        freqs = torch.cat([torch.arange(0.0, 500.0, df_hz), torch.arange(500.0, top + 1.0, 1.0)]).to(torch.float64)
        log_chi = _log_characteristic(model, state, t, freqs)
    phase = np.unwrap(log_chi.imag.cpu().numpy())
    raw = model.n_states / 2 - (phase[-1] - phase[0]) / math.pi
    count = int(round(raw))
    return DelayedStability(count, abs(raw - count), float(freqs[-1]))

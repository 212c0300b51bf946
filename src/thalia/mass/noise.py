"""Innovation and channel-noise spectra (SPM-style power laws; tcm_model.md Part A §6).

* innovations (neuronal input) per source: Gu(f) = exp(a₀)·f^(−exp(a₁));
* common channel noise, added to every CSD entry: Gn(f) = exp(b₀ − 2)·f^(−exp(b₁));
* channel-specific noise, added to the auto-spectra: Gs(f) = exp(c₀ − 2)·f^(−exp(c₁)).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def power_law(log_amplitude: Tensor, log_exponent: Tensor, freqs_hz: Tensor, offset: float = 0.0) -> Tensor:
    """exp(amp + offset)·f^(−exp(exponent)), broadcast as (F, …)."""
    log_f = torch.log(freqs_hz.to(log_amplitude)).reshape(-1, *([1] * log_amplitude.ndim))
    return torch.exp(log_amplitude + offset - torch.exp(log_exponent) * log_f)


def innovation_spectrum(a: Tensor, freqs_hz: Tensor) -> Tensor:
    """Gu (F, ns) from a (2, ns)."""
    return power_law(a[0], a[1], freqs_hz)


def channel_noise(b: Tensor, c: Tensor, freqs_hz: Tensor) -> tuple[Tensor, Tensor]:
    """(Gs (F, n_ch), Gn (F,)) from c (2, n_ch) and b (2,)."""
    return power_law(c[0], c[1], freqs_hz, offset=-2.0), power_law(b[0], b[1], freqs_hz, offset=-2.0)


def combine(transfer: Tensor, gu: Tensor, gs: Tensor, gn: Tensor) -> Tensor:
    """CSD(f) = H diag(Gu) Hᴴ + Gn·11ᵀ + diag(Gs): (F, n_ch, n_ch) complex.

    ``transfer`` is (F, n_ch, k), ``gu`` (F, k) the innovation spectrum of each input column.
    """
    signal = (transfer * gu[:, None, :].to(transfer.dtype)) @ transfer.conj().transpose(-1, -2)
    noise = gn[:, None, None] + torch.diag_embed(gs)
    return signal + noise.to(signal.dtype)


def assemble_csd(transfer: Tensor, gu: Tensor, b: Tensor, c: Tensor, freqs_hz: Tensor) -> Tensor:
    """The CSD from the transfer function, the innovations and the channel-noise parameters b, c."""
    gs, gn = channel_noise(b, c, freqs_hz)
    return combine(transfer, gu, gs, gn)

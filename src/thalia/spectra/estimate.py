"""Spectral estimation from time series."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import signal

from thalia._validation import as_float_tensor, check_positive_float, check_positive_int
from thalia.spectra.csd import CSD


def welch_csd(
    data,
    fs: float,
    *,
    nperseg: int,
    fmin: float | None = None,
    fmax: float | None = None,
    channels: Sequence[str] | None = None,
    units: str = "a.u.",
    detrend: str = "constant",
) -> CSD:
    """Welch cross-spectral density (one-sided density, Hann window, 50 % overlap).

    Parameters
    ----------
    data : array_like, (n_channels, n_times) or (n_times,)
        Time series sampled at ``fs`` Hz.
    nperseg : int
        Segment length in samples (frequency resolution fs / nperseg).
    fmin, fmax : float, optional
        Keep frequencies in [fmin, fmax] (0 Hz is always dropped).
    """
    x = as_float_tensor("data", data).numpy()
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"Invalid shape for 'data': expected (n_channels, n_times), got {x.shape}.")
    fs = check_positive_float("fs", fs)
    nperseg = check_positive_int("nperseg", nperseg, minimum=8)
    if nperseg > x.shape[1]:
        raise ValueError(f"Invalid value for 'nperseg': expected <= n_times = {x.shape[1]}, got {nperseg}.")
    n = x.shape[0]
    freqs, cross = signal.csd(x[:, None, :], x[None, :, :], fs=fs, nperseg=nperseg, detrend=detrend, axis=-1)
    keep = freqs > 0
    if fmin is not None:
        keep &= freqs >= fmin
    if fmax is not None:
        keep &= freqs <= fmax
    # scipy returns conj(X_i) X_j; thalia's convention is S_ij = E[X_i conj(X_j)].
    values = np.moveaxis(np.conj(cross[:, :, keep]), -1, 0)
    names = tuple(channels) if channels is not None else tuple(f"ch{i}" for i in range(n))
    return CSD(torch.as_tensor(freqs[keep]), torch.as_tensor(values), names, units)

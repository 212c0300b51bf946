"""Spectral containers and Welch estimation against analytic spectra."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import torch

from thalia.spectra import CSD, welch_csd


def test_welch_of_white_noise_is_flat_at_two_sigma_squared_over_fs():
    """One-sided PSD of white noise of variance σ² sampled at fs is 2σ²/fs."""
    rng = np.random.default_rng(0)
    fs, sigma = 200.0, 3.0
    x = sigma * rng.standard_normal((2, 200_000))
    csd = welch_csd(x, fs, nperseg=400, fmin=5, fmax=95)
    expected = 2 * sigma**2 / fs
    # 999 segments averaged (50 % overlap, Hann): relative SE per bin ≈ 1/sqrt(~500) ≈ 4.5 %
    assert abs(float(csd.psd.mean()) / expected - 1) < 0.01
    assert float((csd.psd / expected - 1).abs().max()) < 0.25
    assert float(csd.coherence()[:, 0, 1].mean()) < 0.01  # independent channels


def test_welch_cross_spectrum_phase_convention():
    """S_ij = E[X_i conj(X_j)]: a channel delayed by d samples has phase +2πfd/fs on S_01."""
    rng = np.random.default_rng(1)
    fs, lag = 100.0, 3
    z = rng.standard_normal(100_003)
    x = np.stack([z[lag:], z[:-lag]])  # channel 1 lags channel 0 by `lag` samples
    csd = welch_csd(x, fs, nperseg=200, fmin=1, fmax=20)
    phase = np.angle(csd.data[:, 0, 1].numpy())
    expected = 2 * np.pi * csd.freqs.numpy() * lag / fs
    np.testing.assert_allclose(np.angle(np.exp(1j * (phase - expected))), 0.0, atol=0.05)


def test_csd_pick_and_plot():
    freqs = torch.arange(1.0, 4.0)
    data = torch.eye(2, dtype=torch.complex128).expand(3, 2, 2) * freqs[:, None, None]
    csd = CSD(freqs, data, ("a", "b"))
    assert csd.pick(["b"]).psd.squeeze().tolist() == [1.0, 2.0, 3.0]
    fig = csd.plot(cross=True)
    assert len(fig.axes[0].lines) == 3

"""The circuit's LFP spectrum, the TCM fitted to a log spectrum, and the comparison helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import signal

from thalia.bridge import (
    Circuit,
    CircuitLFP,
    bridge_model,
    fit_tcm,
    matched_peaks,
    simulate_lfp,
    spectral_summary,
)
from thalia.bridge.fit import welch_log_precision
from thalia.spectra import CSD


def _white(n_times: int, seed: int, sd: float = 2.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"L2/3": sd * rng.standard_normal(n_times), "L5": sd * rng.standard_normal(n_times)}


def test_region_channel_is_the_sum_of_the_layers_and_white_noise_has_its_density():
    fs = 1000.0
    lfp = CircuitLFP(_white(60_000, 0), fs, {}, None)
    np.testing.assert_array_equal(lfp.channel("cortex"), lfp.signals["L2/3"] + lfp.signals["L5"])
    layers = lfp.csd("layers", fmax=200.0)
    assert layers.channels == ("L2/3", "L5") and layers.units == "pA^2/Hz"
    # one-sided density of white noise of SD σ sampled at fs: 2σ²/fs
    np.testing.assert_allclose(layers.psd.numpy().mean(0), 2 * 4.0 / fs, rtol=0.03)
    region = lfp.csd("region", fmax=200.0)
    assert region.channels == ("cortex",)
    np.testing.assert_allclose(region.psd.numpy().mean(), 2 * 8.0 / fs, rtol=0.03)  # independent layers add


def test_segment_count_is_scipys():
    lfp = CircuitLFP(_white(10_500, 1), 1000.0, {}, None)
    nperseg = 1000
    starts = range(0, 10_500 - nperseg + 1, nperseg - nperseg // 2)  # scipy's default 50 % overlap
    assert lfp.n_segments(1.0) == len(starts) == 20
    with pytest.raises(ValueError, match="'segment_s'"):
        lfp.n_segments(20.0)


def test_welch_log_precision_matches_the_spread_of_welch_estimates():
    rng = np.random.default_rng(2)
    nperseg, n_segments = 256, 30
    n_times = nperseg // 2 * (n_segments + 1)
    logs = [np.log(signal.welch(rng.standard_normal(n_times), nperseg=nperseg)[1][10:100]) for _ in range(300)]
    var = np.var(np.array(logs), axis=0).mean()
    assert np.exp(-welch_log_precision(n_segments)) == pytest.approx(var, rel=0.08)


def test_simulate_lfp_keeps_the_stretch_after_the_warm_up():
    lfp = simulate_lfp(duration_ms=200.0, warmup_ms=50.0, seed=3)
    assert lfp.fs_hz == pytest.approx(10_000.0)
    assert {len(x) for x in lfp.signals.values()} == {2000}
    assert set(lfp.rates_hz) == set(lfp.brain.network.populations)
    assert lfp.rates_hz["cortex.background"] > 0


@pytest.fixture(scope="module")
def synthetic():
    """An exact spectrum of the bridge model at its prior mean, as a Welch-like CSD."""
    model = bridge_model()
    freqs = torch.arange(1.0, 121.0, dtype=torch.float64)
    csd = model.csd(model.space.prior_mean(), freqs)
    return CSD(freqs, csd.data, ("cortex",))


def test_a_model_spectrum_is_fitted_exactly_with_its_peak(synthetic):
    fit = fit_tcm(synthetic, 100, max_iter=6)
    assert fit.explained_variance > 0.999
    rows = matched_peaks(fit, {"gamma": (30.0, 45.0)})  # the default TCM's damped resonance near 37 Hz
    assert len(rows) == 1 and rows[0]["distance_hz"] < 0.5
    np.testing.assert_allclose(fit.fitted_power(), fit.power, rtol=0.02)


def test_fit_refuses_ambiguous_channels_and_bands(synthetic):
    two = CSD(synthetic.freqs, torch.diag_embed(synthetic.psd.repeat(1, 2)), ("a", "b"))
    with pytest.raises(ValueError, match="name the one to fit"):
        fit_tcm(two, 10)
    with pytest.raises(ValueError, match="'band_hz'"):
        fit_tcm(synthetic, 10, band_hz=(4.0, 200.0))
    with pytest.raises(ValueError, match="'priors'"):
        fit_tcm(synthetic, 10, priors=bridge_model().space.prior_mean())


def test_spectral_summary_finds_a_gamma_peak_over_one_over_f():
    freqs = np.arange(1.0, 121.0)
    power = freqs**-1.5 * (1 + 3 * np.exp(-0.5 * ((freqs - 42.0) / 4.0) ** 2))
    summary = spectral_summary(freqs, power)
    assert summary["gamma_peak_hz"] == pytest.approx(42.0, abs=1.0)
    inside = (freqs >= 13) & (freqs <= 30)
    assert summary["beta_power"] == pytest.approx(np.log10(power[inside].mean()))
    assert spectral_summary(freqs, freqs**-1.5)["gamma_peak_hz"] is None


def test_circuit_argument_is_checked():
    with pytest.raises(ValueError, match="thalia.bridge.Circuit"):
        simulate_lfp("default")
    with pytest.raises(ValueError, match="'duration_ms'"):
        simulate_lfp(Circuit(), duration_ms=-1.0)


def test_compare_drugs_refuses_a_baseline_of_another_length():
    from thalia.bridge import compare_drugs, preset

    short = CircuitLFP(_white(5_000, 6), 10_000.0, {}, None)
    with pytest.raises(ValueError, match="holds 500 ms of activity"):
        compare_drugs([preset("ketamine")], baseline=short, duration_ms=1000.0)
    with pytest.raises(ValueError, match="'mass'"):
        compare_drugs([preset("ketamine")], baseline=short, duration_ms=500.0, mass="fit")

"""Spectral peaks over the aperiodic fit, on signals whose spectra are known analytically.

The signals are an AR(2) process (poles r·exp(±2πi f0/fs): a resonance) added to an AR(1)
"Ornstein–Uhlenbeck" background (spectrum ≈ 1 / (f_k² + f²): flat below the knee f_k = 10 Hz, 1/f²
above it, like the LFP of a spiking network), sampled at 1 kHz for 4 s; Welch with 0.5 s segments
(2 Hz resolution, 15 segments: log10 power noise ≈ 0.12). The AR(2) peak frequency is computed from
the poles, as the maximum of 1 / |1 - a1 exp(-iω) - a2 exp(-2iω)|² on a 0.001 Hz grid.
"""

import numpy as np
import pytest
from scipy import signal

from thalia.spectra import aperiodic_fit, band_peak, spectral_peaks, welch_power

FS_HZ = 1000.0
N_SAMPLES = 4000
KNEE_HZ = 10.0


def _ar_psd(freqs_hz, denominator):
    """Spectrum of an AR process driven by unit white noise, up to the factor 2/fs."""
    z = np.exp(-2j * np.pi * np.asarray(freqs_hz) / FS_HZ)
    return 1.0 / np.abs(np.polyval(denominator[::-1], z)) ** 2


def _ar2(f0_hz, radius):
    theta = 2 * np.pi * f0_hz / FS_HZ
    return [1.0, -2 * radius * np.cos(theta), radius**2]


def _background():
    return [1.0, -np.exp(-2 * np.pi * KNEE_HZ / FS_HZ)]


def _ar2_peak_hz(f0_hz, radius):
    grid = np.arange(1.0, FS_HZ / 2, 0.001)
    return grid[np.argmax(_ar_psd(grid, _ar2(f0_hz, radius)))]


def _amplitude(f0_hz, radius, ratio):
    """AR(2) amplitude whose power at its peak is ``ratio`` times the background's there."""
    peak = _ar2_peak_hz(f0_hz, radius)
    return np.sqrt(ratio * _ar_psd(peak, _background()) / _ar_psd(peak, _ar2(f0_hz, radius)))


def _signal(seed, components=()):
    """Background plus AR(2) components given as (f0_hz, radius, amplitude)."""
    rng = np.random.default_rng(seed)
    x = signal.lfilter([1.0], _background(), rng.standard_normal(N_SAMPLES))
    for f0_hz, radius, amplitude in components:
        x = x + amplitude * signal.lfilter([1.0], _ar2(f0_hz, radius), rng.standard_normal(N_SAMPLES))
    return x


def _spectrum(seed, components=()):
    return welch_power(_signal(seed, components), FS_HZ)


@pytest.mark.parametrize(("f0_hz", "band"), [(30.0, (25.0, 35.0)), (75.0, (60.0, 80.0))])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_band_peak_finds_the_ar2_peak_within_1p5_hz(f0_hz, band, seed):
    radius = 0.99  # FWHM ≈ (1 - r) fs / π = 3.2 Hz
    freqs, power = _spectrum(seed, [(f0_hz, radius, _amplitude(f0_hz, radius, 30.0))])
    peak = band_peak(freqs, power, band)
    assert peak.present
    # measured errors (seeds 0, 1, 2): +0.62, +0.43, +0.35 Hz at 30 Hz; -0.19, +0.21, +0.98 Hz at 75 Hz
    assert abs(peak.freq_hz - _ar2_peak_hz(f0_hz, radius)) <= 1.5
    assert 0.9 < peak.prominence < 1.6  # true log10(1 + 30) = 1.49 at the peak; measured 1.04-1.44


def test_two_peaks_are_found_each_in_its_band():
    radius = 0.99
    components = [(f0, radius, _amplitude(f0, radius, 30.0)) for f0 in (30.0, 75.0)]
    peaks = spectral_peaks(_signal(1, components), FS_HZ, {"beta": (25.0, 35.0), "gamma": (60.0, 80.0)})
    assert list(peaks) == ["beta", "gamma"]
    assert abs(peaks["beta"].freq_hz - _ar2_peak_hz(30.0, radius)) <= 1.5  # measured 30.30 vs 29.96
    assert abs(peaks["gamma"].freq_hz - _ar2_peak_hz(75.0, radius)) <= 1.5  # measured 75.34 vs 74.99
    assert peaks["beta"].prominence > 0.9 and peaks["gamma"].prominence > 0.9


@pytest.mark.parametrize("seed", range(5))
def test_background_alone_has_no_peak(seed):
    freqs, power = _spectrum(seed)
    fit = aperiodic_fit(freqs, power)
    for band in [(25.0, 35.0), (60.0, 80.0)]:
        peak = band_peak(freqs, power, band, aperiodic=fit)
        assert (peak.present, peak.freq_hz, peak.prominence) == (False, None, None)
    # what makes a peak: Welch noise of 15 segments, 0.434 * sqrt(trigamma(15)) = 0.114 log10 units
    assert 0.08 < fit.noise_sd < 0.16  # measured 0.10-0.14


@pytest.mark.parametrize("seed", range(3))
def test_flank_of_a_peak_outside_the_band_is_not_a_peak_in_it(seed):
    """A strong 40 Hz peak lifts 25-35 Hz towards its upper edge; the band has no peak of its own."""
    radius = 0.98
    freqs, power = _spectrum(seed, [(40.0, radius, _amplitude(40.0, radius, 100.0))])
    inside = (freqs >= 25.0) & (freqs <= 35.0)
    assert freqs[inside][np.argmax(power[inside])] == 34.0  # the argmax rule "finds" the band edge
    fit = aperiodic_fit(freqs, power)
    assert not band_peak(freqs, power, (25.0, 35.0), aperiodic=fit).present
    outside = band_peak(freqs, power, (35.0, 45.0), aperiodic=fit)
    assert abs(outside.freq_hz - _ar2_peak_hz(40.0, radius)) <= 1.5  # measured 40.44, 39.61, 40.52


@pytest.mark.parametrize("seed", range(2))
def test_prominence_grows_with_pole_radius(seed):
    amplitude = _amplitude(75.0, 0.96, 5.0)  # same drive; the resonance sharpens with the radius
    prominences = []
    for radius in (0.96, 0.975, 0.99):
        freqs, power = _spectrum(seed, [(75.0, radius, amplitude)])
        prominences.append(band_peak(freqs, power, (60.0, 80.0)).prominence)
    # measured: seed 0: 0.59, 1.02, 1.49; seed 1: 0.65, 0.99, 1.42
    assert np.all(np.diff(prominences) > 0.2)


def test_prominence_is_the_periodic_model_height_and_the_fooof_peak():
    freqs, power = _spectrum(0, [(75.0, 0.99, _amplitude(75.0, 0.99, 30.0))])
    fit = aperiodic_fit(freqs, power)
    peak = band_peak(freqs, power, (60.0, 80.0), aperiodic=fit)
    centre, height, _ = fit.gaussians[np.argmin(np.abs(fit.gaussians[:, 0] - 75.0))]
    assert abs(peak.freq_hz - centre) < 0.02  # one Gaussian: its centre is the model's maximum
    assert abs(peak.prominence - height) < 0.01  # ... and its height the prominence (measured 1.307)
    # FOOOF's own height is the model over the aperiodic fit at the frequency bin nearest the centre
    # (74.80 Hz -> 74 Hz on the 2 Hz grid): a little lower (measured 1.273)
    fooof_height = fit.peaks[np.argmin(np.abs(fit.peaks[:, 0] - 75.0)), 1]
    assert 0.0 <= peak.prominence - fooof_height < 0.05
    assert abs(peak.prominence - float(fit.periodic(peak.freq_hz))) < 1e-12
    np.testing.assert_allclose(fit.aperiodic(fit.freqs_hz), fit.log10_power, atol=1e-12)


def test_thresholds_decide_presence():
    freqs, power = _spectrum(0, [(75.0, 0.99, _amplitude(75.0, 0.99, 30.0))])
    fit = aperiodic_fit(freqs, power)
    height = band_peak(freqs, power, (60.0, 80.0), aperiodic=fit).prominence
    for option, scale in (("min_prominence", 1.0), ("noise_z", fit.noise_sd)):
        below = band_peak(freqs, power, (60.0, 80.0), aperiodic=fit, **{option: 0.99 * height / scale})
        above = band_peak(freqs, power, (60.0, 80.0), aperiodic=fit, **{option: 1.01 * height / scale})
        assert below.present and not above.present


def test_knee_mode_recovers_the_background_and_fixed_mode_tilts():
    """The background is 1 / (10² + f²) Hz: knee mode finds exponent 2 and the 10 Hz knee; a straight
    line (fixed mode) over 4-150 Hz is flatter (measured exponents, seeds 0-3: knee 1.96, 2.11, 1.72,
    2.18; fixed 1.52, 1.56, 1.42, 1.48)."""
    knee_fits, fixed_fits = [], []
    for seed in range(4):
        freqs, power = _spectrum(seed)
        knee_fits.append(aperiodic_fit(freqs, power))
        fixed_fits.append(aperiodic_fit(freqs, power, knee=False))
    assert abs(np.mean([f.exponent for f in knee_fits]) - 2.0) < 0.15
    knee_hz = np.mean([f.knee ** (1 / f.exponent) for f in knee_fits])
    assert 7.0 < knee_hz < 14.0  # measured 10.5
    assert np.mean([f.exponent for f in fixed_fits]) < 1.7
    assert all(f.knee is None and f.mode == "fixed" for f in fixed_fits)


def test_welch_power_of_white_noise_is_two_sigma_squared_over_fs():
    x = 2.0 * np.random.default_rng(0).standard_normal(20_000)
    freqs, power = welch_power(x, FS_HZ, segment_s=0.25)
    assert freqs[0] == 4.0 and freqs[1] - freqs[0] == 4.0  # 0 Hz dropped, resolution 1 / 0.25 s
    assert abs(power.mean() / (2 * 4.0 / FS_HZ) - 1) < 0.03


def test_bad_inputs_name_the_argument():
    freqs, power = _spectrum(0)
    bad_signal = _signal(0)
    bad_signal[10] = np.nan
    with pytest.raises(ValueError, match="'signal'.*non-finite"):
        welch_power(bad_signal, FS_HZ)
    with pytest.raises(ValueError, match="'signal'.*500 samples.*got 300"):
        welch_power(np.zeros(300), FS_HZ)
    with pytest.raises(ValueError, match="'signal'.*1-D"):
        welch_power(np.zeros((2, 1000)), FS_HZ)
    with pytest.raises(ValueError, match="'band'.*inside the fit's freq_range \\[4, 150\\].*got \\(140, 160\\)"):
        band_peak(freqs, power, (140.0, 160.0))
    with pytest.raises(ValueError, match="'band'.*0 < low < high"):
        band_peak(freqs, power, (35.0, 25.0))
    with pytest.raises(ValueError, match="'freq_range'.*\\[2, 500\\]"):
        aperiodic_fit(freqs, power, freq_range=(4.0, 600.0))
    with pytest.raises(ValueError, match="'aperiodic'"):
        band_peak(freqs, 2 * power, (25.0, 35.0), aperiodic=aperiodic_fit(freqs, power))
    with pytest.raises(ValueError, match="'bands'"):
        spectral_peaks(_signal(0), FS_HZ, {})
    with pytest.raises(ValueError, match="'detrend'"):
        welch_power(_signal(0), FS_HZ, detrend="quadratic")

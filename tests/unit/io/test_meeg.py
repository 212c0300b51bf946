"""M/EEG recordings in: the bundled EEG, Welch and multitaper CSDs, channel picks and averages, the
notch filter, and one clear error for each kind of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.datasets import OCCIPITAL_CHANNELS, resting_eeg, resting_eeg_license, resting_eeg_path
from thalia.io import load_spectrum, meeg_csd, pick_channels, read_meeg, select_channels

FS = 200.0


def _fif(tmp_path, data: np.ndarray, names=None, fs: float = FS):
    """A FIF recording (EEG channels, V) of ``data`` (n_channels, n_times); its path."""
    import mne

    names = names or [f"EEG{i:03d}" for i in range(len(data))]
    info = mne.create_info(list(names), fs, ch_types="eeg")
    path = tmp_path / "rec_raw.fif"
    mne.io.RawArray(data, info, verbose="error").save(path, verbose="error")
    return path


@pytest.fixture(scope="module")
def noise_fif(tmp_path_factory):
    """Two independent unit-variance white noises, 60 s at 200 Hz."""
    rng = np.random.default_rng(0)
    return _fif(tmp_path_factory.mktemp("fif"), rng.standard_normal((2, int(60 * FS))))


def test_bundled_eeg_is_the_documented_recording():
    raw = resting_eeg()
    assert raw.info["sfreq"] == 160.0 and len(raw.ch_names) == 64
    assert abs(raw.n_times / 160.0 - 61.0) < 0.5
    assert set(OCCIPITAL_CHANNELS) <= set(raw.ch_names)
    assert resting_eeg_path().stat().st_size == 1_275_936
    text = resting_eeg_license()
    assert "Open Data Commons Attribution" in text and "Schalk" in text and "Goldberger" in text


def test_bundled_eeg_alpha_peak_at_10_hz():
    """The data README: alpha at 10.0 Hz on the parieto-occipital channels (Welch, 4 s windows)."""
    csd = load_spectrum(resting_eeg_path(), channels=["O1", "Oz", "O2", "Po7", "Po8"], average=True, fmin=5, fmax=15)
    assert csd.channels == ("mean(O1,Oz,O2,Po7,Po8)",) and csd.units == "V^2/Hz"
    assert float(csd.freqs[1] - csd.freqs[0]) == pytest.approx(0.25)
    assert float(csd.freqs[int(csd.psd[:, 0].argmax())]) == pytest.approx(10.0)


@pytest.mark.parametrize("method", ["welch", "multitaper"])
def test_white_noise_level(noise_fif, method):
    """One-sided density of unit white noise: 2/fs per Hz; cross-spectrum of independent noises ≈ 0."""
    csd = meeg_csd(noise_fif, method=method, fmin=5, fmax=90, resolution_hz=0.5)
    assert csd.psd.mean(0).numpy() == pytest.approx([2 / FS, 2 / FS], rel=0.03)
    assert abs(complex(csd.data[:, 0, 1].mean())) < 0.05 * 2 / FS


@pytest.mark.parametrize("method", ["welch", "multitaper"])
def test_cross_spectrum_phase_convention(tmp_path, method):
    """S_ij = E[X_i conj(X_j)]: channel 2 delayed by d gives S_12 the phase +2π f d."""
    rng = np.random.default_rng(1)
    delay = 5
    x = rng.standard_normal(int(40 * FS) + delay)
    path = _fif(tmp_path, np.stack([x[delay:], x[:-delay]]))
    csd = meeg_csd(path, method=method, fmin=9, fmax=11, resolution_hz=0.5)
    k = int(np.argmin(np.abs(csd.freqs.numpy() - 10.0)))
    assert np.angle(complex(csd.data[k, 0, 1])) == pytest.approx(2 * np.pi * 10.0 * delay / FS, abs=0.05)


def test_average_is_the_spectrum_of_the_mean_signal(noise_fif):
    """Averaging the signals equals (1/n²) Σ S_ij of the two-channel CSD (both Welch, exact), and for
    independent unit noises it halves the power."""
    averaged = meeg_csd(noise_fif, average=True, fmin=5, fmax=90)
    both = select_channels(meeg_csd(noise_fif, fmin=5, fmax=90), average=True)
    assert averaged.channels == both.channels == ("mean(EEG000,EEG001)",)
    np.testing.assert_allclose(averaged.psd.numpy(), both.psd.numpy(), rtol=1e-10)
    assert float(averaged.psd.mean()) == pytest.approx(1 / FS, rel=0.05)


def test_notch_removes_mains_and_harmonics(tmp_path):
    rng = np.random.default_rng(2)
    fs = 250.0
    t = np.arange(int(30 * fs)) / fs
    x = 0.1 * rng.standard_normal(t.size) + np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 100 * t - 1)
    path = _fif(tmp_path, x[None], fs=fs)
    kept = meeg_csd(path, fmin=40, fmax=110, resolution_hz=0.5)
    notched = meeg_csd(path, fmin=40, fmax=110, resolution_hz=0.5, notch_hz=50)
    for line in (50.0, 100.0):
        k = int(np.argmin(np.abs(kept.freqs.numpy() - line)))
        assert float(notched.psd[k, 0]) < 1e-3 * float(kept.psd[k, 0])
    k = int(np.argmin(np.abs(kept.freqs.numpy() - 75.0)))  # between the lines: untouched
    assert float(notched.psd[k, 0]) == pytest.approx(float(kept.psd[k, 0]), rel=0.05)


def test_channel_names_ignore_case_and_trailing_dots():
    raw = resting_eeg(preload=False)
    assert pick_channels(raw, ["o1", "OZ", "Po7."]) == ["O1..", "Oz..", "Po7."]
    assert len(pick_channels(raw)) == 64


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"channels": ["O1", "Xq"]}, r"Unknown channel\(s\) 'Xq': expected names from Fc5, .*Oz"),
        ({"fmax": 80.0}, r"'fmax': 80 Hz is at or beyond the Nyquist frequency 80 Hz .*use fmax < 80"),
        ({"fmin": 20.0, "fmax": 10.0}, r"'fmin': expected fmin < fmax = 10 Hz, got 20 Hz"),
        ({"resolution_hz": 0.01}, r"recording is 61 s long, too short for a resolution of 0.01 Hz"),
        ({"method": "burg"}, r"'method': allowed 'welch', 'multitaper', got 'burg'"),
        ({"notch_hz": 90.0}, r"'notch_hz': 90 Hz is at or beyond the Nyquist"),
    ],
)
def test_bad_options(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        meeg_csd(resting_eeg_path(), **kwargs)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ValueError, match=r"no such file '.*nothing.edf'"):
        read_meeg(tmp_path / "nothing.edf")
    junk = tmp_path / "junk.edf"
    junk.write_text("this is not an EDF file\n")
    with pytest.raises(ValueError, match=r"MNE could not read '.*junk.edf' as an M/EEG recording .*EDF, BDF, FIF"):
        meeg_csd(junk)


def test_nan_and_flat_channels(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((3, int(10 * FS)))
    data[1, 100] = np.nan
    data[2] = 1e-6
    path = _fif(tmp_path, data, names=["Cz", "Pz", "Oz"])
    with pytest.raises(ValueError, match=r"channel\(s\) Pz: NaN or infinite samples"):
        meeg_csd(path)
    with pytest.raises(ValueError, match=r"channel\(s\) Oz: the signal is flat"):
        meeg_csd(path, channels=["Cz", "Oz"])
    assert meeg_csd(path, channels=["Cz"]).n_channels == 1

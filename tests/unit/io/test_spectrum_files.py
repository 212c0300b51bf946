"""Spectra from CSV and NumPy files: the layouts, channel picks and averages, cropping, bad files."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.io import crop, load_spectrum, read_spectrum, select_channels

FREQS = np.arange(1.0, 46.0)
POWER = np.stack([1.0 / FREQS, 2.0 / FREQS**2], axis=1)


def _csv(path, header: str, rows: np.ndarray):
    lines = [header] + [",".join(f"{v:.17g}" for v in row) for row in rows]
    path.write_text("# a comment line\n" + "\n".join(lines) + "\n")
    return path


def test_csv_one_column(tmp_path):
    path = _csv(tmp_path / "s.csv", "freq_hz,power", np.column_stack([FREQS, POWER[:, 0]]))
    csd = read_spectrum(path)
    assert csd.channels == ("power",) and csd.units == "a.u."
    np.testing.assert_allclose(csd.freqs.numpy(), FREQS)
    np.testing.assert_allclose(csd.psd[:, 0].numpy(), POWER[:, 0], rtol=1e-15)


def test_csv_columns_per_channel_pick_and_average(tmp_path):
    path = _csv(tmp_path / "s.csv", "freq_hz,O1,O2", np.column_stack([FREQS, POWER]))
    csd = read_spectrum(path)
    assert csd.channels == ("O1", "O2") and bool((csd.data[:, 0, 1] == 0).all())
    np.testing.assert_allclose(select_channels(csd, ["o2"]).psd[:, 0].numpy(), POWER[:, 1])
    mean = select_channels(csd, average=True)  # no cross-spectra: the mean auto-spectrum
    assert mean.channels == ("mean(O1,O2)",)
    np.testing.assert_allclose(mean.psd[:, 0].numpy(), POWER.mean(1), rtol=1e-15)


def test_numpy_layouts_agree(tmp_path):
    np.save(tmp_path / "s.npy", np.column_stack([FREQS, POWER]))
    np.savez(tmp_path / "s.npz", freq_hz=FREQS, power=POWER, channels=np.array(["a", "b"]))
    from_npy, from_npz = read_spectrum(tmp_path / "s.npy"), read_spectrum(tmp_path / "s.npz")
    assert from_npy.channels == ("ch1", "ch2") and from_npz.channels == ("a", "b")
    np.testing.assert_array_equal(from_npy.psd.numpy(), from_npz.psd.numpy())
    np.testing.assert_array_equal(from_npz.psd.numpy(), POWER)


def test_load_spectrum_crops_and_averages(tmp_path):
    np.save(tmp_path / "s.npy", np.column_stack([FREQS, POWER]))
    csd = load_spectrum(tmp_path / "s.npy", fmin=4, fmax=30)
    assert float(csd.freqs[0]) == 4.0 and float(csd.freqs[-1]) == 30.0 and csd.n_channels == 1
    np.testing.assert_allclose(csd.psd[:, 0].numpy(), POWER[3:30].mean(1))
    with pytest.raises(ValueError, match=r"Invalid option\(s\) method for a spectrum file"):
        load_spectrum(tmp_path / "s.npy", method="welch")


def test_crop_beyond_the_spectrum(tmp_path):
    csd = read_spectrum(_csv(tmp_path / "s.csv", "freq_hz,power", np.column_stack([FREQS, POWER[:, 0]])))
    with pytest.raises(ValueError, match=r"'fmax': 60 Hz is beyond the spectrum's highest frequency 45 Hz"):
        crop(csd, 1, 60)
    with pytest.raises(ValueError, match=r"band 50-60 Hz: the spectrum covers 1-45 Hz"):
        crop(csd, 50, 60)


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("f,power\n1,2\n2,3\n", r"expected a header 'freq_hz,power'.*got 'f,power'"),
        ("freq_hz,power\n1,2\n2,abc\n", r"row 3 is not numeric"),
        ("freq_hz,power\n1,2\n2\n", r"row 3 has 1 columns, the header 2"),
        ("freq_hz,power\n1,2\n2,nan\n", r"NaN or infinite values"),
        ("freq_hz,power\n2,2\n1,3\n", r"frequencies must be > 0 Hz and strictly increasing"),
        ("freq_hz,power\n1,0\n2,0\n", r"powers must be > 0 \(a flat or zero spectrum"),
        ("", r"it is empty"),
    ],
)
def test_bad_csv(tmp_path, content, pattern):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=pattern):
        read_spectrum(path)


def test_bad_numpy_and_paths(tmp_path):
    np.save(tmp_path / "one.npy", FREQS)
    with pytest.raises(ValueError, match=r"expected an \(F, 1 \+ n_channels\) array.*got shape \(45,\)"):
        read_spectrum(tmp_path / "one.npy")
    np.savez(tmp_path / "x.npz", freqs=FREQS)
    with pytest.raises(ValueError, match=r"missing freq_hz, power \(has freqs\)"):
        read_spectrum(tmp_path / "x.npz")
    with pytest.raises(ValueError, match=r"no such file"):
        read_spectrum(tmp_path / "absent.csv")
    with pytest.raises(ValueError, match=r"expected a spectrum file ending in .csv, .npy, .npz"):
        read_spectrum(tmp_path / "s.txt")
    csd = read_spectrum(_csv(tmp_path / "s.csv", "freq_hz,O1,O2", np.column_stack([FREQS, POWER])))
    with pytest.raises(ValueError, match=r"Unknown channel\(s\) 'Oz': expected names from O1, O2"):
        select_channels(csd, ["Oz"])

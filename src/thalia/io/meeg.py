"""M/EEG recordings in, cross-spectral densities out (MNE-Python reads the files).

:func:`read_meeg` opens anything ``mne.io.read_raw`` reads (EDF, BDF, FIF, BrainVision ``.vhdr``,
EEGLAB ``.set``, …); :func:`meeg_csd` picks channels (or their average), optionally removes the mains
line and its harmonics with a notch filter, and estimates the CSD by Welch's method or multitapers::

    from thalia.io import meeg_csd
    csd = meeg_csd("rest.edf", channels=["O1", "Oz", "O2"], average=True, fmin=1, fmax=45)

Conventions: frequencies in Hz, data in the recording's SI units (V for EEG), spectra one-sided
densities in units² / Hz, ``S_ij(f) = E[X_i(f) conj(X_j(f))]`` as everywhere in thalia.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thalia._validation import check_option, check_positive_float
from thalia.io._names import average_label, resolve_channels
from thalia.spectra import CSD, welch_csd

__all__ = ["METHODS", "meeg_csd", "pick_channels", "read_meeg"]

METHODS = ("welch", "multitaper")
#: Units of the data of each MNE channel type (SI, as MNE returns them).
_UNITS = {"eeg": "V", "seeg": "V", "ecog": "V", "dbs": "V", "mag": "T", "grad": "T/m"}


def read_meeg(path: str | os.PathLike, *, preload: bool = True):
    """Open an M/EEG recording with MNE (any format ``mne.io.read_raw`` knows); an ``mne.io.Raw``.

    Raises
    ------
    ValueError
        When the file is missing or MNE cannot read it (the message names the file and the formats).
    """
    import mne

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Invalid value for 'path': no such file {str(path)!r}.")
    try:
        return mne.io.read_raw(path, preload=preload, verbose="error")
    except Exception as err:  # MNE raises many types (ValueError, RuntimeError, struct.error, ...)
        raise ValueError(
            f"Invalid value for 'path': MNE could not read {str(path)!r} as an M/EEG recording "
            f"({type(err).__name__}: {err}). Give a file MNE reads (EDF, BDF, FIF, BrainVision .vhdr, "
            "EEGLAB .set, ...) or a spectrum as .csv / .npy / .npz."
        ) from err


def pick_channels(raw, channels: Sequence[str] | str | None = None) -> list[str]:
    """The recording's names of ``channels`` (case and trailing dots ignored: ``"O1"`` finds ``"O1.."``).

    ``None`` picks every EEG/MEG/sEEG/ECoG channel not marked bad.
    """
    if channels is None:
        import mne

        picks = mne.pick_types(raw.info, meg=True, eeg=True, seeg=True, ecog=True, dbs=True, exclude="bads")
        if len(picks) == 0:
            raise ValueError(
                "Invalid value for 'channels': the recording has no EEG or MEG channels; name the channels to use."
            )
        return [raw.ch_names[i] for i in picks]
    return resolve_channels(channels, raw.ch_names)


def _units(raw, picks: list[str]) -> str:
    kinds = set(raw.get_channel_types(picks=picks))
    units = {_UNITS.get(kind, "a.u.") for kind in kinds}
    return f"{units.pop()}^2/Hz" if len(units) == 1 and "a.u." not in units else "a.u."


def _check_signals(data: np.ndarray, names: list[str]) -> None:
    bad = [n for n, row in zip(names, data, strict=True) if not np.isfinite(row).all()]
    if bad:
        raise ValueError(f"Invalid data in channel(s) {', '.join(bad)}: NaN or infinite samples; drop or repair them.")
    flat = [n for n, row in zip(names, data, strict=True) if not np.ptp(row) > 0]
    if flat:
        raise ValueError(f"Invalid data in channel(s) {', '.join(flat)}: the signal is flat (constant); pick others.")


def _check_band(fmin: float, fmax: float, sfreq: float) -> tuple[float, float]:
    fmin = check_positive_float("fmin", fmin)
    fmax = check_positive_float("fmax", fmax)
    nyquist = sfreq / 2
    if fmax >= nyquist:
        raise ValueError(
            f"Invalid value for 'fmax': {fmax:g} Hz is at or beyond the Nyquist frequency {nyquist:g} Hz of "
            f"this recording (sampled at {sfreq:g} Hz); use fmax < {nyquist:g}."
        )
    if fmin >= fmax:
        raise ValueError(f"Invalid value for 'fmin': expected fmin < fmax = {fmax:g} Hz, got {fmin:g} Hz.")
    return fmin, fmax


def _segment_samples(resolution_hz: float, sfreq: float, n_times: int) -> int:
    resolution_hz = check_positive_float("resolution_hz", resolution_hz)
    n = int(round(sfreq / resolution_hz))
    if n > n_times:
        raise ValueError(
            f"Invalid value for 'resolution_hz': the recording is {n_times / sfreq:g} s long, too short for a "
            f"resolution of {resolution_hz:g} Hz (segments of {n / sfreq:g} s); use resolution_hz >= "
            f"{sfreq / n_times:.3g} or a longer recording."
        )
    return n


def _notch(data: np.ndarray, sfreq: float, notch_hz: float) -> np.ndarray:
    import mne

    notch_hz = check_positive_float("notch_hz", notch_hz)
    if notch_hz >= sfreq / 2:
        raise ValueError(
            f"Invalid value for 'notch_hz': {notch_hz:g} Hz is at or beyond the Nyquist frequency {sfreq / 2:g} Hz."
        )
    lines = np.arange(notch_hz, sfreq / 2, notch_hz)
    return mne.filter.notch_filter(data, sfreq, lines, verbose="error")


def _multitaper(data: np.ndarray, sfreq: float, n: int, fmin: float, fmax: float, bandwidth_hz: float):
    from mne.time_frequency import csd_array_multitaper

    n_seg = data.shape[1] // n
    epochs = data[:, : n_seg * n].reshape(data.shape[0], n_seg, n).transpose(1, 0, 2)
    csd = csd_array_multitaper(
        epochs, sfreq, fmin=fmin, fmax=fmax, bandwidth=bandwidth_hz, n_fft=n, adaptive=False, verbose="error"
    )
    freqs = np.asarray(csd.frequencies, dtype=float)
    values = np.stack([csd.get_data(f) for f in freqs])
    return freqs, values


def meeg_csd(
    recording: Any,
    *,
    channels: Sequence[str] | str | None = None,
    average: bool = False,
    method: str = "welch",
    fmin: float = 1.0,
    fmax: float = 45.0,
    resolution_hz: float = 0.25,
    notch_hz: float | None = None,
    bandwidth_hz: float | None = None,
) -> CSD:
    """The cross-spectral density of an M/EEG recording.

    Parameters
    ----------
    recording : str, path or mne.io.Raw
        A file MNE reads (see :func:`read_meeg`) or a loaded recording.
    channels : sequence of str, optional
        Channels to use (case and trailing dots ignored); default every EEG/MEG channel not marked bad.
    average : bool
        Average the picked channels' signals into one virtual channel (named ``"mean(O1,Oz,...)"``)
        before the spectrum — e.g. the occipital alpha of a resting recording.
    method : {"welch", "multitaper"}
        Welch (Hann windows of 1/``resolution_hz`` s, 50 % overlap; :func:`thalia.spectra.welch_csd`) or
        multitapers (DPSS, MNE's ``csd_array_multitaper``) averaged over non-overlapping segments of
        1/``resolution_hz`` s.
    fmin, fmax : float
        Frequency band kept, Hz; ``fmax`` must lie below the Nyquist frequency.
    resolution_hz : float
        Frequency spacing, Hz; the recording must last at least 1/``resolution_hz`` s.
    notch_hz : float, optional
        Mains frequency (50 or 60 Hz): notch-filter it and its harmonics below Nyquist first.
    bandwidth_hz : float, optional
        Multitaper bandwidth, Hz (default 4·``resolution_hz``: 3 tapers).

    Returns
    -------
    CSD
        Frequencies in Hz, data in units² / Hz (``"V^2/Hz"`` for EEG).
    """
    check_option("method", method, METHODS)
    check_option("average", average, (False, True))
    raw = recording if hasattr(recording, "get_data") and hasattr(recording, "info") else read_meeg(recording)
    sfreq = float(raw.info["sfreq"])
    fmin, fmax = _check_band(fmin, fmax, sfreq)
    names = pick_channels(raw, channels)
    units = _units(raw, names)
    data = raw.get_data(picks=names)
    _check_signals(data, names)
    n = _segment_samples(resolution_hz, sfreq, data.shape[1])
    if notch_hz is not None:
        data = _notch(data, sfreq, notch_hz)
    if average:
        data = data.mean(axis=0, keepdims=True)
        _check_signals(data, ["the channel average"])
        names = [average_label(names)]
    if method == "welch":
        return welch_csd(data, sfreq, nperseg=n, fmin=fmin, fmax=fmax, channels=names, units=units)
    bandwidth = 4 * resolution_hz if bandwidth_hz is None else check_positive_float("bandwidth_hz", bandwidth_hz)
    freqs, values = _multitaper(data, sfreq, n, fmin, fmax, bandwidth)
    return CSD(torch.as_tensor(freqs), torch.as_tensor(values), tuple(names), units)

"""Data in and results out: M/EEG recordings (via MNE-Python), spectrum files, results, NWB export.

* :func:`load_spectrum` — one entry point for any data path: an M/EEG recording (EDF, BDF, FIF,
  BrainVision, … — :func:`meeg_csd`) or a spectrum file (``.csv``, ``.npy``, ``.npz`` —
  :func:`read_spectrum`), channels picked or averaged, cropped to [fmin, fmax].
* :class:`RunResult` — a run's JSON summary (``result.json``) and NPZ arrays, saved atomically, loaded back.
* :func:`export_spikes_nwb` — spike trains to NWB (needs the optional ``pynwb``: ``pip install thalia[nwb]``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from thalia.io.atomic import atomic_path, write_text_atomic
from thalia.io.meeg import METHODS, meeg_csd, pick_channels, read_meeg
from thalia.io.nwb import export_spikes_nwb
from thalia.io.results import RunResult, to_jsonable, write_json
from thalia.io.spectrum import SPECTRUM_SUFFIXES, crop, read_spectrum, select_channels
from thalia.spectra import CSD

__all__ = [
    "METHODS",
    "SPECTRUM_SUFFIXES",
    "atomic_path",
    "crop",
    "export_spikes_nwb",
    "load_spectrum",
    "meeg_csd",
    "RunResult",
    "pick_channels",
    "read_meeg",
    "read_spectrum",
    "select_channels",
    "to_jsonable",
    "write_json",
    "write_text_atomic",
]


def load_spectrum(
    path: str | os.PathLike,
    *,
    channels: Sequence[str] | str | None = None,
    average: bool = True,
    fmin: float | None = None,
    fmax: float | None = None,
    **estimate,
) -> CSD:
    """The spectrum of a data file: a recording's CSD (:func:`meeg_csd`; ``estimate`` are its ``method``,
    ``resolution_hz``, ``notch_hz``, ``bandwidth_hz``) or a spectrum file's (:func:`read_spectrum`),
    with ``channels`` picked (default all), averaged into one when ``average``, and cropped to
    [``fmin``, ``fmax``] Hz (default: 1-45 Hz for a recording, all frequencies of a spectrum file)."""
    path = Path(path)
    if path.suffix.lower() in SPECTRUM_SUFFIXES:
        if estimate:
            raise ValueError(
                f"Invalid option(s) {', '.join(sorted(estimate))} for a spectrum file: they apply to recordings only."
            )
        return crop(select_channels(read_spectrum(path), channels, average=average), fmin, fmax)
    band = {name: value for name, value in (("fmin", fmin), ("fmax", fmax)) if value is not None}
    return meeg_csd(path, channels=channels, average=average, **band, **estimate)

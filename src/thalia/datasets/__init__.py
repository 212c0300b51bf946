"""Example data shipped with thalia.

* :func:`resting_eeg` — real eyes-closed resting scalp EEG (PhysioNet EEGMMIDB, subject S001, run
  R02: 64 channels, 160 Hz, 61 s; Open Data Commons Attribution License v1.0, see
  :func:`resting_eeg_license`). Alpha peaks at 10.0 Hz on the parieto-occipital channels
  (:data:`OCCIPITAL_CHANNELS`).

>>> from thalia.datasets import resting_eeg, OCCIPITAL_CHANNELS
>>> raw = resting_eeg()                      # an mne.io.Raw (EDF), data in V
>>> raw.info["sfreq"]
160.0
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: The parieto-occipital channels of the bundled EEG (names as in the file: 10-10 labels padded with dots).
OCCIPITAL_CHANNELS = ("Po7.", "Po3.", "Poz.", "Po4.", "Po8.", "O1..", "Oz..", "O2..")
_EEG_FILE = "eegmmidb_S001R02_eyes_closed.edf"
_LICENSE_FILE = "LICENSE-eegmmidb.txt"

__all__ = ["OCCIPITAL_CHANNELS", "resting_eeg", "resting_eeg_license", "resting_eeg_path"]


def _data_file(name: str) -> Path:
    return Path(str(resources.files("thalia.datasets").joinpath("data").joinpath(name)))


def resting_eeg_path() -> Path:
    """Path of the bundled EDF file (eyes-closed resting EEG, 64 channels, 160 Hz, 61 s)."""
    return _data_file(_EEG_FILE)


def resting_eeg_license() -> str:
    """Licence, attribution (what to cite) and provenance of the bundled EEG."""
    return _data_file(_LICENSE_FILE).read_text(encoding="utf-8")


def resting_eeg(*, preload: bool = True):
    """The bundled eyes-closed resting EEG as an ``mne.io.Raw`` (data in V).

    Channel names are the file's 10-10 labels padded with dots (``"O1.."``, ``"Po7."``);
    :func:`thalia.io.read_meeg` and :func:`thalia.io.meeg_csd` also accept them without the dots.
    """
    import mne

    return mne.io.read_raw_edf(resting_eeg_path(), preload=preload, verbose="error")

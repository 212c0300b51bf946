"""Spectra from files: CSV (``freq_hz,power`` or one power column per channel) and NumPy.

Accepted layouts (frequencies in Hz, strictly increasing and > 0; powers finite and > 0):

* ``.csv`` — a header row whose first column is ``freq_hz``; then one column ``power`` or one column per
  channel (its header is the channel name). Lines starting with ``#`` are comments.
* ``.npz`` — arrays ``freq_hz`` (F,) and ``power`` (F,) or (F, n); optional ``channels`` (n,) names.
* ``.npy`` — one (F, 1 + n) array: frequencies in the first column, one power column per channel.

Files hold auto-spectra only (no cross-spectra): the CSD returned is diagonal.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from thalia.io._names import average_label, resolve_channels
from thalia.spectra import CSD

__all__ = ["SPECTRUM_SUFFIXES", "crop", "read_spectrum", "select_channels"]

SPECTRUM_SUFFIXES = (".csv", ".npy", ".npz")


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    with path.open(newline="", encoding="utf-8") as stream:
        rows = [row for row in csv.reader(stream) if row and not row[0].lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"Invalid spectrum file {str(path)!r}: it is empty.")
    header = [cell.strip() for cell in rows[0]]
    if header[0].lower() != "freq_hz" or len(header) < 2:
        raise ValueError(
            f"Invalid spectrum file {str(path)!r}: expected a header 'freq_hz,power' (or 'freq_hz,<channel>,...'), "
            f"got {','.join(header)!r}."
        )
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(
                f"Invalid spectrum file {str(path)!r}: row {line} has {len(row)} columns, the header {len(header)}."
            )
        try:
            values.append([float(cell) for cell in row])
        except ValueError as err:
            raise ValueError(f"Invalid spectrum file {str(path)!r}: row {line} is not numeric ({err}).") from err
    table = np.array(values, dtype=float).reshape(-1, len(header))
    return table[:, 0], table[:, 1:], header[1:]


def _read_numpy(path: Path) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"Invalid spectrum file {str(path)!r}: NumPy could not read it ({err}).") from err
    if path.suffix == ".npy":
        table = np.asarray(loaded, dtype=float)
        if table.ndim != 2 or table.shape[1] < 2:
            raise ValueError(
                f"Invalid spectrum file {str(path)!r}: expected an (F, 1 + n_channels) array (frequencies in the "
                f"first column), got shape {table.shape}."
            )
        return table[:, 0], table[:, 1:], None
    with loaded as archive:
        missing = [key for key in ("freq_hz", "power") if key not in archive.files]
        if missing:
            raise ValueError(
                f"Invalid spectrum file {str(path)!r}: expected arrays 'freq_hz' and 'power', missing "
                f"{', '.join(missing)} (has {', '.join(archive.files) or 'none'})."
            )
        power = np.asarray(archive["power"], dtype=float)
        names = [str(c) for c in archive["channels"]] if "channels" in archive.files else None
        return np.asarray(archive["freq_hz"], dtype=float), power.reshape(len(power), -1), names


def _check(path: Path, freqs: np.ndarray, power: np.ndarray) -> None:
    where = f"Invalid spectrum file {str(path)!r}"
    if freqs.ndim != 1 or len(freqs) < 2 or power.shape[0] != len(freqs):
        raise ValueError(f"{where}: expected at least 2 frequencies, one power value each per channel.")
    if not (np.isfinite(freqs).all() and np.isfinite(power).all()):
        raise ValueError(f"{where}: it contains NaN or infinite values; remove or repair those rows.")
    if (freqs <= 0).any() or (np.diff(freqs) <= 0).any():
        raise ValueError(f"{where}: frequencies must be > 0 Hz and strictly increasing.")
    if (power <= 0).any():
        raise ValueError(f"{where}: powers must be > 0 (a flat or zero spectrum cannot be fitted).")


def read_spectrum(path: str | os.PathLike) -> CSD:
    """A (diagonal) CSD from a ``.csv``, ``.npy`` or ``.npz`` spectrum file (layouts in the module doc).

    Units are unknown from a file and set to ``"a.u."``.
    """
    path = Path(path)
    if path.suffix.lower() not in SPECTRUM_SUFFIXES:
        raise ValueError(
            f"Invalid value for 'path': expected a spectrum file ending in {', '.join(SPECTRUM_SUFFIXES)}, "
            f"got {str(path)!r}."
        )
    if not path.is_file():
        raise ValueError(f"Invalid value for 'path': no such file {str(path)!r}.")
    freqs, power, names = _read_csv(path) if path.suffix.lower() == ".csv" else _read_numpy(path)
    _check(path, freqs, power)
    n = power.shape[1]
    if names is None or len(names) != n:
        names = ["power"] if n == 1 else [f"ch{i + 1}" for i in range(n)]
    data = torch.diag_embed(torch.as_tensor(power, dtype=torch.float64)).to(torch.complex128)
    return CSD(torch.as_tensor(freqs), data, tuple(names))


def select_channels(csd: CSD, channels: Sequence[str] | str | None = None, *, average: bool = False) -> CSD:
    """Pick ``channels`` of a CSD (case and trailing dots ignored) and optionally average them.

    The average of channels of a CSD is the spectrum of their mean signal, (1/n²)·Σᵢⱼ S_ij; for a file
    without cross-spectra (diagonal CSD) that is (1/n²)·Σᵢ S_ii, so there it is the mean auto-spectrum
    instead, (1/n)·Σᵢ S_ii.
    """
    if channels is not None:
        csd = csd.pick(resolve_channels(channels, csd.channels))
    if not average or csd.n_channels == 1:
        return csd
    data = csd.data
    off_diagonal = data - torch.diag_embed(torch.diagonal(data, dim1=-2, dim2=-1))
    n = csd.n_channels
    mean = data.sum((-2, -1)) / n**2 if bool(off_diagonal.abs().max() > 0) else csd.psd.mean(-1)
    return CSD(csd.freqs, mean.reshape(-1, 1, 1).to(torch.complex128), (average_label(csd.channels),), csd.units)


def crop(csd: CSD, fmin: float | None = None, fmax: float | None = None) -> CSD:
    """The frequencies of ``csd`` in [fmin, fmax] (Hz); the band must overlap the spectrum's."""
    freqs = csd.freqs
    lo = float(freqs[0]) if fmin is None else float(fmin)
    hi = float(freqs[-1]) if fmax is None else float(fmax)
    if not lo < hi:
        raise ValueError(f"Invalid value for 'fmin': expected fmin < fmax, got fmin = {lo:g}, fmax = {hi:g} Hz.")
    keep = (freqs >= lo) & (freqs <= hi)
    if int(keep.sum()) < 2:
        raise ValueError(
            f"Invalid frequency band {lo:g}-{hi:g} Hz: the spectrum covers {float(freqs[0]):g}-"
            f"{float(freqs[-1]):g} Hz; choose fmin and fmax inside it."
        )
    if fmax is not None and hi > float(freqs[-1]) + 1e-9:
        raise ValueError(
            f"Invalid value for 'fmax': {hi:g} Hz is beyond the spectrum's highest frequency {float(freqs[-1]):g} Hz."
        )
    return CSD(freqs[keep], csd.data[keep], csd.channels, csd.units)

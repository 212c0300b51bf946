"""The cross-spectral density container shared by models, data and inference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from thalia._validation import check_frequencies


@dataclass(frozen=True)
class CSD:
    """Cross-spectral density: one complex (n_channels × n_channels) matrix per frequency.

    Attributes
    ----------
    freqs : Tensor, (F,)
        Frequencies in Hz (float64).
    data : Tensor, (F, n_channels, n_channels)
        Complex CSD (one-sided spectral density; Hermitian at every frequency).
    channels : tuple of str
        Channel names.
    units : str
        Units of ``data`` (e.g. ``"mV^2/Hz"`` or ``"a.u."``).
    """

    freqs: torch.Tensor
    data: torch.Tensor
    channels: tuple[str, ...]
    units: str = "a.u."

    def __post_init__(self) -> None:
        freqs = check_frequencies("freqs", self.freqs)
        data = torch.as_tensor(self.data)
        if not data.is_complex():
            data = data.to(torch.complex128)
        n = len(self.channels)
        if data.shape != (len(freqs), n, n):
            raise ValueError(
                f"Invalid shape for 'data': expected (n_freqs, n_channels, n_channels) = "
                f"({len(freqs)}, {n}, {n}), got {tuple(data.shape)}."
            )
        object.__setattr__(self, "freqs", freqs)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def psd(self) -> torch.Tensor:
        """Auto-spectra, the real diagonal: (F, n_channels)."""
        return torch.diagonal(self.data, dim1=-2, dim2=-1).real

    def coherence(self) -> torch.Tensor:
        """Magnitude-squared coherence |S_ij|² / (S_ii S_jj): (F, n, n)."""
        p = self.psd
        return self.data.abs() ** 2 / (p[:, :, None] * p[:, None, :])

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """(freqs, data) as NumPy arrays."""
        return self.freqs.detach().cpu().numpy(), self.data.detach().cpu().numpy()

    def pick(self, channels: Sequence[str]) -> CSD:
        """The sub-CSD of the named channels."""
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise ValueError(f"Unknown channel(s) {missing}: expected names from {list(self.channels)}.")
        idx = torch.tensor([self.channels.index(c) for c in channels])
        return CSD(self.freqs, self.data[:, idx][:, :, idx], tuple(channels), self.units)

    def plot(self, ax=None, *, cross: bool = False, log: bool = True, label: str | None = None, **kwargs):
        """Plot the auto-spectra (and, with ``cross=True``, |cross-spectra|) against frequency.

        Returns the matplotlib Figure.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            fig, ax = plt.subplots(figsize=(6, 4))
        else:
            fig = ax.figure
        freqs, data = self.to_numpy()
        for i, name in enumerate(self.channels):
            tag = name if label is None else f"{label} {name}"
            ax.plot(freqs, data[:, i, i].real, label=tag, **kwargs)
            if cross:
                for j in range(i + 1, self.n_channels):
                    ax.plot(freqs, np.abs(data[:, i, j]), ls="--", label=f"|{name}×{self.channels[j]}|")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel(f"spectral density ({self.units})")
        ax.legend(fontsize="small")
        return fig

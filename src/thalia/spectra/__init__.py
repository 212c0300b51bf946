"""Spectral containers and estimators: :class:`CSD` (frequencies × channels × channels), Welch, and
peaks over the aperiodic (1/f) fit (FOOOF)."""

from thalia.spectra.csd import CSD
from thalia.spectra.estimate import welch_csd
from thalia.spectra.peaks import AperiodicFit, PeakResult, aperiodic_fit, band_peak, spectral_peaks, welch_power

__all__ = [
    "CSD",
    "AperiodicFit",
    "PeakResult",
    "aperiodic_fit",
    "band_peak",
    "spectral_peaks",
    "welch_csd",
    "welch_power",
]

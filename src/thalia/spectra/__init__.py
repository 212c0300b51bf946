"""Spectral containers and estimators: :class:`CSD` (frequencies × channels × channels) and Welch."""

from thalia.spectra.csd import CSD
from thalia.spectra.estimate import welch_csd

__all__ = ["CSD", "welch_csd"]

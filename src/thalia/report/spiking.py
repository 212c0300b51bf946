"""A spiking run in numbers and figures: rates, gamma peaks, raster, LFP spectrum.

* :func:`spiking_metrics` — every population's mean rate and the low- and high-gamma peaks (over the
  aperiodic fit, :func:`thalia.spectra.band_peak`) of the LFP proxy and of the thalamic rates;
* :func:`add_spiking_section` — raster, population rates and the LFP spectrum with the gamma peaks
  marked, into an :class:`~thalia.report.HtmlReport`.

The gamma bands and the rate signals are those of :mod:`thalia.spiking.gamma` (``thalamus``: all relay
cells; ``relay`` and ``relay_ho``: each nucleus, where each loop's rhythm is measured; 1 ms bins, Welch
segments of 0.256 s); the LFP is :meth:`SimulationResult.lfp` (Mazzoni et al. 2015).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from thalia.spectra import welch_power
from thalia.spiking.gamma import BANDS, SEGMENT_S, SIGNALS, band_peaks, summed_rate

__all__ = ["add_spiking_section", "spiking_metrics", "spiking_spectra"]

TITLES = {"lfp": "LFP proxy", "thalamus_rate": "all relay cells", "relay_rate": "first-order relay (L6a loop)",
          "relay_ho_rate": "higher-order relay (L6b loop)"}  # fmt: skip


def spiking_spectra(result) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Welch spectra (freqs Hz, power) of the LFP proxy (``"lfp"``, when currents were recorded) and of
    the rate of each of :data:`thalia.spiking.gamma.SIGNALS` the circuit has (``"<signal>_rate"``)."""
    spectra = {}
    if result.currents:
        lfp = result.lfp()
        spectra["lfp"] = welch_power(lfp - lfp.mean(), 1000.0 / result.dt_ms, segment_s=SEGMENT_S)
    for name, populations in SIGNALS.items():
        found = summed_rate(result, populations)
        if found is not None:
            rate = found[1]
            spectra[f"{name}_rate"] = welch_power(rate - rate.mean(), 1000.0, segment_s=SEGMENT_S)
    return spectra


def _peaks(freqs: np.ndarray, power: np.ndarray) -> dict[str, dict[str, float | None]]:
    _, found = band_peaks(freqs, power)
    return {name: {"freq_hz": peak.freq_hz, "prominence_log10": peak.prominence} for name, peak in found.items()}


def spiking_metrics(result) -> dict[str, Any]:
    """Mean rates (Hz) of every population and the gamma peaks of each of :func:`spiking_spectra`
    (``freq_hz`` None: no peak in the band)."""
    spectra = spiking_spectra(result)
    return {
        "duration_ms": float(result.duration_ms),
        "dt_ms": float(result.dt_ms),
        "n_spikes": int(len(result.spike_ids)),
        "wall_s": float(result.wall_s),
        "rates_hz": {name: float(result.rate_hz(name)) for name in result.populations},
        "bands_hz": {name: list(band) for name, band in BANDS.items()},
        "peaks": {name: _peaks(freqs, power) for name, (freqs, power) in spectra.items()},
    }


def _spectrum_figure(spectra: dict, peaks: dict):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(spectra), figsize=(5 * len(spectra), 3.6), squeeze=False)
    for ax, (name, (freqs, power)) in zip(axes[0], spectra.items(), strict=True):
        keep = (freqs > 0) & (freqs <= 150)
        ax.loglog(freqs[keep], power[keep], color="0.2", lw=1)
        for k, (band, (lo, hi)) in enumerate(BANDS.items()):
            ax.axvspan(lo, hi, color=f"C{k}", alpha=0.12)
            found = peaks[name][band]["freq_hz"]
            if found is not None:
                ax.axvline(found, color=f"C{k}", lw=1.5, label=f"{band.replace('_', ' ')} {found:.1f} Hz")
        ax.set_title(TITLES.get(name, name))
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("power")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def add_spiking_section(report, result, metrics: dict[str, Any] | None = None, *, title: str = "Spiking circuit"):
    """Add a spiking run to ``report``: raster, rates, spectra with gamma peaks, rate table. Returns the metrics."""
    import matplotlib.pyplot as plt

    metrics = spiking_metrics(result) if metrics is None else metrics
    report.add_heading(title)
    report.add_text(
        f"{metrics['duration_ms'] / 1000:g} s simulated (dt = {metrics['dt_ms']:g} ms, {metrics['n_spikes']} spikes) "
        f"in {metrics['wall_s']:.1f} s of wall time."
    )
    for fig, caption in (
        (result.plot_raster(max_neurons=200), "Spike raster (at most 200 neurons per population)."),
        (result.plot_rates(bin_ms=5.0), "Population rates (5 ms bins)."),
    ):
        report.add_figure(fig, caption=caption)
        plt.close(fig)
    spectra = spiking_spectra(result)
    if spectra:
        fig = _spectrum_figure(spectra, metrics["peaks"])
        report.add_figure(fig, caption="Welch spectra; shaded: the low- and high-gamma bands, lines: peaks found.")
        plt.close(fig)
    rows = [
        {"signal": name, "band": band, "peak (Hz)": peak["freq_hz"] or "none",
         "prominence (log10)": peak["prominence_log10"] or "none"}
        for name, bands in metrics["peaks"].items() for band, peak in bands.items()
    ]  # fmt: skip
    report.add_table(rows, caption="Gamma peaks over the aperiodic fit (none: no peak in the band).")
    report.add_table(
        [{"population": name, "rate (Hz)": rate} for name, rate in metrics["rates_hz"].items()],
        caption="Mean firing rates.",
    )
    return metrics

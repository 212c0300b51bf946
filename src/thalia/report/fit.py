"""A spectral fit in numbers and figures: goodness of fit, peaks, posterior table, report section.

* :func:`fit_metrics` — F, R² of the log spectrum, the dominant peak of data and model, status;
* :func:`posterior_table` — one row per free parameter: prior, posterior mean, SD and credible interval
  in θ and in natural units;
* :func:`add_fit_section` — data vs model spectrum, F trace, posterior table and diagnostics into an
  :class:`~thalia.report.HtmlReport`.

The dominant peak is the highest local maximum of the spectrum over its aperiodic (1/f) fit inside the
fitted band (FOOOF, :func:`thalia.spectra.band_peak`), found the same way on the data and on the model
spectrum at the posterior mean; ``None`` when the spectrum has no peak above its 1/f background.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from thalia.spectra import band_peak

__all__ = ["add_fit_section", "auto_spectra", "dominant_peak_hz", "fit_metrics", "posterior_table", "r2_log"]


def auto_spectra(posterior) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(freqs Hz (F,), data (F, n), model (F, n)) auto-spectra of a spectral fit's posterior."""
    if posterior.freqs is None:
        raise ValueError("Invalid value for 'posterior': expected the posterior of a spectral fit (no freqs).")

    def diagonal(values) -> np.ndarray:
        array = values.detach().cpu().numpy()
        if array.ndim == 1:
            return array.real[:, None]
        return np.diagonal(array, axis1=-2, axis2=-1).real if array.ndim == 3 else array.real

    return posterior.freqs.detach().cpu().numpy(), diagonal(posterior.data), diagonal(posterior.predicted)


def r2_log(data: np.ndarray, model: np.ndarray) -> float:
    """R² of the log spectrum, 1 − Σ(ln d − ln m)² / Σ(ln d − mean ln d)², over all entries; NaN if any
    power is ≤ 0."""
    data, model = np.asarray(data, dtype=float), np.asarray(model, dtype=float)
    if (data <= 0).any() or (model <= 0).any():
        return math.nan
    log_data, log_model = np.log(data), np.log(model)
    total = float(((log_data - log_data.mean()) ** 2).sum())
    return 1.0 - float(((log_data - log_model) ** 2).sum()) / total if total > 0 else math.nan


def dominant_peak_hz(freqs: np.ndarray, power: np.ndarray) -> float | None:
    """Frequency (Hz) of the highest peak over the aperiodic fit inside the spectrum's range, or None."""
    freqs, power = np.asarray(freqs, dtype=float), np.asarray(power, dtype=float)
    if freqs.size < 8 or (power <= 0).any():
        return None
    band = (float(freqs[0]), float(freqs[-1]))
    try:
        peak = band_peak(freqs, power, band, freq_range=band)
    except RuntimeError:  # FOOOF could not fit this spectrum at all
        return None
    return peak.freq_hz if peak.present else None


def fit_metrics(posterior) -> dict[str, Any]:
    """Goodness of fit of a spectral fit (first channel's auto-spectrum for the peaks).

    Returns a dict with ``model``, ``F``, ``status``, ``iterations``, ``r2_log_spectrum``,
    ``explained_variance``, ``peak_hz_data``, ``peak_hz_model`` (None: no peak) and the noise
    log-precisions.
    """
    freqs, data, model = auto_spectra(posterior)
    return {
        "model": posterior.model,
        "F": float(posterior.F),
        "accuracy": float(posterior.accuracy),
        "complexity": float(posterior.complexity),
        "status": posterior.status.value,
        "message": posterior.message,
        "iterations": int(posterior.iterations),
        "r2_log_spectrum": r2_log(data, model),
        "explained_variance": float(posterior.explained_variance),
        "peak_hz_data": dominant_peak_hz(freqs, data[:, 0]),
        "peak_hz_model": dominant_peak_hz(freqs, model[:, 0]),
        "noise_log_precision": [float(h) for h in posterior.noise_log_precision.reshape(-1)],
    }


def _natural(posterior, label: str, values: tuple[float, ...]) -> tuple[list[float], str] | None:
    if label not in posterior.natural:
        return None
    kind, scale, unit = posterior.natural[label]
    if kind == "log":
        return [scale * math.exp(v) for v in values], unit
    return [scale * v for v in values], unit


def posterior_table(posterior, level: float = 0.9) -> list[dict[str, Any]]:
    """One row per free parameter: label, prior mean and SD, posterior mean and SD, credible interval
    (``level``, equal-tailed) in θ and, where the model knows them, in natural units."""
    lower, upper = (bound.detach().cpu().numpy() for bound in posterior.credible_interval(level))
    mean, sd = posterior.mean.detach().cpu().numpy(), posterior.sd.detach().cpu().numpy()
    prior_sd = np.sqrt(np.diagonal(posterior.prior_cov.detach().cpu().numpy()))
    prior_mean = posterior.prior_mean.detach().cpu().numpy()
    pct = f"{round(level * 100)}%"
    rows = []
    for i in np.flatnonzero(prior_sd > 0):
        label = posterior.labels[i]
        lo, hi = lower[i], upper[i]
        row = {
            "parameter": label,
            "prior mean": float(prior_mean[i]),
            "prior sd": float(prior_sd[i]),
            "mean": float(mean[i]),
            "sd": float(sd[i]),
            f"{pct} CI low": float(lo),
            f"{pct} CI high": float(hi),
        }
        natural = _natural(posterior, label, (float(mean[i]), float(lo), float(hi)))
        if natural is not None:
            (value, a, b), unit = natural
            row.update({"natural": value, f"natural {pct} CI": f"[{min(a, b):.4g}, {max(a, b):.4g}]", "unit": unit})
        rows.append(row)
    return rows


def _spectrum_figure(posterior, metrics: dict[str, Any]):
    import matplotlib.pyplot as plt

    freqs, data, model = auto_spectra(posterior)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(freqs, data[:, 0], color="0.2", lw=1.2, label="data")
    ax.semilogy(freqs, model[:, 0], color="C3", lw=1.6, label=f"{posterior.model or 'model'} at the posterior mean")
    for key, color in (("peak_hz_data", "0.2"), ("peak_hz_model", "C3")):
        if metrics.get(key) is not None:
            ax.axvline(metrics[key], color=color, ls=":", lw=1)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (normalised)")
    ax.set_title(f"R² (log spectrum) = {metrics['r2_log_spectrum']:.3f}")
    ax.legend(fontsize="small")
    return fig


def _trace_figure(posterior):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    steps = np.arange(1, len(posterior.trace) + 1)
    values = np.array([entry.get("F", np.nan) for entry in posterior.trace], dtype=float)
    accepted = np.array([bool(entry.get("accepted", True)) for entry in posterior.trace])
    ax.plot(steps, values, color="0.5", lw=1)
    ax.plot(steps[accepted], values[accepted], "o", ms=4, color="C0", label="accepted")
    ax.plot(steps[~accepted], values[~accepted], "x", ms=5, color="C3", label="rejected")
    ax.set_xlabel("iteration")
    ax.set_ylabel("free energy F (nats)")
    ax.legend(fontsize="small")
    return fig


def add_fit_section(report, posterior, metrics: dict[str, Any] | None = None, *, level: float = 0.9) -> dict:
    """Add a spectral fit to ``report``: spectra, F trace, diagnostics, posterior table. Returns the metrics."""
    import matplotlib.pyplot as plt

    metrics = fit_metrics(posterior) if metrics is None else metrics
    report.add_heading(f"Fit: {posterior.model or 'model'} to the spectrum")
    fig = _spectrum_figure(posterior, metrics)
    report.add_figure(fig, caption="Data and model spectrum (dotted: dominant peak over the 1/f fit).")
    plt.close(fig)

    def hz(value):
        return "none" if value is None else f"{value:.2f} Hz"

    report.add_text(
        f"Status {metrics['status']} after {metrics['iterations']} iterations. F = {metrics['F']:.2f} "
        f"(accuracy {metrics['accuracy']:.2f}, complexity {metrics['complexity']:.2f}). "
        f"R² of the log spectrum {metrics['r2_log_spectrum']:.3f}; explained variance "
        f"{metrics['explained_variance']:.3f}. Dominant peak: data {hz(metrics['peak_hz_data'])}, "
        f"model {hz(metrics['peak_hz_model'])}.\n\n{metrics['message']}"
    )
    fig = _trace_figure(posterior)
    report.add_figure(fig, caption="Free energy per iteration of the (last) fit.")
    plt.close(fig)
    report.add_table(posterior_table(posterior, level), caption=f"Posterior of the free parameters ({level:.0%} CI).")
    return metrics

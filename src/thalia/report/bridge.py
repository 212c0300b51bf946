"""The bridge in a report: the circuit's spectrum with the fitted mass model's, the parameter map, and
each drug at both scales with the mass-model effects that explain it (credible intervals).

:func:`add_bridge_section` adds it all to an :class:`~thalia.report.HtmlReport`; the figures are
:func:`fit_figure` and :func:`drug_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["add_bridge_section", "drug_figure", "effects_figure", "fit_figure"]


def fit_figure(fit):
    """The circuit's LFP spectrum and the fitted TCM spectrum (log-log). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    grid = np.linspace(fit.freqs[0], fit.freqs[-1], 400)
    ax.loglog(fit.freqs, fit.power, ".", ms=3, color="0.3", label="circuit LFP (Welch)")
    ax.loglog(grid, fit.fitted_power(grid), color="C3", label="fitted TCM")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (pA²/Hz)")
    ax.legend(fontsize="small")
    return fig


def drug_figure(comparison):
    """Baseline and drug spectra at both scales, side by side. Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, scale in zip(axes, ("circuit", "mass"), strict=True):
        for cond, color in (("baseline", "0.3"), ("drug", "C3")):
            ax.loglog(comparison.freqs, comparison.power[(scale, cond)], color=color, label=cond)
        ax.set_title(f"{scale}: {comparison.drug.name}")
        ax.set_xlabel("frequency (Hz)")
        ax.legend(fontsize="small")
    axes[0].set_ylabel("power")
    fig.tight_layout()
    return fig


def effects_figure(joint):
    """Both spectra of a :class:`~thalia.bridge.DrugEffectFit` with the joint fit (log-log). Returns the Figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    fitted = joint.fitted_power()
    for cond, data, color in (("baseline", joint.baseline.power, "0.3"), ("drug", joint.power, "C3")):
        ax.loglog(joint.freqs, data, ".", ms=3, color=color, label=f"circuit, {cond}")
        ax.loglog(joint.freqs, fitted[cond], color=color, label=f"TCM (joint fit), {cond}")
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (pA²/Hz)")
    ax.legend(fontsize="small")
    return fig


def add_bridge_section(
    report,
    fit,
    comparisons: Sequence = (),
    effects: Mapping | None = None,
    *,
    circuit_parameters=None,
    level: float = 0.9,
):
    """Add the bridge section to ``report`` and return it.

    Parameters
    ----------
    report : HtmlReport
    fit : SpectralFit
        The TCM fitted to the baseline circuit (:func:`thalia.bridge.fit_circuit`).
    comparisons : sequence of DrugComparison
        From :func:`thalia.bridge.compare_drugs`.
    effects : mapping, optional
        Drug name -> :class:`~thalia.bridge.DrugEffectFit` of the circuit under that drug
        (:func:`thalia.bridge.fit_drug_effects`); its effects are tabled with ``level`` credible intervals.
    circuit_parameters : CircuitParameters, optional
        The parameter map (:func:`thalia.bridge.circuit_parameters`), tabled when given.
    """
    report.add_heading("Spiking circuit and neural mass model")
    report.add_figure(fit_figure(fit), caption="LFP spectrum of the circuit and the TCM fitted to its log spectrum")
    peaks = fit.gamma_peaks()
    report.add_text(
        f"The fitted TCM explains {100 * fit.explained_variance:.1f} % of the variance of the log spectrum over "
        f"{fit.freqs[0]:g}–{fit.freqs[-1]:g} Hz ({fit.posterior.status.value}, F = {fit.posterior.F:.1f})."
    )
    if peaks:
        report.add_table(peaks, caption="Gamma peaks of the circuit and the nearest peak of the fitted TCM (Hz)")
    if circuit_parameters is not None:
        report.add_table(circuit_parameters.table(), caption="TCM prior means set from the circuit")
    for comparison in comparisons:
        name = comparison.drug.name
        report.add_heading(f"Drug: {name} (dose {comparison.drug.dose:g})", level=3)
        report.add_figure(drug_figure(comparison), caption=f"Spectra without and with {name} at both scales")
        report.add_table(comparison.table(), caption="Spectral summary at both scales (log10 band powers, Hz)")
        report.add_table(comparison.agreement(), caption="Predicted change against the literature")
        if effects and name in effects:
            joint = effects[name]
            explained = 100 * joint.explained_variance
            caption = (
                f"Mass-model effects of {name}: baseline and drug fitted at once ({explained:.1f} % of the variance "
                f"explained); change = ln of the factor, {100 * level:g} % credible interval"
            )
            report.add_figure(effects_figure(joint), caption=f"Baseline and {name} fitted at once")
            report.add_table(joint.table(level=level), caption=caption)
    return report

"""Both scales side by side: spectral summaries and a drug's predicted change at each scale.

* :func:`spectral_summary` — band powers and the gamma peak of one spectrum, by the same definition
  for the circuit's Welch spectrum and the mass model's exact one.
* :func:`compare_drugs` — run the circuit with and without each drug (same seed) and evaluate the
  mass model (e.g. the one fitted to the circuit) with and without it: :class:`DrugComparison`.

Which mass-model effect explains a drug's change in the circuit's spectrum is
:func:`thalia.bridge.fit_drug_effects`'s question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from thalia._logging import logger
from thalia._validation import check_option
from thalia.bridge.circuit import Circuit, CircuitLFP, simulate_lfp
from thalia.bridge.drugs import Drug
from thalia.bridge.fit import FIT_BAND_HZ, SpectralFit, log_power
from thalia.bridge.mapping import bridge_model
from thalia.params import ParameterSet
from thalia.spectra import band_peak

#: Bands of the summary, Hz.
BANDS = {"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 90.0)}
#: Where the gamma peak is looked for, Hz.
GAMMA_PEAK_BAND = (25.0, 90.0)
SCALES = ("circuit", "mass")


def spectral_summary(freqs, power) -> dict[str, float | None]:
    """``<band>_power`` (log10 of the mean power in each of :data:`BANDS`) and ``gamma_peak_hz`` (the
    highest peak over the aperiodic fit in 25–90 Hz, :func:`thalia.spectra.band_peak` over the
    spectrum's 4–90 Hz; None without one, or when FOOOF cannot fit the spectrum, with a warning)."""
    freqs = np.asarray(freqs, dtype=float)
    power = np.asarray(power, dtype=float)
    out: dict[str, float | None] = {}
    for name, (lo, hi) in BANDS.items():
        inside = (freqs >= lo) & (freqs <= hi)
        if not inside.any():
            raise ValueError(f"Invalid value for 'freqs': no frequency in the {name} band {lo:g}–{hi:g} Hz.")
        out[f"{name}_power"] = float(np.log10(power[inside].mean()))
    keep = (freqs >= FIT_BAND_HZ[0]) & (freqs <= FIT_BAND_HZ[1])
    try:
        peak = band_peak(freqs[keep], power[keep], GAMMA_PEAK_BAND, freq_range=FIT_BAND_HZ).freq_hz
    except RuntimeError as error:  # FOOOF found no aperiodic fit: report no peak, say why
        logger.warning("spectral_summary: no gamma peak measured (%s)", error)
        peak = None
    out["gamma_peak_hz"] = peak
    return out


@dataclass(frozen=True)
class DrugComparison:
    """A drug's spectral change at both scales.

    Attributes
    ----------
    drug : Drug
    freqs : ndarray, (F,)
        Frequencies, Hz (the circuit's Welch frequencies over 4–90 Hz; the mass model is evaluated there).
    power : dict
        (scale, condition) -> power (F,), scale ``"circuit"`` or ``"mass"``, condition ``"baseline"``
        or ``"drug"`` (circuit: pA²/Hz; mass: the model's units).
    rates_hz : dict
        Condition -> the circuit's population rates (Hz).
    lfp : CircuitLFP, optional
        The circuit's run under the drug (e.g. to refit the mass model to it).
    """

    drug: Drug
    freqs: np.ndarray
    power: dict[tuple[str, str], np.ndarray]
    rates_hz: dict[str, dict[str, float]]
    lfp: CircuitLFP | None = None

    def summary(self, scale: str) -> dict[str, dict[str, float | None]]:
        """Condition -> :func:`spectral_summary` at one scale."""
        check_option("scale", scale, SCALES)
        return {cond: spectral_summary(self.freqs, self.power[(scale, cond)]) for cond in ("baseline", "drug")}

    def change(self, scale: str, measure: str) -> float | None:
        """Drug minus baseline of one summary measure (None when a gamma peak is missing)."""
        summary = self.summary(scale)
        check_option("measure", measure, tuple(summary["baseline"]))
        before, after = summary["baseline"][measure], summary["drug"][measure]
        return None if before is None or after is None else after - before

    def agreement(self) -> list[dict]:
        """One row per expectation and scale: measure, expected sign, change, whether it agrees."""
        rows = []
        for expectation in self.drug.expected:
            for scale in SCALES:
                change = self.change(scale, expectation.measure)
                agrees = None if change is None else bool(np.sign(change) == expectation.sign)
                rows.append({"drug": self.drug.name, "scale": scale, "measure": expectation.measure,
                             "expected": "up" if expectation.sign > 0 else "down", "change": change,
                             "agrees": agrees, "reference": expectation.reference})  # fmt: skip
        return rows

    def table(self) -> list[dict]:
        """Side by side: one row per measure with baseline, drug and change at each scale."""
        summaries = {scale: self.summary(scale) for scale in SCALES}
        rows = []
        for measure in summaries["circuit"]["baseline"]:
            row = {"measure": measure}
            for scale in SCALES:
                before, after = (summaries[scale][cond][measure] for cond in ("baseline", "drug"))
                row[f"{scale} baseline"], row[f"{scale} drug"] = before, after
                row[f"{scale} change"] = None if before is None or after is None else after - before
            rows.append(row)
        return rows


def compare_drugs(
    drugs: Sequence[Drug],
    *,
    circuit: Circuit | None = None,
    mass: ParameterSet | SpectralFit | None = None,
    baseline: CircuitLFP | None = None,
    duration_ms: float = 60000.0,
    seed: int = 0,
    segment_s: float = 1.0,
) -> list[DrugComparison]:
    """Each drug's spectral change in the circuit and in the mass model.

    Parameters
    ----------
    drugs : sequence of Drug
    circuit : Circuit, optional
        The baseline circuit (default configs).
    mass : ParameterSet or SpectralFit, optional
        The baseline mass model: a parameter set of :func:`~thalia.bridge.mapping.bridge_model` or a
        fit (its posterior mean); default the model's prior mean.
    baseline : CircuitLFP, optional
        The baseline run, if already simulated (with the same ``seed`` and ``duration_ms``).
    duration_ms, seed, segment_s
        Every run (baseline and drugs) uses the same seed, so the drug is the only difference.
    """
    circuit = Circuit() if circuit is None else circuit
    params = _mass_parameters(mass)
    model = bridge_model()
    run = {"duration_ms": duration_ms, "seed": seed}
    baseline = simulate_lfp(circuit, **run) if baseline is None else _checked_baseline(baseline, duration_ms)
    freqs, base_power = _region_power(baseline, segment_s)
    base_mass = np.exp(log_power(model, params, freqs))
    out = []
    for drug in drugs:
        if not isinstance(drug, Drug):
            raise ValueError(f"Invalid value for 'drugs': expected Drug objects, got {drug!r}.")
        treated = simulate_lfp(drug.apply_to_circuit(circuit), **run)
        power = {
            ("circuit", "baseline"): base_power,
            ("circuit", "drug"): _region_power(treated, segment_s)[1],
            ("mass", "baseline"): base_mass,
            ("mass", "drug"): np.exp(log_power(model, drug.apply_to_tcm(params), freqs)),
        }
        rates = {"baseline": baseline.rates_hz, "drug": treated.rates_hz}
        out.append(DrugComparison(drug, freqs, power, rates, treated))
    return out


def _checked_baseline(baseline, duration_ms: float) -> CircuitLFP:
    if not isinstance(baseline, CircuitLFP):
        raise ValueError(f"Invalid value for 'baseline': expected a CircuitLFP, got {type(baseline).__name__}.")
    length_ms = 1000.0 * len(baseline.channel("cortex")) / baseline.fs_hz
    if abs(length_ms - duration_ms) > 1e-6 * duration_ms:
        raise ValueError(
            f"Invalid value for 'baseline': it holds {length_ms:g} ms of activity, but the drug runs last "
            f"duration_ms = {duration_ms:g} ms; simulate it with the same duration and seed."
        )
    return baseline


def _mass_parameters(mass) -> ParameterSet:
    if mass is None:
        return bridge_model().space.prior_mean()
    if isinstance(mass, SpectralFit):
        return mass.parameters()
    if isinstance(mass, ParameterSet):
        return mass
    raise ValueError(f"Invalid value for 'mass': expected a ParameterSet, a SpectralFit or None, got {mass!r}.")


def _region_power(lfp: CircuitLFP, segment_s: float) -> tuple[np.ndarray, np.ndarray]:
    csd = lfp.csd("region", segment_s=segment_s)
    freqs = csd.freqs.numpy()
    keep = (freqs >= FIT_BAND_HZ[0]) & (freqs <= FIT_BAND_HZ[1])
    return freqs[keep], csd.psd[:, 0].numpy()[keep]

"""The bridge between the spiking thalamo-cortical circuit and the TCM neural mass model.

* :mod:`~thalia.bridge.circuit` — run the default circuit (:class:`Circuit`, :func:`simulate_lfp`) and
  take the Welch CSD of its LFP proxy (region or layers as channels);
* :mod:`~thalia.bridge.mapping` — which TCM population stands for which circuit population, and the
  TCM priors set from the circuit (receptor time constants, delays): :func:`circuit_priors`;
* :mod:`~thalia.bridge.fit` — the TCM fitted to the circuit's log spectrum over 4–90 Hz
  (:func:`fit_circuit`, :func:`fit_tcm`);
* :mod:`~thalia.bridge.drugs` — drug presets defined once (:class:`Drug`, :func:`preset`) and applied
  to both scales;
* :mod:`~thalia.bridge.effects` — baseline and drug spectra fitted at once, with shared parameters
  and receptor-level drug effects (:func:`fit_drug_effects`): which effect explains the change;
* :mod:`~thalia.bridge.compare` — the predicted spectral change at each scale side by side
  (:func:`compare_drugs`).
"""

from thalia.bridge.circuit import Circuit, CircuitLFP, simulate_lfp
from thalia.bridge.compare import DrugComparison, compare_drugs, spectral_summary
from thalia.bridge.drugs import (
    PRESETS,
    TCM_EFFECTS,
    Drug,
    Expectation,
    benzodiazepine,
    cholinergic,
    ketamine,
    preset,
    propofol,
)
from thalia.bridge.effects import DrugEffectFit, fit_drug_effects
from thalia.bridge.fit import SpectralFit, fit_circuit, fit_tcm, matched_peaks
from thalia.bridge.mapping import POPULATION_MAP, CircuitParameters, bridge_model, circuit_parameters, circuit_priors

__all__ = [
    "Circuit",
    "CircuitLFP",
    "CircuitParameters",
    "Drug",
    "DrugComparison",
    "DrugEffectFit",
    "Expectation",
    "POPULATION_MAP",
    "PRESETS",
    "SpectralFit",
    "TCM_EFFECTS",
    "benzodiazepine",
    "bridge_model",
    "cholinergic",
    "circuit_parameters",
    "circuit_priors",
    "compare_drugs",
    "fit_circuit",
    "fit_drug_effects",
    "fit_tcm",
    "ketamine",
    "matched_peaks",
    "preset",
    "propofol",
    "simulate_lfp",
    "spectral_summary",
]

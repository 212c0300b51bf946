"""The bridge's three claims (issue 8), on the default circuit: the TCM fitted to its LFP spectrum,
GABA-A potentiation seen by the refitted mass model, and each drug's spectral change at both scales.

Every run uses 60 s of simulated activity (seed 0) after a 0.5 s warm-up; the fits are over 4–90 Hz.
Wall time: about ten minutes on one free CPU core (five runs of the circuit, three fits).
"""

from __future__ import annotations

import pytest

from thalia.bridge import (
    PRESETS,
    compare_drugs,
    direction_probability,
    fit_circuit,
    inhibitory_parameters,
    preset,
    refit_circuit,
    simulate_lfp,
)

pytestmark = pytest.mark.slow
SEED = 0
#: Where a scale does not change the spectrum in the direction the literature reports, and why (see
#: docs/bridge.md). The test fails when a listed pair starts to agree, so that this list stays true.
DISAGREEMENTS = {
    ("ketamine", "circuit"): (
        "no measurable change of 30-90 Hz power (+0.018 log10 with the higher-order nucleus, -0.14 before); the "
        "default circuit has no NMDA synapses, so the preset only weakens the AMPA drive onto interneurons and the TRN "
        "(see docs/bridge.md)"
    ),
    ("benzodiazepine", "circuit"): "the gamma peak moves up (31.7 -> 32.7 Hz)",
    ("benzodiazepine", "mass"): "the fitted TCM has no gamma peak left under GABA-A x1.5 (nothing to compare)",
    ("cholinergic", "mass"): (
        "no measurable change of the fitted TCM's 30-90 Hz power with more background drive (+0.010 log10 with the "
        "higher-order nucleus, -0.26 before)"
    ),
}


@pytest.fixture(scope="module")
def baseline():
    return simulate_lfp(seed=SEED)


@pytest.fixture(scope="module")
def baseline_fit(baseline):
    return fit_circuit(baseline)


@pytest.fixture(scope="module")
def comparisons(baseline, baseline_fit):
    return compare_drugs([preset(name) for name in PRESETS], mass=baseline_fit, baseline=baseline, seed=SEED)


def test_fitted_tcm_explains_the_log_spectrum_and_places_the_gamma_peaks(baseline_fit):
    assert baseline_fit.posterior.converged
    assert baseline_fit.explained_variance >= 0.90
    rows = baseline_fit.gamma_peaks(tolerance_hz=5.0)
    assert rows, "the circuit shows no gamma peak: nothing to place"
    for row in rows:
        assert row["distance_hz"] is not None and row["distance_hz"] <= 5.0, row


#: Claim 2 on the default circuit (seed 0; seed 1 alike): the refit moves the mean of the six GABA-A parameters
#: the other way under either form of GABA-A potentiation (docs/bridge.md has the numbers of every parameter).
NOT_MET = {
    "benzodiazepine": (
        "GABA-A conductance x1.5: the mean of the six GABA-A parameters changes by -0.08 +- 0.17 (P(up) 0.32), "
        "T[0,1] by -0.11 +- 0.07 (P(up) 0.06)"
    ),
    "propofol": (
        "GABA-A decay x1.5 (gamma peak 31.7 -> 28.5 Hz): the mean of the six GABA-A parameters changes by "
        "-0.06 +- 0.17 (P(up) 0.36); T[0,1] falls by 0.25 +- 0.08 (P(up) 0.001) although T[0,1] x1.5 alone moves "
        "the fitted TCM's peak to 28.1 Hz: the refit explains the change through other parameters"
    ),
}


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=NOT_MET[name])) for name in NOT_MET]
)
def test_gaba_a_potentiation_moves_the_inhibitory_parameters_up(name, baseline_fit, comparisons):
    treated = next(c.lfp for c in comparisons if c.drug.name == name)  # the circuit under the preset
    refit = refit_circuit(baseline_fit, treated)
    result = direction_probability(baseline_fit, refit, inhibitory_parameters(baseline_fit))
    assert result["p_up"] >= 0.95, result


#: smallest change that counts as a change: 0.03 log10 of 30–90 Hz power (7 %), 0.5 Hz of peak frequency
MIN_EFFECT = {"gamma_power": 0.03, "gamma_peak_hz": 0.5}


def test_each_drug_changes_both_spectra_as_the_literature_reports_or_is_documented(comparisons):
    """A change in the literature's direction smaller than :data:`MIN_EFFECT` counts as no change
    (a disagreement), so that sign flips of negligible changes do not decide the test."""
    unexplained, stale = [], []
    for comparison in comparisons:
        for row in comparison.agreement():
            documented = (row["drug"], row["scale"]) in DISAGREEMENTS
            change = row["change"]
            row["agrees"] = bool(
                row["agrees"] and change is not None and abs(change) >= MIN_EFFECT.get(row["measure"], 0.0)
            )
            if row["agrees"] and documented:
                stale.append(row)
            elif not row["agrees"] and not documented:
                unexplained.append(row)
    assert not unexplained, f"disagree with the literature and are not documented: {unexplained}"
    assert not stale, f"documented as disagreeing but now agree (update DISAGREEMENTS and docs): {stale}"

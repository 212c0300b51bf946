"""The bridge's three claims (issue 8), on the default circuit: the TCM fitted to its LFP spectrum,
GABA-A potentiation seen by the refitted mass model, and each drug's spectral change at both scales.

Every run uses 60 s of simulated activity (seed 0, the control seed 1) after a 0.5 s warm-up; the fits
are over 4–90 Hz. Wall time: about four minutes on one free CPU core (six runs of the circuit, four fits).
"""

from __future__ import annotations

import math

import pytest

from thalia.bridge import PRESETS, compare_drugs, fit_circuit, fit_drug_effects, preset, simulate_lfp

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
    ("benzodiazepine", "circuit"): "the gamma peak moves up (33.4 -> 34.7 Hz)",
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


#: The mass model's GABA-A effects (conductance scale and decay) whose mean claim 2 asks to rise.
GABA_A_EFFECTS = ["gaba_a", "gaba_a_decay"]
#: Claim 2 where it is not met, with the numbers of seed 0 (seed 1 alike; docs/bridge.md has every effect).
NOT_MET = {
    "benzodiazepine": (
        "GABA-A conductance x1.5 raises the circuit's gamma peak (33.4 -> 34.7 Hz); the joint fit reads the change as "
        "a shorter GABA-A decay (-0.23, 90 % CI -0.31 ... -0.15) and GABA-A conductance -0.02 +- 0.04: "
        "mean of the two -0.13 +- 0.04, P(up) 0.002"
    ),
}


@pytest.fixture(scope="module")
def effect_fits(baseline_fit, comparisons):
    """Baseline and drug fitted at once (shared parameters, one effect per receptor-level change)."""
    return {c.drug.name: fit_drug_effects(baseline_fit, c.lfp) for c in comparisons}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=NOT_MET[name])] if name in NOT_MET else [])
        for name in ("propofol", "benzodiazepine")
    ],
)
def test_gaba_a_potentiation_moves_the_inhibitory_effects_up(name, effect_fits):
    result = effect_fits[name].direction_probability(GABA_A_EFFECTS)
    assert result["p_up"] >= 0.95, result


def test_the_propofol_decay_factor_is_recovered(effect_fits):
    """The preset multiplies every GABA-A decay of the circuit by 1.5: the joint fit's GABA-A decay
    effect has ln 1.5 inside its 90 % credible interval."""
    row = next(row for row in effect_fits["propofol"].table(level=0.9) if row["effect"] == "gaba_a_decay")
    assert row["ci_low"] < math.log(1.5) < row["ci_high"], row


def test_a_second_run_of_the_undrugged_circuit_shows_no_effect(baseline_fit):
    """Control: the same circuit with another seed differs by sampling noise only, and no effect is
    credibly non-zero (every 99 % interval holds 0)."""
    control = fit_drug_effects(baseline_fit, simulate_lfp(seed=SEED + 1))
    for row in control.table(level=0.99):
        assert row["ci_low"] < 0.0 < row["ci_high"], row
    assert 0.05 < control.direction_probability(GABA_A_EFFECTS)["p_up"] < 0.95


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

"""The dual-gamma claims of the default thalamo-cortical circuit (issue 6), measured as in
``benchmarks/gamma.py``: Welch spectra of population rates over 3 s after a 0.5 s warm-up, peaks over
a FOOOF aperiodic fit (:func:`thalia.spiking.gamma.measure`). Each loop's peak is measured in the relay
nucleus the loop passes through: the L6a loop's in the first-order relay cells (``relay``), the L6b
loop's in the higher-order ones (``relay_ho``).

- intact circuit: a low-gamma (25–35 Hz) peak in ``relay`` and a high-gamma (60–80 Hz) peak in
  ``relay_ho``, each at least 0.3 log10 units (a factor 2 in power) over the aperiodic fit, on three
  seeds;
- removing L6a → TRN/relay removes the low peak, and removing L6b → higher-order relay the high peak,
  from every measured signal (both nuclei and their summed rate);
- each loop's peak frequency falls as its axonal delay grows (three delays);
- no population near its refractory limit, every rate in a physiological range.
"""

import numpy as np
import pytest

from thalia.spiking.gamma import measure
from thalia.spiking.regions import DEFAULT_DELAY_MS

pytestmark = pytest.mark.slow

SEEDS = (1, 2, 3)
DURATION_MS = 3000.0
MIN_PROMINENCE = 0.3  # log10 units over the aperiodic fit
#: refractory period (ms) per population role, from thalia.spiking.regions.cells
T_REF_MS = {"relay": 1.0, "trn": 1.0, "e": 2.0, "i": 1.0}
#: plausible mean rates (Hz): awake thalamic relay and TRN cells fire ~5–40 Hz (tonic mode; Swadlow &
#: Gusev 2001, Bezdudnaya et al. 2006), cortical pyramidal cells ~0.5–20 Hz, fast-spiking cells up to
#: ~60 Hz (Barth & Poulet 2012; Sakata & Harris 2009).
RATE_RANGE_HZ = {"relay": (3.0, 50.0), "trn": (3.0, 60.0), "e": (0.5, 25.0), "i": (2.0, 80.0)}


@pytest.fixture(scope="module")
def runs():
    return {(loops, seed): measure(loops, duration_ms=DURATION_MS, seed=seed)
            for seed in SEEDS for loops in ("intact", "no_l6a", "no_l6b")}  # fmt: skip


#: the relay nucleus each loop passes through, where its peak is measured
CARRIER = {"low_gamma": "relay", "high_gamma": "relay_ho"}
#: populations that lose their only drive in a control, so may fall silent there (lower bound not
#: checked): the TRN is driven by L6a (cortical inactivation silences much of the TRN's input), the
#: higher-order relay cells and their TRN sector by L6b (POm needs its cortical driver; Diamond et al.
#: 1992, J Comp Neurol 319:66), and L6b, whose thalamic input is the higher-order one, by them
UNDRIVEN = {
    "intact": (),
    "no_l6a": ("thalamus.trn",),
    "no_l6b": ("thalamus.relay_ho", "thalamus.trn_ho", "cortex.l6b_e", "cortex.l6b_i"),
}


@pytest.mark.parametrize("seed", SEEDS)
def test_intact_circuit_has_both_gamma_peaks(runs, seed):
    signals = runs[("intact", seed)]["signals"]
    low, high = signals[CARRIER["low_gamma"]], signals[CARRIER["high_gamma"]]
    assert low["low_gamma_prominence"] is not None and low["low_gamma_prominence"] >= MIN_PROMINENCE, signals
    assert high["high_gamma_prominence"] is not None and high["high_gamma_prominence"] >= MIN_PROMINENCE, signals
    assert 25.0 < low["low_gamma_peak_hz"] < 35.0 and 60.0 < high["high_gamma_peak_hz"] < 80.0


@pytest.mark.parametrize("seed", SEEDS)
def test_removing_a_loop_removes_its_peak(runs, seed):
    """Without L6a → TRN there is no low-gamma peak, without L6b → relay no high-gamma peak (so the
    high peak is not a harmonic of the low one, nor the low one a subharmonic of the high one), in
    any of the measured signals."""
    for loops, band in (("no_l6a", "low_gamma"), ("no_l6b", "high_gamma")):
        signals = runs[(loops, seed)]["signals"]
        assert set(signals) == {"thalamus", "relay", "relay_ho"}
        assert all(p[f"{band}_prominence"] is None for p in signals.values()), (loops, signals)


@pytest.mark.parametrize(
    "port, band, delays",
    [("l6a_feedback", "low_gamma", (2.0, 3.0, 4.0)), ("l6b_feedback", "high_gamma", (9.0, 10.0, 11.0))],
)
def test_longer_loop_delay_lowers_its_peak(port, band, delays):
    """The peak of each loop moves down as its axonal delay grows, in the intact circuit; the peak
    must be there at every delay."""
    assert DEFAULT_DELAY_MS[("cortex", port)] in delays
    key = "l6a_delay_ms" if port == "l6a_feedback" else "l6b_delay_ms"
    freqs = []
    for delay in delays:
        r = measure("intact", duration_ms=DURATION_MS, seed=1, **{key: delay})["signals"][CARRIER[band]]
        assert r[f"{band}_prominence"] is not None, (delay, r)
        freqs.append(r[f"{band}_peak_hz"])
    assert np.all(np.diff(freqs) < 0), freqs


def _role(population: str) -> str:
    role = population.split(".")[1].removesuffix("_ho")
    return role if role in ("relay", "trn") else role[-1]


@pytest.mark.parametrize("loops", ["intact", "no_l6a", "no_l6b"])
def test_rates_are_plausible_and_far_from_the_refractory_limit(runs, loops):
    for seed in SEEDS:
        for name, rate in runs[(loops, seed)]["rates_hz"].items():
            if name.startswith("sensory") or name.endswith("background"):
                continue
            role = _role(name)
            assert rate < 0.1 * 1000.0 / T_REF_MS[role], (loops, seed, name, rate)
            lo, hi = RATE_RANGE_HZ[role]
            lo = 0.0 if name in UNDRIVEN[loops] else lo
            assert lo <= rate <= hi, (loops, seed, name, rate)

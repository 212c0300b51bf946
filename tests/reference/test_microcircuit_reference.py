"""The Potjans–Diesmann microcircuit against the published full-scale rates (slow: large networks).

Reference: the full-scale mean rates of NEST's PyNEST microcircuit model (``full_mean_rates``, from
van Albada et al. 2015, PLoS Comput Biol 11:e1004490), ``thalia.spiking.microcircuit.REFERENCE_RATES_HZ``:
L2/3e 0.903, L2/3i 2.965, L4e 4.414, L4i 5.876, L5e 7.569, L5i 8.633, L6e 1.105, L6i 7.829 Hz. The
issue's spread across simulators (L2/3e 0.3–0.9, L2/3i 2.8, L4e 4.4, L4i 5.7, L5e 7.6, L5i 8.6, L6e
1.1, L6i 7.7 Hz) lies within 15 % of these except for the low end of L2/3e, hence the tolerance:
15 % (0.3 Hz for L2/3e, whose published values range over 0.3–0.9 Hz).
"""

import pytest

from thalia.spiking import Simulator
from thalia.spiking import microcircuit as mc

pytestmark = pytest.mark.slow


def _statistics(scale: float, duration_steps: int) -> dict:
    net = mc.potjans_diesmann(scale, seed=1)
    sim = Simulator(net, dt_ms=0.1, seed=2)
    del net
    sim.run(2000)  # 200 ms: the transient of N(−58, 10) mV initial potentials
    return mc.spike_statistics(sim.run(duration_steps))


def _check(stats: dict) -> None:
    for pop, reference in mc.REFERENCE_RATES_HZ.items():
        tolerance = 0.3 if pop == "L23e" else 0.15 * reference
        assert stats["rates_hz"][pop] == pytest.approx(reference, abs=tolerance), pop
        # asynchronous irregular: CV of the ISIs 0.5–0.7 over 1 s windows (no clock-like firing) and no
        # population-wide synchrony (independent Poisson: 1; measured here up to 14 for L5e)
        assert 0.4 < stats["cv_isi"][pop] < 1.2, pop
        assert stats["synchrony"][pop] < 30.0, pop


def test_rates_at_scale_0_3():
    """23,154 neurons, 9.0e7 synapses: about a minute and 4.5 GB."""
    _check(_statistics(0.3, 10000))


def test_rates_at_full_scale():
    """77,169 neurons, 3.0e8 synapses: 12.7 GB peak, ~2.5 min to build and ~50 s per biological second
    on one core (measured by benchmarks/microcircuit.py; 0.2 s gave rates within 8 % of the reference)."""
    _check(_statistics(1.0, 10000))

"""Recordings: synaptic currents and the LFP proxy, population rates, rasters."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

from thalia.spiking import LIF, Network, OneToOne, simulate

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def single():
    """One neuron receives one AMPA spike (5 nS, arriving at step 101) and one GABA-A spike (10 nS, step 301)."""
    net = Network()
    net.add_population("pyr", 1, LIF())
    net.add_spike_source("exc", times_ms=[[10.0]])
    net.add_spike_source("inh", times_ms=[[30.0]])
    net.connect("exc", "pyr", OneToOne(), weight_nS=5.0, receptor="ampa", delay_ms=0.1)
    net.connect("inh", "pyr", OneToOne(), weight_nS=10.0, receptor="gaba_a", delay_ms=0.1)
    return simulate(net, 60.0, dt_ms=0.1, record_v={"pyr": [0]}, record_currents=["pyr"])


def test_recorded_currents_are_conductance_times_driving_force(single):
    v = single.voltage["pyr"][:, 0]
    v_start = np.concatenate([[-60.0], v[:-1]])  # V at the start of each step
    steps = np.arange(len(v))
    g_ampa = np.where(steps >= 101, 5.0 * np.exp(-(steps - 101) * 0.1 / 5.0), 0.0)
    g_gaba = np.where(steps >= 301, 10.0 * np.exp(-(steps - 301) * 0.1 / 10.0), 0.0)
    np.testing.assert_allclose(single.currents["pyr"][:, 0], g_ampa * (0.0 - v_start), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(single.currents["pyr"][:, 1], g_gaba * (-80.0 - v_start), rtol=1e-10, atol=1e-12)


def test_lfp_proxy_is_delayed_ampa_minus_scaled_gaba(single):
    ampa, gaba = single.currents["pyr"][:, 0], single.currents["pyr"][:, 1]
    lfp = single.lfp(delay_ms=6.0, alpha=1.65)
    k = 200  # 20 ms: AMPA from 14 ms
    assert lfp[k] == pytest.approx(ampa[k - 60] - 1.65 * gaba[k], rel=1e-12)
    with pytest.raises(ValueError, match="record_currents"):
        single.lfp(["other"])


def test_population_rate_and_raster():
    net = Network()
    net.add_spike_source("src", 100, rate_hz=50.0)
    result = simulate(net, 1000.0, dt_ms=0.1, seed=4)
    centres, rate = result.population_rate("src", bin_ms=10.0)
    assert len(centres) == 100 and centres[0] == pytest.approx(5.0)
    assert rate.mean() == pytest.approx(result.rate_hz("src"), rel=1e-12)
    assert result.rate_hz("src") == pytest.approx(50.0, rel=0.1)
    fig = result.plot_raster()
    assert len(fig.axes[0].lines) == 1
    assert math.isfinite(result.wall_s) and result.backend == "numba"  # auto: the compiled CPU loop

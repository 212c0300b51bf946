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


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_recorded_conductances_follow_the_kicks(backend):
    """record_vars after each step: g_ampa = 5 nS arriving at step 101, then e^{−dt/τ} per step;
    unused receptors, adaptation and h stay 0; state["V"] is result.voltage."""
    net = Network()
    net.add_population("pyr", 1, LIF(adapt_b_nS=0.0))
    net.add_spike_source("exc", times_ms=[[10.0]])
    net.connect("exc", "pyr", OneToOne(), weight_nS=5.0, receptor="ampa", delay_ms=0.1)
    names = ("V", "g_ampa", "g_gaba_a", "g_nmda", "g_gaba_b", "g_adapt", "h")
    result = simulate(net, 30.0, backend=backend, record_v={"pyr": [0]}, record_vars=names)
    steps = np.arange(300)
    expected = np.where(steps >= 101, 5.0 * np.exp(-(steps - 100) * 0.1 / 5.0), 0.0)
    np.testing.assert_allclose(result.state["g_ampa"]["pyr"][:, 0], expected, rtol=1e-12, atol=0)
    assert result.state["V"]["pyr"] is result.voltage["pyr"]
    for name in ("g_gaba_a", "g_nmda", "g_gaba_b", "g_adapt", "h"):
        assert (result.state[name]["pyr"] == 0.0).all()
    assert result.state["V"]["pyr"].shape == (300, 1)


def test_every_state_variable_is_recorded_alike_by_both_backends():
    from tests.unit.spiking.test_engines import _feature_network

    names = ("V", "g_ampa", "g_gaba_a", "g_nmda", "g_gaba_b", "g_adapt", "h")
    record = {"E": np.arange(0, 120, 7), "I": [0, 1], "TC": np.arange(20)}
    fast, ref = (
        simulate(_feature_network(), 300.0, seed=2, backend=b, record_v=record, record_vars=names)
        for b in ("numba", "torch")
    )
    for name in names:
        for population in record:
            np.testing.assert_allclose(fast.state[name][population], ref.state[name][population], rtol=0, atol=1e-9)
    assert ref.state["g_nmda"]["E"].max() > 0.1 and ref.state["g_gaba_b"]["I"].max() > 0.1
    assert ref.state["g_adapt"]["E"].max() > 1.0 and ref.state["g_gaba_a"]["TC"].max() > 1.0
    h = ref.state["h"]["TC"]
    assert h.max() > 0.5 and h.min() < 0.1  # de-inactivated by the inhibition, inactivated by the burst


def test_unknown_record_var_raises():
    net = Network()
    net.add_population("a", 2)
    with pytest.raises(ValueError, match="'record_vars'.*'g_ampaa'"):
        simulate(net, 1.0, record_v={"a": [0]}, record_vars=("V", "g_ampaa"))


def test_plot_rates_draws_the_population_rates():
    net = Network()
    net.add_spike_source("a", 50, rate_hz=20.0)
    net.add_spike_source("b", 50, rate_hz=80.0)
    result = simulate(net, 500.0, seed=1)
    fig = result.plot_rates(bin_ms=10.0)
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == ["a", "b"]
    for line, name in zip(lines, ("a", "b"), strict=True):
        centres, rate = result.population_rate(name, bin_ms=10.0)
        np.testing.assert_array_equal(line.get_xdata(), centres)
        np.testing.assert_array_equal(line.get_ydata(), rate)
    assert np.mean(lines[1].get_ydata()) == pytest.approx(80.0, rel=0.15)
    assert len(result.plot_rates(["b"], bin_ms=50.0).axes[0].lines) == 1
    with pytest.raises(ValueError, match="'bin_ms'"):
        result.plot_rates(bin_ms=0.0)

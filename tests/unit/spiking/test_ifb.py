"""The integrate-and-fire-or-burst neuron (Smith et al. 2000): rebound bursts after hyperpolarisation,
tonic spikes when depolarised, and the T-current gate's exact kinetics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from thalia.spiking import Network, OneToOne, simulate
from thalia.spiking.neurons import ifb


def test_rebound_burst_after_hyperpolarisation():
    """Resting at −55 mV (above V_h, h inactivated) the cell is silent; 200 ms of strong GABA-A input
    hyperpolarises it below V_h, h recovers, and the release triggers a burst of closely spaced
    spikes riding on the low-threshold Ca²⁺ spike."""
    net = Network()
    net.add_population("tc", 1, ifb(I_bias_pA=35.0, V_init_mV=-55.0))  # rest: −65 + 35/3.5 = −55 mV
    net.add_spike_source("inh", times_ms=[np.arange(100.0, 300.0, 1.0)])
    net.connect("inh", "tc", OneToOne(), weight_nS=4.0, receptor="gaba_a", delay_ms=0.1)
    result = simulate(net, 500.0, dt_ms=0.1, record_v={"tc": [0]})
    times, _ = result.spikes("tc")
    assert not (times < 300.0).any()  # silent at rest and while inhibited
    burst = times[(times > 300.0) & (times < 450.0)][:3]  # V climbs back through V_h (τ_m ≈ 57 ms)
    assert len(burst) == 3
    assert np.diff(burst).max() < 10.0  # intra-burst intervals of a few ms
    v = result.voltage["tc"][:, 0]
    assert v[int(290 / 0.1)] < -60.0  # hyperpolarised below V_h during the inhibition


def test_tonic_firing_when_depolarised_matches_the_lif_rate():
    """Depolarised (V above V_h) h inactivates within a few τ_h⁻ and the cell fires tonically at the
    rate of the same LIF without T-current: T = τ_m ln((V∞ − V_reset)/(V∞ − V_θ))."""
    neuron = ifb(I_bias_pA=200.0, V_init_mV=-50.0)
    net = Network()
    net.add_population("tc", 1, neuron)
    times, _ = simulate(net, 1000.0, dt_ms=0.05).spikes("tc")
    v_inf = neuron.E_leak_mV + neuron.I_bias_pA / neuron.g_leak_nS
    period = neuron.tau_m_ms * math.log((v_inf - neuron.V_reset_mV) / (v_inf - neuron.V_th_mV))
    isi = np.diff(times[times > 200.0])
    assert np.mean(isi) == pytest.approx(period, rel=0.01)
    assert np.std(isi) / np.mean(isi) < 0.01


def test_t_gate_relaxes_with_its_time_constants():
    """A cell clamped below V_h (strong leak to −80 mV, no T drive) has h → 1 − (1 − h₀)e^{−t/τ_h⁺}: after
    release from that state with h ≈ 1 the T-current fires the cell; with h₀ = 0 and only 20 ms below V_h
    (h ≈ 1 − e^{−0.2}) it does not."""

    def rebound(h0: float) -> int:
        net = Network()
        net.add_population("tc", 1, ifb(I_bias_pA=35.0, V_init_mV=-59.9, h_init=h0))
        return len(simulate(net, 200.0, dt_ms=0.1).spikes("tc")[0])

    assert rebound(1.0) >= 1  # de-inactivated gate: the Ca²⁺ spike fires the cell on its own
    assert rebound(0.0) == 0

"""Batches of independent network instances in one run."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.spiking import LIF, FixedInDegree, Network, simulate
from thalia.spiking.batch import merge, simulate_batch


def _network(bias_pA: float) -> Network:
    """A small deterministic E/I network (no noise, fixed initial potentials)."""
    neuron = LIF(I_bias_pA=bias_pA, V_init_mV=-58.0)
    net = Network()
    net.add_population("E", 80, neuron)
    net.add_population("I", 20, neuron.replace(V_init_mV=-55.0))
    net.connect("E", "I", FixedInDegree(10), weight_nS=3.0, receptor="ampa", delay_ms=1.0, rng=1)
    net.connect("I", "E", FixedInDegree(5), weight_nS=0.5, receptor="gaba_a", delay_ms=0.5, rng=2)
    net.connect("E", "E", FixedInDegree(10), weight_nS=1.0, receptor="ampa", delay_ms=2.0, rng=3)
    return net


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_batch_equals_separate_runs(backend):
    biases = [205.0, 230.0, 260.0]
    batch = simulate_batch([_network(b) for b in biases], 200.0, backend=backend, record_v={"E": [0, 5]})
    rates = []
    for bias, result in zip(biases, batch, strict=True):
        alone = simulate(_network(bias), 200.0, backend=backend, record_v={"E": [0, 5]})
        assert np.array_equal(result.spike_steps, alone.spike_steps)
        assert np.array_equal(result.spike_ids, alone.spike_ids)
        assert np.allclose(result.voltage["E"], alone.voltage["E"], rtol=0, atol=1e-12)
        assert result.populations == alone.populations
        rates.append(result.rate_hz("E"))
    assert rates[0] < rates[1] < rates[2]  # the sweep acts


def test_merge_prefixes_names_and_rejects_bad_input():
    merged = merge([_network(200.0), _network(210.0)])
    assert list(merged.populations) == ["0/E", "0/I", "1/E", "1/I"]
    assert merged.n_neurons == 200 and len(merged.projections) == 6
    assert merged.projections[3].pre == "1/E"
    with pytest.raises(ValueError, match="networks"):
        merge([])


def test_batch_splits_recorded_state_variables():
    networks = [_network(205.0), _network(260.0)]
    batch = simulate_batch(networks, 50.0, backend="numba", record_v={"I": [1]}, record_vars=("V", "g_ampa"))
    for bias, result in zip((205.0, 260.0), batch, strict=True):
        alone = simulate(_network(bias), 50.0, backend="numba", record_v={"I": [1]}, record_vars=("V", "g_ampa"))
        np.testing.assert_array_equal(result.state["g_ampa"]["I"], alone.state["g_ampa"]["I"])
        assert result.state["V"]["I"] is result.voltage["I"] and result.start_ms == 0.0
    assert batch[1].state["g_ampa"]["I"].max() > 1.0

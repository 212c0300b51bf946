"""The torch step loop on a GPU gives the CPU's spikes, and so does the CUDA-graph engine (compiled or
not, and when its capacities overflow); runs only where CUDA is present."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.spiking import LIF, FixedInDegree, Network, Simulator, _cuda_graph, simulate

from ..unit.spiking.test_engines import _feature_network
from ..unit.spiking.test_static_step import _drive_network

pytestmark = pytest.mark.gpu


def _network() -> Network:
    net = Network()
    net.add_population("E", 400, LIF(I_bias_pA=210.0, V_init_mV=-55.0, V_init_sd_mV=3.0))
    net.add_population("I", 100, LIF(I_bias_pA=205.0, V_init_mV=-55.0, V_init_sd_mV=3.0))
    for pre, w, r in (("E", 2.0, "ampa"), ("I", 8.0, "gaba_a")):
        for post in ("E", "I"):
            net.connect(pre, post, FixedInDegree(20), weight_nS=w, receptor=r, delay_ms=1.0, rng=7)
    return net


def _same_spikes(a, b) -> None:
    np.testing.assert_array_equal(a.spike_steps, b.spike_steps)
    np.testing.assert_array_equal(a.spike_ids, b.spike_ids)


def test_cuda_matches_cpu_spike_for_spike():
    cpu = simulate(_network(), 100.0, backend="torch", seed=3)
    gpu = simulate(_network(), 100.0, backend="torch", seed=3, device="cuda")
    _same_spikes(cpu, gpu)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("make", [_network, _feature_network, _drive_network])
def test_cuda_graph_matches_cpu_spike_for_spike(make, compiled, monkeypatch):
    monkeypatch.setattr(_cuda_graph, "COMPILE", compiled)
    record = {"record_v": {"E": np.arange(5)}, "record_currents": ["E"]}
    cpu = simulate(make(), 200.0, backend="torch", seed=3, **record)
    sim = Simulator(make(), seed=3, device="cuda", **record)
    sim._randomness.horizon = 2000
    gpu = sim.run(2000)
    assert sim.backend == "graph" and sim._engine.compile_step == compiled
    assert sim._engine.stats["graph_chunks"] >= 5 and sim._engine.stats["captures"] >= 1
    _same_spikes(cpu, gpu)
    np.testing.assert_allclose(gpu.voltage["E"], cpu.voltage["E"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(gpu.currents["E"], cpu.currents["E"], rtol=1e-9, atol=1e-6)
    for name in cpu.weights:
        np.testing.assert_allclose(gpu.weights[name], cpu.weights[name], rtol=1e-12, atol=1e-12)


def test_cuda_graph_overflow_reruns_and_float32_runs():
    ref = simulate(_network(), 200.0, backend="torch", seed=3, device="cuda")
    sim = Simulator(_network(), seed=3, device="cuda")
    sim._engine.spike_capacity, sim._engine.synapse_capacity = 1, 2
    sim._engine._resize()
    _same_spikes(ref, sim.run(2000))
    assert sim._engine.stats["overflows"] >= 2 and sim._engine.stats["captures"] >= 2
    import torch

    f32 = simulate(_network(), 200.0, seed=3, device="cuda", dtype=torch.float32)
    assert abs(f32.rate_hz() - ref.rate_hz()) < 0.1 * ref.rate_hz()

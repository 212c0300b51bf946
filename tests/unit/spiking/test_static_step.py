"""The static-shape step of ``backend="graph"`` (``thalia.spiking._cuda_graph``), run on the CPU without
capture: the same spikes, traces, currents and weights as the dynamic torch step, bit for bit, also when
the capacities overflow (chunks run again on the dynamic path) and across resumed runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thalia.spiking import LIF, FixedInDegree, Network, Simulator, _cuda_graph, simulate
from thalia.spiking._cuda_graph import GRAPH_STEPS
from thalia.spiking.engine import _pick_backend

from .test_engines import _feature_network, _small_network

RECORD = {"record_v": {"E": np.arange(10)}, "record_currents": ["E"], "record_vars": ("V", "g_nmda", "g_adapt")}


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.spike_steps, b.spike_steps)
    np.testing.assert_array_equal(a.spike_ids, b.spike_ids)
    for var in a.state:
        np.testing.assert_array_equal(a.state[var]["E"], b.state[var]["E"])
    np.testing.assert_array_equal(a.currents["E"], b.currents["E"])
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name])


def _drive_network() -> Network:
    """E/I with a Poisson drive (the Potjans–Diesmann external input) and no bias."""
    net = Network()
    net.add_population("E", 160, LIF(V_init_mV=-58.0, V_init_sd_mV=4.0))
    net.add_population("I", 40, LIF(V_init_mV=-58.0, V_init_sd_mV=4.0))
    net.add_poisson_drive("E", rate_hz=9000.0, weight=2.0)
    net.add_poisson_drive("I", rate_hz=7000.0, weight=2.0)
    net.connect("E", "E", FixedInDegree(20), weight_nS=1.0, receptor="ampa", delay_ms=1.5, rng=1)
    net.connect("E", "I", FixedInDegree(20), weight_nS=1.5, receptor="nmda", delay_ms=0.8, rng=2)
    net.connect("I", "E", FixedInDegree(10), weight_nS=6.0, receptor="gaba_a", delay_ms=0.5, rng=3)
    return net


@pytest.mark.parametrize("make", [_small_network, _feature_network, _drive_network])
def test_graph_step_matches_the_torch_step_bit_for_bit(make):
    """Noise, NMDA, adaptation, given and Poisson sources, T-currents, STDP/BCM, a Poisson drive."""
    ref = simulate(make(), 250.0, seed=3, backend="torch", **RECORD)
    sim = Simulator(make(), seed=3, backend="graph", **RECORD)
    sim._randomness.horizon = 2500  # simulate()'s draws
    out = sim.run(2500)
    assert len(ref.spike_ids) > 1000
    _same(ref, out)
    stats = sim._engine.stats
    assert stats["graph_chunks"] >= 10 and stats["graph_chunks"] * GRAPH_STEPS + stats["dynamic_steps"] == 2500


def test_overflow_runs_the_chunk_again_and_the_capacities_adapt():
    ref = simulate(_small_network(), 300.0, seed=3, backend="torch", **RECORD)
    sim = Simulator(_small_network(), seed=3, backend="graph", **RECORD)
    sim._randomness.horizon = 3000
    engine = sim._engine
    engine.spike_capacity, engine.synapse_capacity = 1, 2
    engine._resize()
    _same(ref, sim.run(3000))
    assert engine.stats["overflows"] >= 2  # the first chunks overflow, then the capacities grow
    assert engine.spike_capacity > 1 and engine.synapse_capacity > 2
    assert engine.stats["graph_chunks"] >= 20  # and the rest replays


def test_too_large_capacities_shrink():
    sim = Simulator(_small_network(), seed=3, backend="graph")
    engine = sim._engine
    engine.spike_capacity, engine.synapse_capacity = 1024, 2**16
    engine._resize()
    sim.run(1000)
    assert engine.spike_capacity < 1024 and engine.synapse_capacity < 2**16
    assert engine.stats["overflows"] == 0


def test_runs_of_any_length_and_resumed_state_give_one_long_run():
    ref = Simulator(_feature_network(), seed=5, backend="torch").run(2000)
    sim = Simulator(_feature_network(), seed=5, backend="graph")
    parts = [sim.run(n) for n in (37, 250, 613)]
    other = Simulator(_feature_network(), seed=5, backend="graph")
    other.load_state_dict(sim.state_dict())  # also across engines
    parts.append(other.run(1100))
    steps = np.concatenate([p.spike_steps + round(p.start_ms / 0.1) for p in parts])
    np.testing.assert_array_equal(steps, ref.spike_steps)
    np.testing.assert_array_equal(np.concatenate([p.spike_ids for p in parts]), ref.spike_ids)


def test_a_state_loaded_back_into_the_same_simulator_replays_the_run():
    """What the COBA benchmark does between its warm-up and its timed runs (the graph keeps its tensors)."""
    sim = Simulator(_feature_network(), seed=5, backend="graph")
    initial = sim.state_dict()
    first = sim.run(1200)
    sim.load_state_dict(initial)
    again = sim.run(1200)
    np.testing.assert_array_equal(first.spike_steps, again.spike_steps)
    np.testing.assert_array_equal(first.spike_ids, again.spike_ids)
    for name in first.weights:
        np.testing.assert_array_equal(first.weights[name], again.weights[name])


def test_forced_inputs_run_on_the_dynamic_path():
    net = _feature_network()
    rng = np.random.default_rng(1)
    inputs = {"poisson": rng.random((500, 40)) < 0.01}
    ref = Simulator(net, seed=2, backend="torch").run(500, inputs=inputs)
    sim = Simulator(net, seed=2, backend="graph")
    out = sim.run(500, inputs=inputs)
    np.testing.assert_array_equal(ref.spike_ids, out.spike_ids)
    assert sim._engine.stats == {"graph_chunks": 0, "dynamic_steps": 500, "overflows": 0, "captures": 0}


def test_auto_leaves_the_graph_engine_opt_in_until_it_has_run_on_a_gpu():
    assert _pick_backend("auto", torch.device("cuda"), torch.float32) == "torch"
    assert _pick_backend("auto", torch.device("cpu"), torch.float32) == "torch"
    assert _pick_backend("graph", torch.device("cuda"), torch.float32) == "graph"


@pytest.mark.parametrize("make", [_feature_network, _drive_network])
def test_the_captured_steps_read_nothing_on_the_host(make, monkeypatch):
    """A CUDA graph cannot hold a host read of a device value (``.item()``, indexing with a 0-d tensor):
    the body of a chunk, every feature included, traces as one graph (dynamo, fullgraph)."""
    monkeypatch.setattr(_cuda_graph, "GRAPH_STEPS", 2)
    sim = Simulator(make(), seed=3, backend="graph", **RECORD)
    sim._engine._bind()
    torch.compile(sim._engine._body, fullgraph=True, backend="eager")()
    torch._dynamo.reset()


@pytest.mark.slow
def test_the_compiled_step_gives_the_same_spikes(monkeypatch):
    """``torch.compile`` of the update and the propagation (Inductor's C++ code on the CPU, Triton on a
    GPU): the torch backend's spikes, V within 1e-12 mV (fused arithmetic may round differently)."""
    monkeypatch.setattr(_cuda_graph, "COMPILE", True)
    ref = simulate(_drive_network(), 200.0, seed=3, backend="torch", **RECORD)
    sim = Simulator(_drive_network(), seed=3, backend="graph", **RECORD)
    sim._randomness.horizon = 2000
    out = sim.run(2000)
    assert sim._engine.compile_step and sim._engine.stats["graph_chunks"] >= 15
    np.testing.assert_array_equal(ref.spike_steps, out.spike_steps)
    np.testing.assert_array_equal(ref.spike_ids, out.spike_ids)
    np.testing.assert_allclose(out.voltage["E"], ref.voltage["E"], rtol=0, atol=1e-12)

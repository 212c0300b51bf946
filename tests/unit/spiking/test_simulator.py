"""The resumable Simulator: split invariance, state_dict round trips, external inputs, float32, the
averaged integrator's backend agreement, and the per-call overhead."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from tests.unit.spiking.test_engines import _coba, _feature_network
from thalia.spiking import LIF, FixedInDegree, Network, OneToOne, Simulator, simulate

BACKENDS = ("numba", "torch")
RECORD = {"E": [0, 3], "TC": [1, 2]}


def _simulator(backend: str, **options) -> Simulator:
    """The feature network (noise, given and Poisson sources, T-current, NMDA, STDP and BCM)."""
    return Simulator(
        _feature_network(), seed=5, backend=backend, record_v=RECORD, record_currents=["E"],
        record_vars=("V", "g_ampa", "h"), **options,
    )  # fmt: skip


def _joined(results) -> dict[str, np.ndarray]:
    """Spikes (on the simulator's clock), recordings and currents of consecutive runs, concatenated."""
    dt = results[0].dt_ms
    return {
        "steps": np.concatenate([r.spike_steps + int(round(r.start_ms / dt)) for r in results]),
        "ids": np.concatenate([r.spike_ids for r in results]),
        "V": np.concatenate([r.voltage["E"] for r in results]),
        "h": np.concatenate([r.state["h"]["TC"] for r in results]),
        "I": np.concatenate([r.currents["E"] for r in results]),
    }


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("split", [(300, 700), (1, 998, 1, 1500, 500)])
def test_split_runs_give_the_spikes_of_one_run(backend, split):
    whole = _simulator(backend)
    one = whole.run(sum(split))
    parts = _simulator(backend)
    results = [parts.run(n) for n in split]
    assert parts.t == whole.t == sum(split)
    joined = _joined(results)
    assert len(one.spike_ids) > 1000
    np.testing.assert_array_equal(joined["steps"], one.spike_steps)
    np.testing.assert_array_equal(joined["ids"], one.spike_ids)
    for key, name in (("V", "E"), ("h", "TC")):
        recorded = one.voltage[name] if key == "V" else one.state["h"][name]
        np.testing.assert_array_equal(joined[key], recorded)
    np.testing.assert_array_equal(joined["I"], one.currents["E"])
    for name, weights in one.weights.items():
        np.testing.assert_array_equal(results[-1].weights[name], weights)


def test_a_result_covers_its_own_run():
    simulator = _simulator("numba")
    simulator.run(250)
    result = simulator.run(500)
    assert result.start_ms == pytest.approx(25.0) and result.duration_ms == pytest.approx(50.0)
    assert result.spike_steps.min() >= 0 and result.spike_steps.max() < 500
    assert result.voltage["E"].shape == (500, 2) and result.currents["E"].shape == (500, 2)
    assert simulator.t == 750 and simulator.t_ms == pytest.approx(75.0)
    assert len(simulator.run(0).spike_ids) == 0


def test_simulate_equals_a_simulator_run_of_whole_noise_chunks():
    """simulate draws a last, shorter chunk when its length is not a multiple of NOISE_CHUNK steps;
    for 2000 steps (two whole chunks) the two give the same spikes."""
    result = simulate(_feature_network(), 200.0, seed=5, record_v=RECORD, record_currents=["E"])
    run = _simulator("numba").run(2000)
    np.testing.assert_array_equal(result.spike_ids, run.spike_ids)
    np.testing.assert_array_equal(result.spike_steps, run.spike_steps)


@pytest.mark.parametrize("saved", BACKENDS)
@pytest.mark.parametrize("restored", BACKENDS)
def test_state_dict_round_trip_continues_spike_for_spike(saved, restored, tmp_path):
    original = _simulator(saved)
    original.run(1234)  # mid-chunk, with pending arrivals, plastic weights and traces
    state = original.state_dict()
    np.savez(tmp_path / "state.npz", **state)
    expected = original.run(1266)
    copy = _simulator(restored)
    copy.run(17)  # overwritten by the load
    copy.load_state_dict(dict(np.load(tmp_path / "state.npz")))
    assert copy.t == 1234
    result = copy.run(1266)
    assert result.start_ms == pytest.approx(123.4)
    np.testing.assert_array_equal(result.spike_steps, expected.spike_steps)
    np.testing.assert_array_equal(result.spike_ids, expected.spike_ids)
    np.testing.assert_allclose(result.voltage["E"], expected.voltage["E"], rtol=0, atol=1e-9)
    for name, weights in expected.weights.items():
        np.testing.assert_allclose(copy.weights()[name], weights, rtol=1e-12, atol=0)


def test_state_dict_holds_plain_arrays_and_the_generator_state():
    simulator = _simulator("numba")
    simulator.run(10)
    state = simulator.state_dict()
    assert state["t"] == 10 and state["rng_state"].dtype == np.uint8
    assert all(isinstance(v, int | float | np.ndarray) for v in state.values())
    assert state["g"].shape == (4, 230) and state["buffer"].shape[1:] == (4, 230)
    assert state["pool_noise"].shape == (990, 230)  # the chunk's noise for steps 10 .. 999
    assert state["plasticity_theta"].shape == state["plasticity_x"].shape
    assert state["weights"].shape == (sum(len(w) for w in simulator.weights().values()),)


def test_load_state_dict_rejects_bad_states():
    simulator = _simulator("numba")
    state = simulator.state_dict()
    with pytest.raises(ValueError, match=r"missing \['V'\]"):
        simulator.load_state_dict({k: v for k, v in state.items() if k != "V"})
    with pytest.raises(ValueError, match=r"state\['V'\].*\(230,\).*\(3,\)"):
        simulator.load_state_dict({**state, "V": np.zeros(3)})
    with pytest.raises(ValueError, match=r"state\['dt_ms'\]"):
        simulator.load_state_dict({**state, "dt_ms": 0.2})


# --- external inputs -------------------------------------------------------------------------------


def _relay(given_ms=None) -> Network:
    """A 3-neuron spike source (given times, or none: inputs only) driving 3 cells one to one."""
    net = Network()
    if given_ms is None:
        net.add_spike_source("retina", 3)
    else:
        net.add_spike_source("retina", times_ms=given_ms)
    net.add_population("cells", 3, LIF())
    net.connect("retina", "cells", OneToOne(), weight_nS=40.0, delay_ms=0.5)
    return net


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_act_as_given_spike_times(backend):
    times = [[1.0, 7.3], [2.5], []]
    given = Simulator(_relay(times), backend=backend, record_v={"cells": [0, 1, 2]}).run(100)
    spikes = np.zeros((100, 3), dtype=bool)
    for i, ts in enumerate(times):
        spikes[np.round(np.asarray(ts) / 0.1).astype(int), i] = True
    simulator = Simulator(_relay(), backend=backend, record_v={"cells": [0, 1, 2]})
    first = simulator.run(40, inputs={"retina": spikes[:40]})
    second = simulator.run(60, inputs={"retina": torch.as_tensor(spikes[40:])})
    np.testing.assert_array_equal(np.concatenate([first.spike_steps, second.spike_steps + 40]), given.spike_steps)
    np.testing.assert_array_equal(np.concatenate([first.spike_ids, second.spike_ids]), given.spike_ids)
    np.testing.assert_array_equal(np.concatenate([first.voltage["cells"], second.voltage["cells"]]),
                                  given.voltage["cells"])  # fmt: skip
    assert given.voltage["cells"][:, 0].max() > -55.0  # the inputs do drive the cells
    assert len(Simulator(_relay(), backend=backend).run(100).spike_ids) == 0  # no inputs, no spikes


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_add_to_poisson_and_given_spikes_the_same_on_both_backends(backend):
    """Inputs of shape (n,) repeat every step; they join the feature network's own source spikes."""
    simulators = [_simulator(b) for b in BACKENDS]
    every = np.zeros(20, dtype=bool)
    every[::5] = True
    results = [[s.run(n, inputs={"given": every}) for n in (150, 850)] for s in simulators]
    fast, ref = (_joined(r) for r in results)
    np.testing.assert_array_equal(fast["ids"], ref["ids"])
    np.testing.assert_array_equal(fast["steps"], ref["steps"])
    plain = _simulator(backend)
    alone = _joined([plain.run(n) for n in (150, 850)])
    given = np.arange(170, 190)  # global indices of the source "given"
    own = np.isin(alone["ids"], given[~every])  # given times of the neurons without inputs
    assert own.sum() == 400  # 25 given times each in the first 100 ms
    assert np.isin(ref["ids"], given).sum() == 4 * 1000 + own.sum()  # 4 inputs spike at every step


def test_bad_inputs_raise_naming_the_population():
    simulator = Simulator(_relay(), backend="numba")
    with pytest.raises(ValueError, match="'cells' is not a spike source.*'retina'"):
        simulator.run(5, inputs={"cells": np.zeros((5, 3), bool)})
    with pytest.raises(ValueError, match="'lgn' is unknown"):
        simulator.run(5, inputs={"lgn": np.zeros((5, 3), bool)})
    with pytest.raises(ValueError, match=r"inputs\['retina'\].*\(5, 3\) or \(3,\), got \(5, 4\)"):
        simulator.run(5, inputs={"retina": np.zeros((5, 4), bool)})
    with pytest.raises(ValueError, match=r"inputs\['retina'\].*got dtype float64"):
        simulator.run(5, inputs={"retina": np.zeros((5, 3))})
    with pytest.raises(ValueError, match="'n_steps'"):
        simulator.run(-1)
    with pytest.raises(ValueError, match="'n' of source 'x'"):
        Network().add_spike_source("x")


# --- dtype, recording, integrator ------------------------------------------------------------------


def test_float32_needs_the_torch_backend():
    with pytest.raises(ValueError, match="'dtype'.*float64 only"):
        Simulator(_relay(), backend="numba", dtype=torch.float32)
    assert Simulator(_relay(), dtype=torch.float32).backend == "torch"
    with pytest.raises(ValueError, match="'dtype'"):
        Simulator(_relay(), dtype=torch.float16)


def test_float32_coba_rates_match_float64():
    """COBA (2000 neurons, 300 ms, torch): float32 rates within 2 % of float64 (measured: the same
    spikes, V within ~2e-5 mV)."""
    runs = {
        d: simulate(_coba(2000), 300.0, seed=1, backend="torch", dtype=d, record_v={"E": np.arange(50)})
        for d in (torch.float64, torch.float32)
    }
    double, single = runs[torch.float64], runs[torch.float32]
    assert single.voltage["E"].dtype == np.float32
    assert double.rate_hz() > 10.0
    for population in ("E", "I"):
        assert single.rate_hz(population) == pytest.approx(double.rate_hz(population), rel=0.02)
    first_10ms = slice(0, 100)  # before any chaotic divergence: rounding only
    assert np.abs(single.voltage["E"][first_10ms] - double.voltage["E"][first_10ms]).max() < 1e-3


def test_averaged_integrator_backends_agree_spike_for_spike():
    results = [_simulator(b, integrator="averaged").run(1500) for b in BACKENDS]
    fast, ref = results
    exponential = _simulator("numba").run(1500)
    assert len(ref.spike_ids) > 1000
    np.testing.assert_array_equal(fast.spike_steps, ref.spike_steps)
    np.testing.assert_array_equal(fast.spike_ids, ref.spike_ids)
    np.testing.assert_allclose(fast.voltage["E"], ref.voltage["E"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.currents["E"], ref.currents["E"], rtol=0, atol=1e-9)
    assert np.abs(fast.voltage["E"] - exponential.voltage["E"]).max() > 1e-3  # the option acts


def test_run_overhead_is_small():
    """A Brain calls run(10) thousands of times at dt = 1 ms: run(1) of 1600 neurons (numba, no noise)
    costs ~15 µs (measured); the bound leaves a wide margin for slow machines."""
    net = Network()
    net.add_population("E", 1200, LIF(I_bias_pA=190.0, V_init_sd_mV=3.0))
    net.add_population("I", 300, LIF(I_bias_pA=190.0, V_init_sd_mV=3.0))
    net.add_spike_source("ext", 100)
    for pre, w, receptor in (("E", 1.0, "ampa"), ("I", 4.0, "gaba_a"), ("ext", 2.0, "ampa")):
        net.connect(pre, "E", FixedInDegree(50), weight_nS=w, receptor=receptor, delay_ms=1.0, rng=1)
    simulator = Simulator(net, dt_ms=1.0, backend="numba", record_v={"E": [0]})
    simulator.run(2)
    inputs = {"ext": np.arange(100) < 10}
    times = []
    for _ in range(200):
        start = time.perf_counter()
        simulator.run(1, inputs=inputs)
        times.append(time.perf_counter() - start)
    assert np.median(times) < 1e-3

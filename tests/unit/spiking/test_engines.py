"""The numba and torch backends of the spiking engine: agreement (also with spike sources, T-currents,
plasticity and current recordings), exact delays, seeds, bad input, COBA rate."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.spiking import LIF, FixedInDegree, Network, OneToOne, Probability, _numba_engine, simulate
from thalia.spiking.engine import _Randomness, _torch_run
from thalia.spiking.network import compile_network
from thalia.spiking.neurons import ifb
from thalia.spiking.plasticity import BCM, STDP

BACKENDS = ("numba", "torch")


def _small_network() -> Network:
    """200 neurons (E/I) with noise, NMDA and adaptation in E, five receptors-and-delay combinations."""
    net = Network()
    exc = LIF(noise_mV=3.0, V_init_mV=-55.0, V_init_sd_mV=4.0, I_bias_pA=150.0, adapt_b_nS=2.0)
    inh = LIF(noise_mV=2.0, V_init_sd_mV=3.0, I_bias_pA=120.0, t_ref_ms=2.0)
    net.add_population("E", 160, exc)
    net.add_population("I", 40, inh)
    net.connect("E", "E", Probability(0.1), weight_nS=2.0, receptor="ampa", delay_ms=1.5, rng=1)
    net.connect("E", "E", Probability(0.1), weight_nS=0.5, receptor="nmda", delay_ms=2.0, rng=2)
    net.connect("E", "I", FixedInDegree(10), weight_nS=3.0, receptor="ampa", delay_ms=0.5, rng=3)
    net.connect("I", "E", FixedInDegree(8), weight_nS=8.0, receptor="gaba_a", delay_ms=0.8, rng=4)
    net.connect("I", "I", FixedInDegree(5), weight_nS=5.0, receptor="gaba_b", delay_ms=0.1, rng=5)
    return net


def test_numba_matches_torch_spike_for_spike(monkeypatch):
    monkeypatch.setattr(_numba_engine, "_MIN_SPIKE_CAPACITY", 0)  # spike arrays grow several times
    record = {"E": np.arange(160), "I": np.arange(40)}
    runs = [simulate(_small_network(), 300.0, seed=3, backend=b, record_v=record) for b in BACKENDS]
    fast, ref = runs
    assert len(ref.spike_ids) > 3000  # both populations fire (E ~ 100 Hz, I ~ 25 Hz)
    assert ref.rate_hz("I") > 5.0
    np.testing.assert_array_equal(fast.spike_steps, ref.spike_steps)
    np.testing.assert_array_equal(fast.spike_ids, ref.spike_ids)
    for name in record:
        np.testing.assert_allclose(fast.voltage[name], ref.voltage[name], rtol=0, atol=1e-9)
    assert fast.backend == "numba" and ref.backend == "torch"


def _feature_network() -> Network:
    """E/I as above plus 20 IFB thalamic cells that 20 given spike trains inhibit for 150 ms (a rebound
    burst follows), 40 Poisson sources, STDP (Poisson -> E, TC -> E) and BCM (E -> E) projections."""
    net = Network()
    exc = LIF(noise_mV=3.0, V_init_mV=-55.0, V_init_sd_mV=4.0, I_bias_pA=150.0, adapt_b_nS=2.0)
    net.add_population("E", 120, exc)
    net.add_population("I", 30, LIF(noise_mV=2.0, V_init_sd_mV=3.0, I_bias_pA=120.0, t_ref_ms=2.0))
    net.add_population("TC", 20, ifb(I_bias_pA=35.0, V_init_mV=-55.0, V_init_sd_mV=2.0, noise_mV=0.5))
    rng = np.random.default_rng(0)
    trains = [np.round(np.arange(50.0, 200.0, 2.0) + rng.uniform(0.0, 2.0, 75), 1) for _ in range(20)]
    net.add_spike_source("given", times_ms=trains)
    net.add_spike_source("poisson", 40, rate_hz=40.0)
    stdp = STDP(A_plus_nS=0.05, A_minus_nS=0.06, w_max_nS=4.0)
    bcm = BCM(eta=1e-6, target_hz=10.0, tau_theta_ms=100.0, w_max_nS=3.0)
    net.connect("given", "TC", FixedInDegree(5), weight_nS=2.0, receptor="gaba_a", delay_ms=0.5, rng=1)
    net.connect("poisson", "E", FixedInDegree(5), weight_nS=2.0, delay_ms=1.0, rng=2, plasticity=stdp, name="stdp")
    net.connect("TC", "E", FixedInDegree(4), weight_nS=3.0, delay_ms=0.3, rng=3, plasticity=STDP(), name="tc")
    net.connect("E", "E", Probability(0.1), weight_nS=1.0, delay_ms=1.5, rng=4, plasticity=bcm, name="bcm")
    net.connect("E", "E", Probability(0.1), weight_nS=0.5, receptor="nmda", delay_ms=2.0, rng=5)
    net.connect("E", "I", FixedInDegree(10), weight_nS=3.0, delay_ms=0.5, rng=6)
    net.connect("I", "E", FixedInDegree(8), weight_nS=3.0, receptor="gaba_a", delay_ms=0.8, rng=7)
    net.connect("I", "I", FixedInDegree(4), weight_nS=1.0, receptor="gaba_b", delay_ms=0.1, rng=8)
    return net


def test_numba_matches_torch_with_sources_t_current_plasticity_and_currents(monkeypatch):
    monkeypatch.setattr(_numba_engine, "_MIN_SPIKE_CAPACITY", 0)  # growth resumes mid-chunk (sources too)
    record = {"E": np.arange(120), "TC": np.arange(20)}
    options = {"seed": 5, "record_v": record, "record_currents": ["E", "TC"]}
    fast, ref = (simulate(_feature_network(), 500.0, backend=b, **options) for b in BACKENDS)
    # every feature acts: Poisson (40 Hz) and given spikes, rebound bursts after the inhibition, plasticity
    assert ref.rate_hz("poisson") == pytest.approx(40.0, rel=0.1) and len(ref.spikes("given")[0]) > 1400
    tc_times = ref.spikes("TC")[0]
    assert len(tc_times) > 20 and tc_times.min() > 200.0
    assert ref.rate_hz("E") > 10.0
    np.testing.assert_array_equal(fast.spike_steps, ref.spike_steps)
    np.testing.assert_array_equal(fast.spike_ids, ref.spike_ids)
    for name in record:
        np.testing.assert_allclose(fast.voltage[name], ref.voltage[name], rtol=0, atol=1e-9)
    initial = {p.name: p.weight_nS for p in _feature_network().projections}
    for name in ("stdp", "tc", "bcm"):
        assert np.abs(ref.weights[name] - initial[name]).max() > 1e-3  # the weights did change
    for name, weights in ref.weights.items():
        np.testing.assert_allclose(fast.weights[name], weights, rtol=1e-12, atol=0)
    for name, currents in ref.currents.items():
        np.testing.assert_allclose(fast.currents[name], currents, rtol=0, atol=1e-12 * np.abs(currents).max())
    assert np.abs(ref.currents["TC"][:, 1]).max() > 100.0  # GABA-A current (pA) of the inhibition


def test_numba_run_returns_the_tuple_of_torch_run():
    compiled = compile_network(_feature_network(), 0.1)
    record, currents = {"TC": np.arange(5)}, {"E": slice(0, 120), "TC": slice(150, 170)}
    outputs = [
        run(compiled, 300, _Randomness(compiled, 2), record, "cpu", currents=currents)
        for run in (_numba_engine.run, _torch_run)
    ]
    fast, ref = outputs
    assert len(fast) == len(ref) == 5
    for x, y in zip(fast, ref, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype
    np.testing.assert_array_equal(fast[1], ref[1])
    np.testing.assert_allclose(fast[3], ref[3], rtol=1e-12, atol=0)
    np.testing.assert_allclose(fast[4], ref[4], rtol=0, atol=1e-12 * np.abs(ref[4]).max())


def test_auto_picks_numba_on_the_cpu_for_every_feature():
    result = simulate(_feature_network(), 5.0, record_currents=["E"])
    assert result.backend == "numba"


def _delay_network(delays_ms) -> Network:
    net = Network()
    net.add_population("src", 1, LIF(I_bias_pA=400.0))  # V∞ = −20 mV: first spike near 5.7 ms
    for delay in delays_ms:
        name = f"d{delay}"
        net.add_population(name, 1, LIF())  # at rest: V stays exactly E_L = −60 mV until input arrives
        net.connect("src", name, OneToOne(), weight_nS=5.0, receptor="ampa", delay_ms=delay)
    return net


def _first_spike_step(dt_ms=0.1, v_inf=-20.0, v0=-60.0, tau_ms=20.0, v_th=-50.0) -> int:
    """Step t of the first spike under exponential Euler: V after step t is V∞ + (V0 − V∞)·a^(t+1)."""
    a = np.exp(-dt_ms / tau_ms)
    v = v_inf + (v0 - v_inf) * a ** (np.arange(1000) + 1)
    return int(np.argmax(v >= v_th))


@pytest.mark.parametrize("backend", BACKENDS)
def test_spikes_arrive_exactly_delay_over_dt_steps_later(backend):
    delays = (0.1, 0.5, 2.0)
    result = simulate(_delay_network(delays), 10.0, backend=backend, record_v={f"d{d}": [0] for d in delays})
    steps, _ = result.spikes("src")
    spike_step = int(round(steps[0] / 0.1))
    assert spike_step == _first_spike_step() == 57
    assert len(steps) == 1
    for delay in delays:
        v = result.voltage[f"d{delay}"]
        assert (v[: spike_step + int(round(delay / 0.1))] == -60.0).all()
        assert int(np.argmax(v > -60.0)) - spike_step == int(round(delay / 0.1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_result_other_seed_other_result(backend):
    def spikes(seed):
        result = simulate(_small_network(), 50.0, seed=seed, backend=backend, record_v={"E": [0, 1]})
        return result.spike_steps, result.spike_ids, result.voltage["E"]

    first, again, other = spikes(7), spikes(7), spikes(8)
    for x, y in zip(first, again, strict=True):
        np.testing.assert_array_equal(x, y)
    assert len(first[0]) > 100
    assert not np.array_equal(first[2], other[2])
    assert len(first[1]) != len(other[1]) or not np.array_equal(first[1], other[1])


def test_delay_that_is_not_a_multiple_of_dt_raises():
    net = Network()
    net.add_population("a", 2)
    net.connect("a", "a", OneToOne(), weight_nS=1.0, delay_ms=0.25)
    with pytest.raises(ValueError, match="delay_ms"):
        simulate(net, 1.0, dt_ms=0.1)


def test_unknown_receptor_and_population_raise():
    net = Network()
    net.add_population("a", 2)
    with pytest.raises(ValueError, match="'receptor'.*'ampaa'"):
        net.connect("a", "a", OneToOne(), weight_nS=1.0, receptor="ampaa")
    with pytest.raises(ValueError, match="'post'.*'b'"):
        net.connect("a", "b", OneToOne(), weight_nS=1.0)
    with pytest.raises(ValueError, match="'pre'.*'c'"):
        net.connect("c", "a", OneToOne(), weight_nS=1.0)


def test_numba_backend_on_a_gpu_device_raises():
    net = Network()
    net.add_population("a", 2)
    with pytest.raises(ValueError, match="'device'"):
        simulate(net, 1.0, backend="numba", device="cuda")


def test_kernel_exp_is_within_one_ulp():
    x = np.concatenate([np.linspace(-745.0, 709.0, 20001), np.random.default_rng(0).uniform(-2.0, 0.0, 20000)])
    out = np.empty_like(x)
    _numba_engine.exp_kernel(x, out)
    exact = np.exp(x.astype(np.longdouble)).astype(np.float64)  # x87 extended precision, then rounded
    normal = exact > np.finfo(float).tiny
    assert np.abs(out[normal].view(np.int64) - exact[normal].view(np.int64)).max() <= 1
    edges = np.array([710.0, -1001.0, 0.0])
    _numba_engine.exp_kernel(edges, out[:3])
    assert out[0] == np.inf and out[1] == 0.0 and out[2] == 1.0


def _coba(n: int = 4000) -> Network:
    """Vogels & Abbott (2005) COBA as in Brette et al. (2007) benchmark 1 (p = 0.02)."""
    neuron = LIF(
        C_pF=200.0, g_leak_nS=10.0, E_leak_mV=-60.0, V_th_mV=-50.0, V_reset_mV=-60.0, t_ref_ms=5.0,
        I_bias_pA=200.0, tau_ms={"ampa": 5.0, "gaba_a": 10.0}, E_rev_mV={"ampa": 0.0, "gaba_a": -80.0},
        V_init_mV=-55.0, V_init_sd_mV=5.0,
    )  # fmt: skip
    net = Network()
    net.add_population("E", int(0.8 * n), neuron)
    net.add_population("I", n - int(0.8 * n), neuron)
    for k, (pre, receptor, weight) in enumerate((("E", "ampa", 6.0), ("I", "gaba_a", 67.0))):
        for j, post in enumerate(("E", "I")):
            net.connect(pre, post, Probability(0.02), weight_nS=weight, receptor=receptor, delay_ms=0.1, rng=2 * k + j)
    return net


def test_coba_rate_is_near_brian2s():
    result = simulate(_coba(), 1000.0, seed=42, backend="numba")
    # Brian2 (forward Euler, same parameters and rule): about 22 Hz
    assert 15.0 <= result.rate_hz() <= 30.0
    assert abs(result.rate_hz("E") - result.rate_hz("I")) < 0.2 * result.rate_hz()

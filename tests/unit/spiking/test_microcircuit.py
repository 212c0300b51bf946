"""The Potjans–Diesmann microcircuit preset and the engine features it needs: current-based synapses
(exact against the closed-form PSP), per-synapse delays, the Poisson drive, and the ``pd_cortex`` region."""

import numpy as np
import pytest
import torch
from scipy.stats import truncnorm

from thalia.spiking import Explicit, FixedTotalNumber, Network, OneToOne, Simulator, TruncatedNormal, simulate
from thalia.spiking import microcircuit as mc
from thalia.spiking.builder import BrainBuilder, GlobalConfig
from thalia.spiking.network import compile_network, exact_current_factor
from thalia.spiking.neurons import LIF

BACKENDS = ("numba", "torch")
TAU_M, TAU_S, C = 10.0, 0.5, 250.0


def closed_form_psp(t_ms, w_pA):
    """PSP (mV) of a current jump w decaying with τ_s into a LIF membrane (τ_m, C), t after the jump."""
    t = np.asarray(t_ms)
    shape = np.exp(-t / TAU_M) - np.exp(-t / TAU_S)
    return np.where(t > 0, w_pA / C * TAU_M * TAU_S / (TAU_M - TAU_S) * shape, 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("receptor, sign", [("ampa", 1.0), ("gaba_a", -1.0)])
def test_current_synapse_psp_is_the_closed_form(backend, receptor, sign):
    config = mc.MicrocircuitConfig()
    cell = mc.neuron(config, "L4e").replace(V_init_mV=-65.0, V_init_sd_mV=0.0)
    net = Network()
    net.add_spike_source("s", 1, times_ms=[[1.0]])
    net.add_population("a", 1, cell)
    net.connect("s", "a", Explicit((0,), (0,)), weight_nS=config.weight_pA, receptor=receptor, delay_ms=0.1)
    result = simulate(net, 30.0, dt_ms=0.1, record_v={"a": [0]}, backend=backend)
    v = result.voltage["a"][:, 0] + 65.0
    t_after_jump = (np.arange(len(v)) - 10) * 0.1  # spike at step 10, current jumps at the start of step 11
    np.testing.assert_allclose(v, sign * closed_form_psp(t_after_jump, config.weight_pA), rtol=0, atol=1e-11)
    # the published weight: 87.8 pA gives a PSP peaking at 0.15 mV
    assert config.weight_pA == pytest.approx(87.8, abs=0.01)
    assert abs(v).max() == pytest.approx(0.15, abs=2e-4)  # the peak falls between grid points


def test_exact_current_factor_limits():
    # τ_syn → τ_m (removable singularity) and τ_m → ∞ (the step mean of e^{-s/τ}, the averaged integrator's κ)
    near = exact_current_factor(0.1, 10.0, np.array([10.0, 10.0 + 1e-7]))
    assert near[0] == pytest.approx(near[1], rel=1e-8)
    assert exact_current_factor(0.1, 1e12, np.array([0.5]))[0] == pytest.approx(5.0 * -np.expm1(-0.2), rel=1e-9)


def _mixed_network(seed=0):
    """Conductance-based and current-based populations in one network, with drives, delays per synapse."""
    net = Network()
    cuba = LIF(C_pF=250.0, g_leak_nS=25.0, E_leak_mV=-65.0, V_reset_mV=-65.0, t_ref_ms=2.0, synapse="current",
               tau_ms={"ampa": 0.5, "gaba_a": 0.5}, V_init_mV=-58.0, V_init_sd_mV=5.0)  # fmt: skip
    net.add_population("cuba", 200, cuba)
    net.add_population("coba", 100, LIF(V_init_mV=-55.0, V_init_sd_mV=3.0, noise_mV=1.0))
    net.add_poisson_drive("cuba", 16000.0, 87.8)
    net.add_poisson_drive("coba", 2000.0, 1.0)
    delays = TruncatedNormal(1.5, 0.75, low=0.1)
    net.connect("cuba", "cuba", FixedTotalNumber(4000), weight_nS=87.8, delay_ms=delays, rng=seed)
    net.connect("cuba", "coba", FixedTotalNumber(2000), weight_nS=0.5, delay_ms=delays, rng=seed + 1)
    net.connect("coba", "cuba", FixedTotalNumber(2000), weight_nS=350.0, receptor="gaba_a", delay_ms=0.8, rng=seed + 2)
    return net


def test_mixed_synapse_modes_same_spikes_on_both_backends():
    record = {"cuba": [0, 1], "coba": [0]}
    results = [
        simulate(_mixed_network(), 200.0, dt_ms=0.1, seed=3, backend=b, record_v=record, record_currents=["cuba"])
        for b in BACKENDS
    ]
    a, b = results
    assert len(a.spike_ids) > 100  # the network is active
    np.testing.assert_array_equal(a.spike_steps, b.spike_steps)
    np.testing.assert_array_equal(a.spike_ids, b.spike_ids)
    for name in record:
        np.testing.assert_allclose(a.voltage[name], b.voltage[name], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a.currents["cuba"], b.currents["cuba"], rtol=1e-12, atol=1e-9)
    assert (a.currents["cuba"][:, 1] <= 0).all() and (a.currents["cuba"][:, 0] > 0).any()  # inhibition outward


@pytest.mark.parametrize("backend", BACKENDS)
def test_poisson_drive_counts_are_poisson_and_split_invariant(backend):
    # a current-based neuron that cannot fire, τ_syn 1 ms: the recorded current gives each step's count
    cell = LIF(C_pF=250.0, g_leak_nS=25.0, V_th_mV=1e6, synapse="current", tau_ms={"ampa": 1.0})
    net = Network()
    net.add_population("a", 400, cell)
    lam, w = 2.32, 87.8  # L6e of the model: 2900 inputs of 8 Hz, per step of 0.1 ms
    net.add_poisson_drive("a", lam / 1e-4, w)
    sim = Simulator(net, dt_ms=0.1, seed=5, backend=backend, record_v={"a": np.arange(400)}, record_vars=("g_ampa",))
    current = np.concatenate([sim.run(120).state["g_ampa"]["a"], sim.run(80).state["g_ampa"]["a"]])
    decay = np.exp(-0.1 / 1.0)
    previous = np.vstack([np.zeros((1, 400)), current[:-1]])
    counts = (current / decay - previous) / w
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)  # whole numbers of inputs
    counts = np.round(counts)
    n = counts.size
    assert counts.mean() == pytest.approx(lam, abs=4 * np.sqrt(lam / n))
    assert counts.var() == pytest.approx(lam, rel=0.03)  # Poisson: variance = mean (SE of the variance ~1.2 %)
    whole = simulate(net, 20.0, dt_ms=0.1, seed=5, backend=backend, record_v={"a": [0]}, record_vars=("g_ampa",))
    np.testing.assert_array_equal(whole.state["g_ampa"]["a"][:, 0], current[:200, 0])


def test_drive_key_is_part_of_the_state():
    net = _mixed_network()
    first = Simulator(net, dt_ms=0.1, seed=1)
    first.run(300)
    state = first.state_dict()
    expected = first.run(300)
    resumed = Simulator(net, dt_ms=0.1, seed=99)  # another seed: the key comes from the state
    resumed.load_state_dict(state)
    again = resumed.run(300)
    np.testing.assert_array_equal(expected.spike_ids, again.spike_ids)
    np.testing.assert_array_equal(expected.spike_steps, again.spike_steps)


def test_per_synapse_delays_are_rounded_to_steps():
    net = Network()
    net.add_population("a", 50)
    delays = np.array([0.04, 0.06, 0.149, 0.151, 2.0] * 10)
    net.connect("a", "a", Explicit(tuple(range(50)), tuple(np.roll(np.arange(50), 1))), weight_nS=1.0, delay_ms=delays)
    compiled = compile_network(net, 0.1)
    steps = compiled.syn_delay[np.argsort(compiled.syn_original)]
    np.testing.assert_array_equal(steps, np.tile([1, 1, 1, 2, 20], 10))  # nearest step, at least one
    assert compiled.n_slots == 21 and compiled.syn_delay.dtype == np.int16


def test_compiled_order_is_the_stable_sort_by_source():
    net = _mixed_network()
    compiled = compile_network(net, 0.1)
    offsets = {name: pop.offset for name, pop in net.populations.items()}
    pre = np.concatenate([p.pre_idx + offsets[p.pre] for p in net.projections])
    post = np.concatenate([p.post_idx + offsets[p.post] for p in net.projections])
    order = np.argsort(pre, kind="stable")
    np.testing.assert_array_equal(compiled.syn_original, order)
    np.testing.assert_array_equal(compiled.syn_post, post[order])
    np.testing.assert_array_equal(np.diff(compiled.indptr), np.bincount(pre, minlength=net.n_neurons))
    assert compiled.synapse_bytes / len(order) == 4 + 8 + 2 + 1 + 4  # post, weight, delay, receptor, order


def test_full_scale_numbers_match_the_published_model():
    full = mc.full_synapse_numbers(mc.CONNECTION_PROBABILITIES, mc.FULL_SIZES, mc.FULL_SIZES)
    assert sum(mc.FULL_SIZES) == 77169
    assert full.sum() == pytest.approx(2.99e8, rel=0.01)  # "~0.3 billion synapses"
    k = mc.in_degrees()
    assert k[0, 0] == pytest.approx(-np.log1p(-0.1009) * 20683, rel=1e-3)  # K ≈ −ln(1 − C)·N_pre
    assert mc.thalamic_synapse_numbers(mc.MicrocircuitConfig()).sum() == pytest.approx(
        sum(-np.log1p(-p) * 902 * n for p, n in zip(mc.THALAMIC_PROBABILITIES, mc.FULL_SIZES, strict=True)), rel=1e-3
    )


def test_network_in_degrees_weights_and_delays_match_the_table():
    scale = 0.02
    net = mc.potjans_diesmann(scale, seed=4, thalamus=True)
    config = mc.MicrocircuitConfig(scale=scale)
    sizes = config.sizes
    expected = mc.in_degrees()
    by_name = {p.name: p for p in net.projections}
    for i, post in enumerate(mc.POPULATIONS):
        for j, pre in enumerate(mc.POPULATIONS):
            proj = by_name.get(f"{pre}->{post}")
            if expected[i, j] == 0:
                assert proj is None
                continue
            assert abs(len(proj.pre_idx) - expected[i, j] * mc.FULL_SIZES[i] * scale) <= 0.5  # N_syn·scale, rounded
            # the mean in-degree is K up to the rounding of the population size
            assert len(proj.pre_idx) / sizes[post] == pytest.approx(expected[i, j], rel=0.6 / sizes[post])
            inhibitory = pre.endswith("i")
            w = config.weight_pA * (4.0 if inhibitory else 2.0 if (pre, post) == ("L4e", "L23e") else 1.0)
            assert proj.receptor == ("gaba_a" if inhibitory else "ampa")
            assert proj.weight_nS.mean() == pytest.approx(w, rel=0.01)
            assert proj.weight_nS.std() == pytest.approx(0.1 * w, rel=0.1)
            assert proj.delay_ms.min() >= 0.1
    exc = np.concatenate([by_name[f"L4e->{p}"].delay_ms for p in mc.POPULATIONS if f"L4e->{p}" in by_name])
    inh = np.concatenate([by_name[f"L4i->{p}"].delay_ms for p in mc.POPULATIONS if f"L4i->{p}" in by_name])
    for values, mean in ((exc, 1.5), (inh, 0.75)):  # N(mean, mean/2) redrawn below 0.1 ms: a truncated normal
        truncated = truncnorm((0.1 - mean) / (mean / 2), np.inf, loc=mean, scale=mean / 2)
        assert values.mean() == pytest.approx(truncated.mean(), abs=4 * truncated.std() / np.sqrt(len(values)))
        assert values.std() == pytest.approx(truncated.std(), rel=0.03)
    assert [p.post for p in net.projections if p.pre == "TC"] == ["L4e", "L4i", "L6e", "L6i"]
    drives = {name: pop.drive.rate_hz for name, pop in net.populations.items() if pop.drive is not None}
    assert drives == {p: 8.0 * k for p, k in zip(mc.POPULATIONS, mc.EXTERNAL_IN_DEGREES, strict=True)}


def test_dc_options():
    dc = mc.dc_input_pA(mc.MicrocircuitConfig(external="dc"))
    w = mc.MicrocircuitConfig().weight_pA
    np.testing.assert_allclose(dc, np.array(mc.EXTERNAL_IN_DEGREES) * 8.0 * w * 0.5e-3)  # K_ext·ν·w·τ_s
    assert not mc.dc_input_pA(mc.MicrocircuitConfig()).any()  # Poisson drive, k_scale 1: no DC
    half = mc.MicrocircuitConfig(k_scale=0.5)
    assert half.weight_pA == pytest.approx(w * np.sqrt(2))
    # van Albada et al. (2015): the lost mean input (1 − √k)·Σ K·w·ν·τ_s, here recomputed term by term
    k, weights = mc.in_degrees(), mc.weights_pA(mc.MicrocircuitConfig())
    rates = np.array([mc.REFERENCE_RATES_HZ[p] for p in mc.POPULATIONS])
    recurrent = (k * weights * np.tile([1, -1], 4) * rates).sum(1) * 0.5e-3
    external = np.array(mc.EXTERNAL_IN_DEGREES) * w * 8.0 * 0.5e-3
    np.testing.assert_allclose(mc.dc_input_pA(half), (1 - np.sqrt(0.5)) * (recurrent + external))


def _statistics_at_scale_0_1(k_scale: float) -> dict:
    net = mc.potjans_diesmann(0.1, seed=1, k_scale=k_scale)
    sim = Simulator(net, dt_ms=0.1, seed=2)
    del net
    sim.run(2000)  # 200 ms: the transient of the initial potentials
    return mc.spike_statistics(sim.run(10000))  # 1 s


def test_rates_at_scale_0_1():
    """Scale 0.1 with in-degrees halved (k_scale 0.5: 7,717 neurons, 1.5e7 synapses; ~10 s): all eight
    rates within 20 % of NEST's full-scale rates (REFERENCE_RATES_HZ). 20 % is the deviation that
    Romaro et al. (2021, Neural Comput 33:1993, Table A.1) report for their 10 % NetPyNE network against
    its full-scale rates (up to 17 %; 23 % at 30 %). Measured over 1 s, seeds 1 and 2: at most −18 %
    (L2/3e 0.74 Hz, seed 1; inside the published 0.3–0.9 Hz) and +14 % (L5e). Neither extreme keeps the
    rates at this scale (docs/microcircuit.md): with k_scale 1, a neuron gets ~2200 L2/3e synapses
    from 2068 cells, and multapses and shared inputs raise the input variance (L2/3e 1.65, L5e 9.4 Hz);
    with k_scale 0.1, mean and variance are kept, but the larger PSPs (0.47 mV, 1.9 mV inhibitory)
    lower the rates (L2/3e 0.44, L2/3i 2.1, L6e 0.85 Hz)."""
    stats = _statistics_at_scale_0_1(0.5)
    for pop, reference in mc.REFERENCE_RATES_HZ.items():
        assert stats["rates_hz"][pop] == pytest.approx(reference, rel=0.2), pop
    # irregular firing (clock-like: CV ≪ 0.4). Over a 1 s window the CV is 0.55–0.66: long intervals are
    # cut off. Over 10 s it is 0.75–0.85, against 0.80–0.94 over 60 s in NetPyNE (Romaro et al. 2021, Table A.3)
    assert all(0.4 < cv < 1.2 for cv in stats["cv_isi"].values())


def test_synchrony_at_scale_0_1_matches_netpyne():
    """Scale 0.1 with k_scale 0.1 (van Albada et al. 2015 scaling: 7,717 neurons, 3.0e6 synapses; ~3 s)
    is the scaling of the 10 % network of Romaro et al. (2021, Neural Comput 33:1993). Their synchrony
    (variance / mean of the population spike count in 3 ms bins, Potjans & Diesmann 2014) for it is
    2.6, 2.1, 3.1, 1.9, 4.5, 1.1, 1.7, 1.0 (Table A.5, Poisson input, 60 s). Measured over 1 s, seeds 1
    and 2, the ratios to these values lie between 0.89 and 1.38, hence the factor 1.5. (Rates at this
    scaling: test_rates_at_scale_0_1.)"""
    published = dict(zip(mc.POPULATIONS, (2.6, 2.1, 3.1, 1.9, 4.5, 1.1, 1.7, 1.0), strict=True))
    synchrony = _statistics_at_scale_0_1(0.1)["synchrony"]
    for pop, value in published.items():
        assert value / 1.5 < synchrony[pop] < value * 1.5, (pop, synchrony[pop])


def test_validation_errors():
    with pytest.raises(ValueError, match="'scale'"):
        mc.MicrocircuitConfig(scale=0.0)
    with pytest.raises(ValueError, match="'external'"):
        mc.potjans_diesmann(0.01, external="ac")
    with pytest.raises(ValueError, match="'synapse'"):
        LIF(synapse="voltage")
    net = Network()
    net.add_population("a", 2)
    net.add_spike_source("s", 2)
    with pytest.raises(ValueError, match="'population'.*spike source"):
        net.add_poisson_drive("s", 10.0, 1.0)
    with pytest.raises(ValueError, match="'rate_hz'"):
        net.add_poisson_drive("a", -1.0, 1.0)
    with pytest.raises(ValueError, match="'receptor'"):
        net.add_poisson_drive("a", 1.0, 1.0, receptor="glu")
    net.add_poisson_drive("a", 2e6, 1.0)
    with pytest.raises(ValueError, match="'rate_hz' of the drive of 'a'.*smaller dt"):
        compile_network(net, 0.1)
    with pytest.raises(ValueError, match="'delay_ms'.*expected \\(2,\\)"):
        net.connect("a", "a", OneToOne(), weight_nS=1.0, delay_ms=np.ones(3))
    with pytest.raises(ValueError, match="'delay_ms'.*> 0"):
        net.connect("a", "a", OneToOne(), weight_nS=1.0, delay_ms=np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="TruncatedNormal"):
        TruncatedNormal(1.0, 1.0, low=2.0, high=1.0)
    with pytest.raises(ValueError, match="'n_output' of component 'pd'"):
        BrainBuilder().add_component("pd", "pd_cortex", n_output=30000).build()


def test_pd_cortex_in_a_thalamocortical_circuit():
    builder = BrainBuilder(GlobalConfig(dt_ms=0.1, seed=2))
    builder.add_component("sensory", "sensory_pathway", n_output=64)
    builder.add_component("thalamus", "thalamus", n_input=64, n_output=128)
    builder.add_component("cortex", "pd_cortex", n_output=200)
    builder.connect("sensory", "thalamus")
    builder.connect("thalamus", "cortex")
    builder.connect("cortex", "thalamus", source_port="l6")
    builder.connect("cortex", "cortex", source_port="l5", target_port="attention")
    brain = builder.build()
    projections = {p.name: p for p in brain.network.projections}
    fed = {p.post: len(p.pre_idx) // brain.network.populations[p.post].n
           for p in projections.values() if p.name.endswith(":feedforward")}  # fmt: skip
    assert fed == {"cortex.l4_e": 93, "cortex.l4_i": 58, "cortex.l6_e": 47, "cortex.l6_i": 18}  # PD thalamic K
    l6a = projections["cortex.l6_e->thalamus.trn:l6a_feedback"]
    l6b = projections["cortex.l6_e->thalamus.relay_ho:l6b_feedback"]
    assert (l6a.delay_ms, l6b.delay_ms) == (3.0, 10.0)
    assert projections["cortex.l5_e->cortex.l6_e:attention"].pre == "cortex.l5_e"
    cortex = brain.components["cortex"]
    assert cortex.sizes["l23_e"] == 200 and cortex.sizes["l5_i"] == round(1065 * 200 / 20683)
    assert brain.network.populations["cortex.l4_e"].neuron.synapse == "current"
    assert brain.network.populations["thalamus.relay"].neuron.synapse == "conductance"
    out = brain.forward(torch.full((64,), 40.0), n_timesteps=500)
    assert out["spike_counts"]["cortex.l4_e"] > 0 and out["spike_counts"]["thalamus.relay"] > 0
    assert cortex.state.l6_spikes.shape == (cortex.sizes["l6_e"],)

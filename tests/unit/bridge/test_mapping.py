"""The circuit ↔ TCM parameter map: population correspondence, receptor time constants, delays."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.bridge import POPULATION_MAP, Circuit, bridge_model, circuit_parameters, circuit_priors
from thalia.mass import tcm_constants as K
from thalia.spiking.gamma import build
from thalia.spiking.regions import DEFAULT_DELAY_MS, CortexConfig, ThalamusConfig, cells


@pytest.fixture(scope="module")
def brain():
    return Circuit().build(seed=0)


def test_every_tcm_population_maps_and_every_circuit_neuron_population_is_mapped_once(brain):
    assert tuple(POPULATION_MAP) == K.POPULATIONS
    mapped = [name for pop in circuit_parameters(brain).populations.values() for name in pop]
    assert len(mapped) == len(set(mapped))
    sources = {name for name, pop in brain.network.populations.items() if pop.source is not None}
    assert set(mapped) == set(brain.network.populations) - sources


def test_thalamo_cortical_delay_is_the_circuits(brain):
    # every thalamus -> cortex projection has the pathway's default delay, whatever the weights
    assert circuit_parameters(brain).thalamo_cortical_delay_ms == pytest.approx(
        DEFAULT_DELAY_MS[("thalamus", "cortex")]
    )


def test_cortico_thalamic_delay_is_the_conductance_weighted_mean_of_the_two_loops(brain):
    equal = build("intact", l6a_delay_ms=5.0, l6b_delay_ms=5.0)
    assert circuit_parameters(equal).cortico_thalamic_delay_ms == pytest.approx(5.0, rel=1e-12)
    d_l6a, d_l6b = DEFAULT_DELAY_MS[("cortex", "l6a_feedback")], DEFAULT_DELAY_MS[("cortex", "l6b_feedback")]
    mixed = circuit_parameters(brain).cortico_thalamic_delay_ms
    assert d_l6a < mixed < d_l6b
    # more L6b conductance pulls the mean towards the L6b delay
    heavier = Circuit(thalamus=ThalamusConfig(l6b_weight_nS=4 * ThalamusConfig().l6b_weight_nS)).build(seed=0)
    assert mixed < circuit_parameters(heavier).cortico_thalamic_delay_ms < d_l6b


def test_receptor_time_constants_lie_between_the_cells_and_follow_the_weights():
    base = circuit_parameters(Circuit().build(seed=0)).tau_ms
    assert set(base) == {"AMPA", "GABA-A"}  # the default circuit has no NMDA and no GABA-B synapses
    gaba = [cells.pyramidal().tau_ms["gaba_a"], cells.interneuron().tau_ms["gaba_a"], cells.relay().tau_ms["gaba_a"]]
    assert min(gaba) < base["GABA-A"] < max(gaba)
    # more conductance onto interneurons (the fastest GABA-A decay) pulls the mean towards it
    heavy = Circuit(cortex=CortexConfig(i_to_i_weight_nS=30.0))
    shifted = circuit_parameters(heavy.build(seed=0)).tau_ms["GABA-A"]
    assert cells.interneuron().tau_ms["gaba_a"] < shifted < base["GABA-A"]


def test_circuit_priors_set_time_constants_and_delays_and_nothing_else(brain):
    params = circuit_parameters(brain)
    space, default = circuit_priors(brain), bridge_model().space
    t = space["T"].prior_mean
    assert t[0, 0] == pytest.approx(np.log(params.tau_ms["AMPA"] / K.TAU_MS[0]))
    assert t[0, 1] == pytest.approx(np.log(params.tau_ms["GABA-A"] / K.TAU_MS[1]))
    np.testing.assert_array_equal(t[0, 2:], default["T"].prior_mean[0, 2:])
    assert float(space["CT"].prior_mean) == pytest.approx(np.log(params.cortico_thalamic_delay_ms / 8.0))
    assert float(space["TC"].prior_mean) == pytest.approx(np.log(params.thalamo_cortical_delay_ms / 3.0))
    changed = {"T", "CT", "TC"}
    for spec, ref in zip(space.specs, default.specs, strict=True):
        np.testing.assert_array_equal(spec.prior_var, ref.prior_var)
        if spec.name not in changed:
            np.testing.assert_array_equal(spec.prior_mean, ref.prior_mean)
    rows = params.table()
    assert [row["TCM parameter"] for row in rows] == ["T[0,0]", "T[0,1]", "CT", "TC"]


def test_a_brain_without_a_thalamus_is_refused():
    from thalia.spiking.builder import BrainBuilder, GlobalConfig

    builder = BrainBuilder(GlobalConfig(dt_ms=0.1))
    builder.add_component("cortex", "cortex", n_output=16)
    with pytest.raises(ValueError, match="exactly one thalamus"):
        circuit_parameters(builder.build())

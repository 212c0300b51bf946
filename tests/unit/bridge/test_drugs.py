"""Drug presets: one definition, applied to the TCM's parameters and to the circuit's configs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from thalia.bridge import PRESETS, Circuit, Drug, benzodiazepine, bridge_model, cholinergic, ketamine, preset
from thalia.bridge.drugs import NMDA_SHARE
from thalia.mass import TCM
from thalia.mass import tcm_constants as K
from thalia.mass.tcm_flow import coupling
from thalia.spiking.regions import CortexConfig, ThalamusConfig


@pytest.fixture(scope="module")
def params():
    return bridge_model().space.prior_mean()


def _changed(before, after):
    return {name for name in before.space.names if not torch.equal(before[name], after[name])}


def test_dose_raises_every_factor_to_its_power():
    drug = Drug("x", gaba_a=1.5, cortical_drive=0.8, dose=2.0)
    assert drug.factor("gaba_a") == pytest.approx(2.25)
    assert drug.factor("cortical_drive") == pytest.approx(0.64)
    assert drug.factor("nmda_on_inhibitory") == 1.0
    assert drug.at_dose(0.5).factor("gaba_a") == pytest.approx(math.sqrt(1.5))


def test_dose_zero_changes_nothing_at_either_scale(params):
    for make in PRESETS.values():
        drug = make(0.0)
        assert _changed(params, drug.apply_to_tcm(params)) == set()
        assert drug.apply_to_circuit() == Circuit()


def test_gaba_a_potentiation_scales_exactly_the_gaba_a_coupling_of_the_flow(params):
    drug = benzodiazepine()
    treated = drug.apply_to_tcm(params)
    assert _changed(params, treated) == {"global"}
    cfg = bridge_model().cfg
    w0, w1 = coupling(params.tensors(), cfg).W, coupling(treated.tensors(), cfg).W
    torch.testing.assert_close(w1[1], 1.5 * w0[1], rtol=1e-14, atol=0)  # GABA-A
    for k in (0, 2, 3, 4):  # AMPA, NMDA, GABA-B, M untouched
        torch.testing.assert_close(w1[k], w0[k], rtol=0, atol=0)


def test_ketamine_blocks_nmda_onto_inhibitory_populations_only(params):
    treated = ketamine().apply_to_tcm(params)
    assert _changed(params, treated) == {"Hn"}
    delta = (treated["Hn"] - params["Hn"])[:, :, 0].numpy()
    inhibitory = [K.POPULATIONS.index(p) for p in ("SI", "DI", "RT")]
    np.testing.assert_allclose(delta[inhibitory], math.log(0.5))
    np.testing.assert_array_equal(np.delete(delta, inhibitory, axis=0), 0.0)


def test_cholinergic_gain_raises_the_drive_of_the_cortical_populations(params):
    treated = cholinergic().apply_to_tcm(params)
    assert _changed(params, treated) == {"E"}
    delta = (treated["E"] - params["E"]).numpy()
    np.testing.assert_allclose(delta[:6], math.log(1.2))
    np.testing.assert_array_equal(delta[6:], 0.0)


def test_gaba_a_decay_maps_onto_the_tcm_time_constant(params):
    treated = Drug("slow", gaba_a_decay=2.0).apply_to_tcm(params)
    rates = [coupling(p.tensors(), bridge_model().cfg).rate[1, 0] for p in (params, treated)]
    assert float(rates[0] / rates[1]) == pytest.approx(2.0)  # K = 1000 / (τ exp(T)): τ doubled


def test_circuit_configs_change_as_the_table_says():
    t0, c0 = ThalamusConfig(), CortexConfig()
    gaba = benzodiazepine().apply_to_circuit()
    assert gaba.cortex == dataclasses.replace(c0, i_to_e_weight_nS=1.5 * c0.i_to_e_weight_nS,
                                              i_to_i_weight_nS=1.5 * c0.i_to_i_weight_nS)  # fmt: skip
    assert gaba.thalamus == dataclasses.replace(t0, trn_to_relay_weight_nS=1.5 * t0.trn_to_relay_weight_nS,
                                                trn_to_trn_weight_nS=1.5 * t0.trn_to_trn_weight_nS,
                                                trn_to_ho_weight_nS=1.5 * t0.trn_to_ho_weight_nS,
                                                trn_fo_to_ho_weight_nS=1.5 * t0.trn_fo_to_ho_weight_nS)  # fmt: skip
    keep = 1.0 - NMDA_SHARE * 0.5
    ket = ketamine().apply_to_circuit()
    assert ket.cortex == dataclasses.replace(c0, e_to_i_weight_nS=keep * c0.e_to_i_weight_nS)
    assert ket.thalamus == dataclasses.replace(t0, relay_to_trn_weight_nS=keep * t0.relay_to_trn_weight_nS,
                                               l6a_weight_nS=keep * t0.l6a_weight_nS)  # fmt: skip
    ach = cholinergic().apply_to_circuit()
    assert ach.cortex == dataclasses.replace(c0, background_rate_hz=1.2 * c0.background_rate_hz)
    assert ach.thalamus == t0
    assert ach.overrides() == {"thalamus": {}, "cortex": {"background_rate_hz": 1.2 * c0.background_rate_hz}}


def test_gaba_a_decay_prolongs_every_gaba_a_synapse_of_the_built_circuit():
    def taus(circuit):
        net = circuit.build(seed=0).network
        gaba_a = [p for p in net.projections if p.receptor == "gaba_a"]
        return {p.name: net.populations[p.post].neuron.tau_ms["gaba_a"] for p in gaba_a}

    before, after = taus(Circuit()), taus(Drug("slow", gaba_a_decay=1.5).apply_to_circuit())
    # 5 layers x (I->E, I->I), TRN->relay, TRN->TRN, and the higher-order sector: trn_ho->relay_ho, trn_ho->trn_ho
    assert len(before) == 14 and set(after) == set(before)
    for name, tau in before.items():
        assert after[name] == pytest.approx(1.5 * tau, rel=1e-12), name


def test_ketamine_halves_the_nmda_conductance_where_the_circuit_has_nmda():
    def nmda(circuit):
        net = circuit.build(seed=0).network
        by_name = {p.name: p for p in net.projections}
        groups = [p for p in net.projections if p.receptor == "nmda"]
        for p in groups:  # NMDA at exactly the synapses of the AMPA projection
            ampa = by_name[p.name.replace(":nmda", ":ampa")]
            np.testing.assert_array_equal(p.pre_idx, ampa.pre_idx)
            np.testing.assert_array_equal(p.post_idx, ampa.post_idx)
        return sum(float(np.sum(p.weight_nS)) for p in groups), len(groups)

    c0, t0 = CortexConfig(), ThalamusConfig()
    circuit = Circuit(dataclasses.replace(t0, relay_to_trn_nmda_weight_nS=0.2),
                      dataclasses.replace(c0, e_to_i_nmda_weight_nS=0.1))  # fmt: skip
    treated = ketamine().apply_to_circuit(circuit)
    assert treated.cortex == dataclasses.replace(circuit.cortex, e_to_i_nmda_weight_nS=0.05)
    stand_in = (1.0 - NMDA_SHARE * 0.5) * t0.l6a_weight_nS  # L6a -> TRN has no NMDA field
    assert treated.thalamus == dataclasses.replace(circuit.thalamus, relay_to_trn_nmda_weight_nS=0.1,
                                                   l6a_weight_nS=stand_in)  # fmt: skip
    (total, groups), (blocked, _) = nmda(circuit), nmda(treated)
    assert groups == 6 and blocked == pytest.approx(0.5 * total, rel=1e-12)  # 5 layers' E->I, relay->TRN
    assert nmda(Circuit()) == (0.0, 0)


def test_gaba_a_potentiation_scales_the_built_circuits_gaba_a_conductance():
    def total(circuit):
        net = circuit.build(seed=0).network
        return sum(float(np.sum(p.weight_nS)) for p in net.projections if p.receptor == "gaba_a")

    assert total(benzodiazepine().apply_to_circuit()) == pytest.approx(1.5 * total(Circuit()), rel=1e-12)


def test_presets_state_what_the_literature_reports():
    for name in PRESETS:
        drug = preset(name)
        assert drug.name == name and drug.expected
        for expectation in drug.expected:
            assert expectation.sign in (-1, 1) and expectation.reference


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Drug("x", gaba_a=0.0), "'gaba_a' of drug 'x'"),
        (lambda: Drug("x", nmda_on_inhibitory=float("nan")), "'nmda_on_inhibitory'"),
        (lambda: Drug("x", dose=-1.0), "'dose' of drug 'x'"),
        (lambda: preset("ketamin"), "allowed 'ketamine', 'benzodiazepine', 'propofol', 'cholinergic'"),
        (lambda: ketamine().apply_to_tcm(TCM().default_parameters()), "'global' receptor scales"),
        (lambda: Circuit(thalamus=CortexConfig()), "expected a ThalamusConfig"),
    ],
)
def test_bad_input_names_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()

"""BrainBuilder: every connection delivered, every config field effective, bad input named."""

import dataclasses

import numpy as np
import pytest
import torch

from thalia.core.dynamic_brain import BrainBuilder, GlobalConfig
from thalia.spiking.regions import CortexConfig, SensoryConfig, ThalamusConfig

DT = 0.5


def small_builder(component_config=None, *, connections=None):
    """sensory 32 → thalamus 32 → cortex 64 with L6 feedback, and a cue → cortex attention input."""
    cfg = component_config or {}
    b = BrainBuilder(GlobalConfig(dt_ms=DT, seed=3))
    b.add_component("sensory", "sensory_pathway", n_output=32, **cfg.get("sensory", {}))
    b.add_component("cue", "sensory_pathway", n_output=16)
    b.add_component("thalamus", "thalamus", n_input=32, n_output=32, **cfg.get("thalamus", {}))
    b.add_component("cortex", "cortex", n_output=64, **cfg.get("cortex", {}))
    default = [
        ("sensory", "thalamus", {}),
        ("thalamus", "cortex", {}),
        ("cortex", "thalamus", {"source_port": "l6"}),
        ("cue", "cortex", {"target_port": "attention"}),
    ]
    for src, tgt, kw in default if connections is None else connections:
        b.connect(src, tgt, **kw)
    return b


def spikes_of(brain, inputs=None, duration_ms=300.0):
    result = brain.run(duration_ms, inputs)
    return result.spike_steps, result.spike_ids


def test_seed_connection_keys_and_ports_exist():
    brain = small_builder().build()
    assert set(brain.connections) == {
        ("sensory", "thalamus"),
        ("thalamus", "cortex"),
        ("cortex", "thalamus"),
        ("cue", "cortex"),
    }
    feedback = brain.connections[("cortex", "thalamus")]
    assert feedback.target_ports == {("thalamus", "l6a_feedback"), ("thalamus", "l6b_feedback")}
    # L6a lands on TRN and (directly) on relay, L6b on the higher-order relay cells, with the default
    # delays (3 and 10 ms); the higher-order relay cells drive L6b through the cortex's higher_order port
    by_name = {p.name: p for p in brain.network.projections}
    l6a = by_name["cortex.l6a_e->thalamus.trn:l6a_feedback"]
    l6a_relay = by_name["cortex.l6a_e->thalamus.relay:l6a_feedback"]
    l6b = by_name["cortex.l6b_e->thalamus.relay_ho:l6b_feedback"]
    assert (l6a.delay_ms, l6a_relay.delay_ms, l6b.delay_ms) == (3.0, 3.0, 10.0)
    assert len(l6a_relay.pre_idx) == 32 * 16
    assert len(l6a.pre_idx) == 16 * 16 and len(l6b.pre_idx) == 16 * 16  # in-degree capped at the L6 size (16)
    assert brain.connections[("thalamus", "cortex")].target_ports == {
        ("cortex", "feedforward"), ("cortex", "higher_order"),
    }  # fmt: skip
    assert "thalamus.relay_ho->cortex.l6b_e:higher_order" in by_name
    assert not any(name.startswith("thalamus.relay->cortex.l6b") for name in by_name)


def test_without_a_higher_order_nucleus_l6b_feeds_the_relay_cells():
    brain = small_builder({"thalamus": {"ho_ratio": 0.0}}).build()
    names = {p.name for p in brain.network.projections}
    assert "cortex.l6b_e->thalamus.relay:l6b_feedback" in names
    assert not any("relay_ho" in name or "trn_ho" in name for name in names)


@pytest.mark.parametrize(
    "connection, target, change",
    [
        (("sensory", "thalamus", {}), "thalamus.relay", "up"),
        (("thalamus", "cortex", {}), "cortex.l4_e", "up"),
        (("cortex", "thalamus", {"source_port": "l6a"}), "thalamus.trn", "up"),
        (("cortex", "thalamus", {"source_port": "l6b"}), "thalamus.relay_ho", "up"),
        (("cue", "cortex", {"target_port": "attention"}), "cortex.l6a_e", "up"),
    ],
)
def test_every_connection_is_delivered(connection, target, change):
    """Removing one connection changes the spike count of the population it targets (the original
    silently dropped projections: here each one measurably drives its target)."""
    others = [c for c in [("sensory", "thalamus", {}), ("thalamus", "cortex", {})] if c[:2] != connection[:2]]
    with_it = small_builder(connections=[*others, connection]).build().run(300.0)
    without = small_builder(connections=others).build().run(300.0)
    a, b = with_it.rate_hz(target), without.rate_hz(target)
    assert a > 1.2 * b + 0.5, (a, b)


def _changed(value, field=""):
    if field.endswith("_delay_ms"):
        return value + 1.0
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value - 5  # fewer synapses: always an effect (more may exceed the pool)
    return 20.0 if value == 0 else value * 1.6


FIELDS = [("sensory", f.name) for f in dataclasses.fields(SensoryConfig)]
FIELDS += [("thalamus", f.name) for f in dataclasses.fields(ThalamusConfig)]
FIELDS += [("cortex", f.name) for f in dataclasses.fields(CortexConfig)]
CONFIGS = {"sensory": SensoryConfig(), "thalamus": ThalamusConfig(), "cortex": CortexConfig()}


@pytest.mark.parametrize("component, field", FIELDS)
def test_every_config_field_has_an_effect(component, field):
    base = {"sensory": {"centre_surround": True}} if component == "sensory" and field != "centre_surround" else {}
    value = _changed(getattr(CONFIGS[component], field), field)
    changed = {k: dict(v) for k, v in base.items()}
    changed.setdefault(component, {})[field] = value
    if field in ("l6a_sigma", "l6b_sigma"):  # the width picks which L6 cells feed each thalamic cell
        port = field.replace("_sigma", "_feedback")
        pre = [{p.name: p.pre_idx for p in small_builder(cfg).build().network.projections} for cfg in (base, changed)]
        name = next(n for n in pre[0] if n.endswith(port))
        degree = {field.replace("sigma", "in_degree"): 4}

        def feedback_pre(v):
            projections = small_builder({"thalamus": {**degree, field: v}}).build().network.projections
            return {p.name: p.pre_idx for p in projections}

        pre = [feedback_pre(v) for v in (getattr(CONFIGS[component], field), value)]
        assert not np.array_equal(pre[0][name], pre[1][name])
        return
    x = torch.zeros(32)
    x[10:14] = 200.0  # a bar of light (Hz): its edges pass through the centre–surround filter
    a = spikes_of(small_builder(base).build(), {"sensory": x})
    b = spikes_of(small_builder(changed).build(), {"sensory": x})
    same = len(a[0]) == len(b[0]) and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not same, f"{component}.{field} = {value!r} changed nothing"


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda b: b.add_component("x", "hippocampus", n_output=4), "component_type"),
        (lambda b: b.add_component("x", "cortex", n_output=-3), "n_output"),
        (lambda b: b.add_component("x", "cortex", n_output=8, l4_ratio=-1.0), "l4_ratio"),
        (lambda b: b.add_component("x", "cortex", n_output=8, l7_ratio=1.0), "unknown field"),
        (lambda b: b.connect("thalamus", "cortex", source_port="l6"), "source_port"),
        (lambda b: b.connect("cortex", "thalamus", target_port="feedback"), "target_port"),
        (lambda b: b.connect("cortex", "thalamus", source_port="l6", axonal_delay_ms=-2.0), "axonal_delay_ms"),
        (lambda b: b.connect("cortex", "thalamus", source_port="l6", axonal_delay_ms=2.25), "multiple of dt"),
        (lambda b: b.connect("cortex", "nowhere"), "unknown component"),
        (lambda b: b.connect("thalamus", "sensory"), "takes no inputs"),
        (lambda b: b.connect("thalamus", "cortex", pathway_type="wireless"), "pathway_type"),
    ],
)
def test_bad_configurations_name_the_component_and_field(call, message):
    b = BrainBuilder(GlobalConfig(dt_ms=0.5))
    b.add_component("sensory", "sensory_pathway", n_output=8)
    b.add_component("thalamus", "thalamus", n_input=8, n_output=8)
    b.add_component("cortex", "cortex", n_output=16)
    with pytest.raises(ValueError, match=message):
        call(b)


def test_region_delay_not_a_multiple_of_dt_names_component_and_field():
    b = BrainBuilder(GlobalConfig(dt_ms=0.5))
    b.add_component("thal", "thalamus", n_input=8, n_output=8, trn_to_relay_delay_ms=1.2)
    with pytest.raises(ValueError, match="'trn_to_relay_delay_ms' of component 'thal'.*multiple of dt"):
        b.build()


def test_input_size_mismatch_names_the_thalamus():
    b = BrainBuilder(GlobalConfig(dt_ms=0.5))
    b.add_component("eye", "sensory_pathway", n_output=10)
    b.add_component("lgn", "thalamus", n_input=12, n_output=8)
    b.connect("eye", "lgn")
    with pytest.raises(ValueError, match="'n_input' of component 'lgn'"):
        b.build()


def test_forward_input_errors_name_the_component():
    brain = small_builder().build()
    with pytest.raises(ValueError, match="input components"):
        brain.forward(torch.zeros(32, dtype=torch.bool), n_timesteps=2)  # two inputs: sensory and cue
    with pytest.raises(ValueError, match=r"inputs\['sensory'\]: expected shape \(32,\) or \(2, 32\)"):
        brain.forward({"sensory": torch.zeros(31, dtype=torch.bool)}, n_timesteps=2)
    with pytest.raises(ValueError, match="n_timesteps"):
        brain.forward(None, n_timesteps=0)


def test_forward_is_resumable_and_seeded():
    """Ten calls of 20 steps = one call of 200 steps; same seed, same spikes."""
    a, b = small_builder().build(), small_builder().build()
    x = torch.zeros(32, dtype=torch.bool)
    x[:4] = True
    chunks = [a.forward({"sensory": x}, n_timesteps=20)["result"] for _ in range(10)]
    whole = b.forward({"sensory": x}, n_timesteps=200)["result"]
    steps = np.concatenate([r.spike_steps + k * 20 for k, r in enumerate(chunks)])
    ids = np.concatenate([r.spike_ids for r in chunks])
    np.testing.assert_array_equal(steps, whole.spike_steps)
    np.testing.assert_array_equal(ids, whole.spike_ids)
    assert a.time_ms == b.time_ms == 200 * DT


def test_bool_input_spikes_every_step_and_rates_are_poisson():
    brain = small_builder().build()
    x = torch.zeros(32, dtype=torch.bool)
    x[:4] = True
    out = brain.forward({"sensory": x}, n_timesteps=100)
    # 4 forced spikes per step on top of the 20 Hz spontaneous discharge of 32 cells
    assert out["spike_counts"]["sensory.output"] >= 400
    assert out["outputs"]["sensory"][:4].all()
    brain = small_builder().build()
    rates = torch.full((32,), 100.0)
    n = brain.forward({"sensory": rates}, n_timesteps=2000)["spike_counts"]["sensory.output"]
    expected = 32 * (100 + 20) * 1.0  # 1 s at dt 0.5 ms
    assert abs(n - expected) < 4 * np.sqrt(expected)


def test_save_and_load_continue_exactly(tmp_path):
    brain = small_builder({"cortex": {"plasticity": True}}).build()
    brain.run(100.0)
    path = brain.save(tmp_path / "brain.npz")
    restored = type(brain).load(path)
    a, b = brain.run(100.0), restored.run(100.0)
    np.testing.assert_array_equal(a.spike_steps, b.spike_steps)
    np.testing.assert_array_equal(a.spike_ids, b.spike_ids)
    for name, w in a.weights.items():
        np.testing.assert_array_equal(w, b.weights[name])
    assert restored.time_ms == brain.time_ms == 200.0


def test_cortical_plasticity_is_the_stdp_bcm_composite_on_excitatory_synapses():
    from thalia.spiking.plasticity import STDPBCM

    brain = small_builder({"cortex": {"plasticity": True}}).build()
    plastic = {p.name: p for p in brain.network.projections if p.plasticity is not None}
    assert plastic and all(isinstance(p.plasticity, STDPBCM) for p in plastic.values())
    # only excitatory cortical synapses onto pyramidal cells (E -> E, local and vertical)
    assert all(p.pre.startswith("cortex.") and p.pre.endswith("_e") and p.post.endswith("_e") for p in plastic.values())
    result = brain.run(300.0)
    for name, proj in plastic.items():
        w0, w = np.asarray(proj.weight_nS), result.weights[name]
        assert np.all((w >= 0.0) & (w <= 2.0 * w0 + 1e-12))
    assert any(not np.allclose(result.weights[name], np.asarray(p.weight_nS)) for name, p in plastic.items())

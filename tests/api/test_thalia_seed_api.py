"""The thalia seed's API, examples and test, run as written."""

import runpy
from pathlib import Path

import pytest
import torch

from thalia.core.dynamic_brain import BrainBuilder, GlobalConfig

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def global_config():
    return GlobalConfig(dt_ms=1.0, device="cpu")


def test_cortex_l6_to_thalamus_feedback(global_config):
    """Test L6 → thalamus TRN feedback loop."""
    builder = BrainBuilder(global_config)

    builder.add_component("thalamus", "thalamus", n_input=64, n_output=64)
    builder.add_component("cortex", "cortex", n_output=128)

    # Forward: thalamus → cortex
    builder.connect("thalamus", "cortex", pathway_type="spiking")

    # Feedback: cortex L6 → thalamus (via TRN)
    builder.connect("cortex", "thalamus", source_port="l6", pathway_type="axonal")

    brain = builder.build()

    # Verify L6 pathway exists
    assert ("cortex", "thalamus") in brain.connections

    # Run and verify L6 feedback is processed
    input_spikes = torch.zeros(64, dtype=torch.bool)
    output = brain.forward(input_spikes, n_timesteps=10)

    # Check that cortex L6 spikes are generated
    cortex = brain.components["cortex"]
    assert cortex.state.l6_spikes is not None
    # beyond the seed: the L6 vector is L6a ‖ L6b, and the call ran 10 steps of 1 ms
    assert cortex.state.l6_spikes.shape == (32 + 32,) and output["time"] == 10.0


def test_basic_attention_loop_example_runs_as_written():
    scope = runpy.run_path(str(EXAMPLES / "thalia_basic_attention_loop.py"))
    brain = scope["brain"]
    assert brain.time_ms == 100.0
    layers = brain.components["v1"].get_layer_outputs()
    assert set(layers) == {"L4", "L2/3", "L5", "L6a", "L6b", "L6"}
    assert layers["L2/3"].shape == (512,) and layers["L6"].shape == (128 + 128,)
    assert brain.components["v1"].get_l6_spikes().shape == (256,)


def test_multimodal_attention_example_builds_both_feedback_loops():
    scope = runpy.run_path(str(EXAMPLES / "thalia_multimodal_attention.py"))
    brain = scope["brain"]
    for thalamus in ("lgn", "mgn"):
        ports = brain.connections[("cortex", thalamus)].target_ports
        assert ports == {(thalamus, "l6a_feedback"), (thalamus, "l6b_feedback")}
    out = brain.forward({"visual": torch.zeros(784, dtype=torch.bool)}, n_timesteps=20)
    assert out["final_time"] == 20.0 and out["spike_counts"]["cortex.l23_e"] >= 0
    assert out["outputs"]["cortex"].shape == (512,)

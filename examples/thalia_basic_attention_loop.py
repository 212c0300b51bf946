"""The seed's "Example 1: Basic Attention Loop", as written (sensory → LGN → V1 → L6 feedback → LGN)."""

import torch

from thalia.core.dynamic_brain import BrainBuilder, GlobalConfig

global_config = GlobalConfig(dt_ms=1.0, device="cpu")
builder = BrainBuilder(global_config)

# Build sensory → thalamus → cortex → (L6 feedback) → thalamus
builder.add_component("visual_input", "sensory_pathway", n_output=784)
builder.add_component("lgn", "thalamus", n_input=784, n_output=256)
builder.add_component("v1", "cortex", n_output=512)

# Forward path
builder.connect("visual_input", "lgn", pathway_type="axonal")
builder.connect("lgn", "v1", pathway_type="spiking")

# Feedback path (L6 → TRN)
builder.connect("v1", "lgn", source_port="l6", pathway_type="axonal")

brain = builder.build()

# Run
sensory_spikes = torch.zeros(784, dtype=torch.bool)  # Your input
brain.forward(sensory_spikes, n_timesteps=100)

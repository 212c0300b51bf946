"""The seed's "Example 2: Multi-Modal Attention", as written (two thalami, one cortex)."""

from thalia.core.dynamic_brain import BrainBuilder, GlobalConfig

global_config = GlobalConfig(dt_ms=1.0, device="cpu")
builder = BrainBuilder(global_config)

# Visual and auditory streams with shared cortex attention
builder.add_component("visual", "sensory_pathway", n_output=784)
builder.add_component("auditory", "sensory_pathway", n_output=256)
builder.add_component("lgn", "thalamus", n_input=784, n_output=256)
builder.add_component("mgn", "thalamus", n_input=256, n_output=128)
builder.add_component("cortex", "cortex", n_output=512)

# Forward paths
builder.connect("visual", "lgn")
builder.connect("auditory", "mgn")
builder.connect("lgn", "cortex")
builder.connect("mgn", "cortex")

# Feedback paths (cortex controls BOTH thalami)
builder.connect("cortex", "lgn", source_port="l6")
builder.connect("cortex", "mgn", source_port="l6")

brain = builder.build()
# Cortex L6 now modulates both visual and auditory attention!

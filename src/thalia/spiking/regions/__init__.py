"""Region builders: each adds populations and projections to one flat network.

* :class:`SensoryPathway` (``"sensory_pathway"``), :class:`Thalamus` (``"thalamus"``),
  :class:`Cortex` (``"cortex"``), :class:`PDCortex` (``"pd_cortex"``, the Potjans–Diesmann
  microcircuit); :func:`routes` gives the synapse groups of one builder connection.
"""

from thalia.spiking.regions.cortex import Cortex, CortexConfig
from thalia.spiking.regions.microcircuit import PDCortex, PDCortexConfig
from thalia.spiking.regions.sensory import SensoryConfig, SensoryPathway
from thalia.spiking.regions.thalamus import Thalamus, ThalamusConfig
from thalia.spiking.regions.wiring import DEFAULT_DELAY_MS, Route, routes

REGION_TYPES = {
    cls.kind: (cls, cfg)
    for cls, cfg in (
        (SensoryPathway, SensoryConfig), (Thalamus, ThalamusConfig), (Cortex, CortexConfig), (PDCortex, PDCortexConfig)
    )
}  # fmt: skip

__all__ = [
    "Cortex",
    "CortexConfig",
    "SensoryPathway",
    "SensoryConfig",
    "Thalamus",
    "ThalamusConfig",
    "PDCortex",
    "PDCortexConfig",
    "REGION_TYPES",
    "DEFAULT_DELAY_MS",
    "Route",
    "routes",
]

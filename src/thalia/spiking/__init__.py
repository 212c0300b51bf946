"""Spiking networks: conductance-based neurons, sparse delayed projections, one engine.

* :class:`LIF` — conductance-based LIF neuron in physical units (AMPA, GABA-A, NMDA, GABA-B,
  adaptation, noise).
* :class:`Network` — populations and projections (rules in :mod:`thalia.spiking.connectivity`).
* :func:`simulate` — the step loop (compiled CPU loop with numba, or PyTorch on any device).
"""

from thalia.spiking.connectivity import Explicit, FixedInDegree, LogNormal, Normal, OneToOne, Probability, Topographic
from thalia.spiking.engine import SimulationResult, simulate
from thalia.spiking.network import Network
from thalia.spiking.neurons import LIF

__all__ = [
    "LIF",
    "Network",
    "simulate",
    "SimulationResult",
    "FixedInDegree",
    "Probability",
    "OneToOne",
    "Topographic",
    "Explicit",
    "Normal",
    "LogNormal",
]

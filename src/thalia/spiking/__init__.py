"""Spiking networks: conductance-based neurons, sparse delayed projections, one engine.

* :class:`LIF` — conductance-based LIF neuron in physical units (AMPA, GABA-A, NMDA, GABA-B,
  adaptation, noise).
* :class:`Network` — populations and projections (rules in :mod:`thalia.spiking.connectivity`).
* :func:`simulate` — the step loop (compiled CPU loop with numba, or PyTorch on any device);
  :func:`simulate_batch` — many independent instances in one run.
"""

from thalia.spiking.batch import simulate_batch
from thalia.spiking.connectivity import Explicit, FixedInDegree, LogNormal, Normal, OneToOne, Probability, Topographic
from thalia.spiking.engine import SimulationResult, simulate
from thalia.spiking.network import Network
from thalia.spiking.neurons import LIF

__all__ = [
    "LIF",
    "Network",
    "simulate",
    "simulate_batch",
    "SimulationResult",
    "FixedInDegree",
    "Probability",
    "OneToOne",
    "Topographic",
    "Explicit",
    "Normal",
    "LogNormal",
]

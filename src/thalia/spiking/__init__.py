"""Spiking networks: conductance-based neurons, sparse delayed projections, one engine.

* :class:`LIF` — conductance-based LIF neuron in physical units (AMPA, GABA-A, NMDA, GABA-B,
  adaptation, noise).
* :class:`Network` — populations and projections (rules in :mod:`thalia.spiking.connectivity`).
* :class:`Simulator` — a network's state, advanced by ``run(n_steps, inputs=...)`` as often as needed
  (compiled CPU loop with numba, or PyTorch on any device; ``state_dict`` to save and resume);
  :func:`simulate` — one run of a new simulator; :func:`simulate_batch` — many independent instances.
"""

from thalia.spiking.batch import simulate_batch
from thalia.spiking.connectivity import (
    Explicit,
    FixedInDegree,
    FixedTotalNumber,
    LogNormal,
    Normal,
    OneToOne,
    Probability,
    Topographic,
    TruncatedNormal,
)
from thalia.spiking.engine import SimulationResult, Simulator, simulate
from thalia.spiking.network import Network
from thalia.spiking.neurons import LIF

__all__ = [
    "LIF",
    "Network",
    "Simulator",
    "simulate",
    "simulate_batch",
    "SimulationResult",
    "FixedInDegree",
    "FixedTotalNumber",
    "TruncatedNormal",
    "Probability",
    "OneToOne",
    "Topographic",
    "Explicit",
    "Normal",
    "LogNormal",
]

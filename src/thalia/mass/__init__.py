"""Neural mass models: flows, fixed points, exact Jacobians, delays, transfer functions, CSDs."""

from thalia.mass.base import NeuralMassModel
from thalia.mass.fixed_point import ConvergenceWarning, FixedPoint
from thalia.mass.simulate import Simulation, simulate
from thalia.mass.stability import DelayedStability, count_unstable_roots
from thalia.mass.tcm import TCM

__all__ = [
    "NeuralMassModel",
    "TCM",
    "FixedPoint",
    "ConvergenceWarning",
    "Simulation",
    "simulate",
    "DelayedStability",
    "count_unstable_roots",
]

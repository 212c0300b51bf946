"""Neural mass models: flows, fixed points, exact Jacobians, delays, transfer functions, CSDs."""

from thalia.mass.base import NeuralMassModel
from thalia.mass.fixed_point import ConvergenceWarning, FixedPoint
from thalia.mass.tcm import TCM

__all__ = ["NeuralMassModel", "TCM", "FixedPoint", "ConvergenceWarning"]

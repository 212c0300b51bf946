"""Neural mass models: flows, fixed points, exact Jacobians, delays, transfer functions, CSDs."""

from thalia.mass import spm  # noqa: E402  (after the models it wraps)
from thalia.mass.base import NeuralMassModel
from thalia.mass.cmc import CMC
from thalia.mass.cmm_nmda import CMMNMDA
from thalia.mass.fixed_point import ConvergenceWarning, FixedPoint
from thalia.mass.simulate import Simulation, simulate
from thalia.mass.stability import DelayedStability, count_unstable_roots
from thalia.mass.tcm import TCM

__all__ = [
    "NeuralMassModel",
    "TCM",
    "CMC",
    "CMMNMDA",
    "spm",
    "FixedPoint",
    "ConvergenceWarning",
    "Simulation",
    "simulate",
    "DelayedStability",
    "count_unstable_roots",
]

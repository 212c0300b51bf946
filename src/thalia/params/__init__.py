"""Named parameter sets with Gaussian priors, shared by the mass models and inference.

Every model parameter is a log-scale quantity θ with a Gaussian prior N(mean, variance); the model
uses ``constant * exp(θ)`` (or θ itself where the spec says "linear"). A :class:`ParamSpace` is the
ordered schema (names, shapes, priors, docs); a :class:`ParameterSet` holds one value per name and
packs to / unpacks from a flat float64 vector in schema order (C order within each array).
"""

from thalia.params.core import ParameterSet, ParamSpace, ParamSpec

__all__ = ["ParamSpec", "ParamSpace", "ParameterSet"]

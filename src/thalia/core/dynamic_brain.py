"""The seed's import path: ``from thalia.core.dynamic_brain import BrainBuilder, GlobalConfig``."""

from thalia.spiking.brain import Brain, Connection
from thalia.spiking.builder import BrainBuilder, GlobalConfig

DynamicBrain = Brain

__all__ = ["BrainBuilder", "GlobalConfig", "Brain", "DynamicBrain", "Connection"]

"""The thalia seed's import paths (``thalia.core.dynamic_brain``)."""

"""The package logger. One logger, ``logging.getLogger("thalia")``; no ``print`` in the library."""

from __future__ import annotations

import logging

logger = logging.getLogger("thalia")
logger.addHandler(logging.NullHandler())


def set_verbose(verbose: bool | int | str | None) -> None:
    """Set the thalia logger's level from a ``verbose`` argument (True → INFO, False → WARNING)."""
    if verbose is None:
        return
    if isinstance(verbose, bool):
        level = logging.INFO if verbose else logging.WARNING
    elif isinstance(verbose, str):
        level = getattr(logging, verbose.upper())
    else:
        level = int(verbose)
    logger.setLevel(level)

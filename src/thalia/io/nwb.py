"""Spike trains to NWB (Neurodata Without Borders) with ``pynwb``, an optional extra.

``pip install "thalia[nwb]"`` installs it. One NWB unit per neuron, with its spike times (s) and its
population's name in the ``population`` column; the file is written atomically.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from thalia.io.atomic import atomic_path

__all__ = ["export_spikes_nwb"]


def _pynwb():
    try:
        import pynwb
    except ImportError as err:
        raise ImportError(
            "NWB export needs the optional package pynwb: pip install 'thalia[nwb]' (or pip install pynwb)."
        ) from err
    return pynwb


def export_spikes_nwb(
    path: str | os.PathLike,
    result: Any,
    *,
    session_description: str = "thalia spiking simulation",
    identifier: str | None = None,
    session_start_time: datetime | None = None,
) -> Path:
    """Write the spike trains of a simulation to an NWB file; returns the path.

    Parameters
    ----------
    path : str or path
        The ``.nwb`` file to write.
    result : SimulationResult
        Anything with ``populations`` (name -> slice of neuron indices) and ``spikes(name)`` returning
        (times in ms, local neuron indices), as :class:`thalia.spiking.SimulationResult`.
    session_start_time : datetime, optional
        Default: now (UTC).
    """
    pynwb = _pynwb()
    if not hasattr(result, "populations") or not hasattr(result, "spikes"):
        raise ValueError(
            "Invalid value for 'result': expected a simulation result (populations, spikes()), got "
            f"{type(result).__name__}."
        )
    nwb = pynwb.NWBFile(
        session_description=session_description,
        identifier=identifier or str(uuid.uuid4()),
        session_start_time=session_start_time or datetime.now(timezone.utc),
    )
    nwb.add_unit_column(name="population", description="population of the simulated neuron")
    nwb.add_unit_column(name="neuron", description="index of the neuron in its population")
    for name, block in result.populations.items():
        times_ms, ids = result.spikes(name)
        order = np.argsort(ids, kind="stable")
        times_s, ids = np.asarray(times_ms)[order] / 1000.0, np.asarray(ids)[order]
        bounds = np.searchsorted(ids, np.arange(block.stop - block.start + 1))
        for neuron in range(block.stop - block.start):
            spikes = np.sort(times_s[bounds[neuron] : bounds[neuron + 1]])
            nwb.add_unit(spike_times=spikes, population=name, neuron=neuron)
    path = Path(path)
    with atomic_path(path) as temporary, pynwb.NWBHDF5IO(str(temporary), "w") as io:
        io.write(nwb)
    return path

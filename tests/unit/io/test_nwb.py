"""Spike trains to NWB (optional pynwb): every neuron's spike times come back from the file."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.io import export_spikes_nwb
from thalia.spiking.engine import SimulationResult


def _result() -> SimulationResult:
    rng = np.random.default_rng(0)
    steps = np.sort(rng.integers(0, 10_000, 400))
    return SimulationResult(
        dt_ms=0.1, duration_ms=1000.0, spike_steps=steps, spike_ids=rng.integers(0, 30, 400),
        populations={"relay": slice(0, 20), "trn": slice(20, 30)},
    )  # fmt: skip


def test_spike_trains_round_trip(tmp_path):
    pynwb = pytest.importorskip("pynwb")
    result = _result()
    path = export_spikes_nwb(tmp_path / "spikes.nwb", result, identifier="test")
    assert [p.name for p in tmp_path.iterdir()] == ["spikes.nwb"]
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        units = io.read().units.to_dataframe()
    assert len(units) == 30 and list(units["population"].unique()) == ["relay", "trn"]
    for _, row in units.iterrows():
        times_ms, ids = result.spikes(row["population"])
        expected = np.sort(times_ms[ids == row["neuron"]]) / 1000.0
        np.testing.assert_allclose(np.asarray(row["spike_times"]), expected)


def test_missing_pynwb_says_how_to_install(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_pynwb(name, *args, **kwargs):
        if name == "pynwb":
            raise ImportError("No module named 'pynwb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynwb)
    with pytest.raises(ImportError, match=r"pip install 'thalia\[nwb\]'"):
        export_spikes_nwb(tmp_path / "x.nwb", _result())
    assert not list(tmp_path.iterdir())

"""Results on disk: RunResult round trip, atomic writes that leave nothing behind on failure."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from thalia.io import RunResult, atomic_path, to_jsonable, write_json


def test_run_result_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "freqs_hz": np.arange(1.0, 46.0),
        "csd": rng.standard_normal((45, 2, 2)) + 1j * rng.standard_normal((45, 2, 2)),
        "spike_ids": rng.integers(0, 100, 500),
    }
    summary = {
        "F": -844.93,
        "r2_log_spectrum": 0.984,
        "peak_hz_model": None,
        "table": [{"parameter": "H", "mean": -1.5}],
    }
    folder = RunResult("fit", summary, arrays).save(tmp_path / "run")
    loaded = RunResult.load(folder / "result.json")
    assert loaded.kind == "fit" and loaded.summary == summary
    assert set(loaded.arrays) == set(arrays)
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded.arrays[name], value)
        assert loaded.arrays[name].dtype == value.dtype
    assert sorted(p.name for p in folder.iterdir()) == ["result.json", "result.npz"]  # no temporary files left


def test_json_of_tensors_numpy_and_nan(tmp_path):
    value = {"t": torch.tensor([1.5, float("nan")]), "n": np.float32(2.5), "i": np.int64(3), "inf": math.inf}
    assert to_jsonable(value) == {"t": [1.5, None], "n": 2.5, "i": 3, "inf": None}
    path = write_json(tmp_path / "x.json", value)
    assert json.loads(path.read_text()) == {"t": [1.5, None], "n": 2.5, "i": 3, "inf": None}


def test_atomic_write_failure_leaves_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.npz"
    np.savez(target, x=np.ones(3))
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as temporary:
        np.savez(temporary, x=np.zeros(3))
        raise RuntimeError("disk full")
    with np.load(target) as archive:
        np.testing.assert_array_equal(archive["x"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["result.npz"]


def test_bad_results(tmp_path):
    with pytest.raises(ValueError, match=r"'arrays': names are not numeric arrays"):
        RunResult("fit", {}, {"names": np.array(["a", None], dtype=object)}).save(tmp_path / "a")
    assert not (tmp_path / "a" / "result.json").exists()
    with pytest.raises(ValueError, match=r"no result.json in"):
        RunResult.load(tmp_path / "empty")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "result.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match=r"not a saved thalia result"):
        RunResult.load(tmp_path / "b")

"""Run results on disk: a JSON summary (``result.json``) beside NPZ arrays (``result.npz``).

:class:`RunResult` is what ``thalia fit``, ``thalia simulate``, ``thalia demo`` and ``thalia group``
write: a JSON-able summary (numbers, names, tables) for people and other tools, and the arrays
(spectra, spike trains, posterior moments) in one ``.npz``. Both files are written atomically and
read back without pickles::

    result = RunResult("fit", {"F": -866.2, "r2_log_spectrum": 0.98}, {"freqs_hz": freqs})
    result.save("out/fit")                  # out/fit/result.json, out/fit/result.npz
    again = RunResult.load("out/fit")
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thalia.io.atomic import atomic_path, write_text_atomic

__all__ = ["RunResult", "to_jsonable", "write_json"]

FORMAT = "thalia.RunResult"
FORMAT_VERSION = 1
SUMMARY_FILE = "result.json"
ARRAYS_FILE = "result.npz"


def to_jsonable(value: Any) -> Any:
    """``value`` with NumPy/torch numbers and arrays as plain Python; NaN and ±inf become None."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "detach"):  # torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` (through :func:`to_jsonable`) as indented JSON, atomically; returns the path."""
    return write_text_atomic(path, json.dumps(to_jsonable(value), indent=2, allow_nan=False) + "\n")


@dataclass
class RunResult:
    """A run's summary and arrays.

    Attributes
    ----------
    kind : str
        What ran: ``"fit"``, ``"simulation"``, ``"demo"``, ``"group"``.
    summary : dict
        JSON-able numbers, names and tables (NaN is stored as null).
    arrays : dict of str to ndarray
        Numeric arrays (no object arrays); complex arrays are kept.
    """

    kind: str
    summary: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``result.npz`` then ``result.json`` into ``folder`` (created if missing); returns the folder."""
        folder = Path(folder)
        arrays = {name: np.asarray(value) for name, value in self.arrays.items()}
        bad = [name for name, value in arrays.items() if value.dtype == object]
        if bad:
            raise ValueError(f"Invalid value for 'arrays': {', '.join(bad)} are not numeric arrays.")
        with atomic_path(folder / ARRAYS_FILE) as temporary:
            np.savez(temporary, **arrays)
        write_json(
            folder / SUMMARY_FILE, {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind, **self.summary}
        )
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> RunResult:
        """Read a result written by :meth:`save` (a folder, or the path of its ``result.json``)."""
        folder = Path(folder)
        folder = folder.parent if folder.name == SUMMARY_FILE else folder
        summary_path = folder / SUMMARY_FILE
        if not summary_path.is_file():
            raise ValueError(f"Invalid value for 'folder': no {SUMMARY_FILE} in {str(folder)!r}.")
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"Invalid result file {str(summary_path)!r}: not JSON ({err}).") from err
        if summary.pop("format", None) != FORMAT:
            raise ValueError(f"Invalid result file {str(summary_path)!r}: not a saved thalia result.")
        summary.pop("version", None)
        kind = summary.pop("kind", "")
        arrays = {}
        if (folder / ARRAYS_FILE).is_file():
            with np.load(folder / ARRAYS_FILE, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
        return cls(kind, summary, arrays)

"""Machine description shared by the benchmark scripts (imported as a sibling module)."""

from __future__ import annotations

import os
import platform
import shutil
import sys
from typing import Any

import numpy as np
import torch


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what the platform reports."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages, or None where the OS has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def environment(threads_requested: int, device: str = "cpu", **extra: Any) -> dict[str, Any]:
    """Versions, machine, threads, device and load at the start of a benchmark run."""
    cuda = str(device).startswith("cuda")
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "threads_requested": threads_requested,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else cpu_model(),
        "cuda_version": torch.version.cuda,
        "loadavg_start": load_average(),
        "octave_available": shutil.which("octave") is not None,
        **extra,
    }

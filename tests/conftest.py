"""Shared fixtures and markers. `gpu` tests are skipped where no CUDA device is present."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"

# The suite's tensors are small: one intra-op thread avoids OpenMP overhead on the 2-core CI
# machines. Set once and never raised again (see thalia.mass.simulate's notes on PyTorch 2.13).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tcm():
    from thalia.mass import TCM

    return TCM()

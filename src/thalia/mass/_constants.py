"""Module-level constant arrays as tensors, converted once per dtype and device."""

from __future__ import annotations

import numpy as np
import torch

_CACHE: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


def const(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``array`` (a module-level constant, never mutated) as a tensor of ``like``'s dtype and device."""
    key = (id(array), like.dtype, like.device)
    tensor = _CACHE.get(key)
    if tensor is None:
        tensor = _CACHE[key] = torch.as_tensor(array, dtype=like.dtype, device=like.device)
    return tensor

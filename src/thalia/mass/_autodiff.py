"""Whether derivatives flow through a computation (to skip work that only matters for them)."""

from __future__ import annotations

import torch


def tracks_derivatives(*tensors: torch.Tensor) -> bool:
    """True if autograd, forward-mode AD or a torch.func transform may differentiate through ``tensors``."""
    transforms = getattr(torch._C, "_are_functorch_transforms_active", lambda: True)()
    forward_ad = torch.autograd.forward_ad._current_level >= 0
    return bool(transforms or forward_ad or any(t.requires_grad for t in tensors))

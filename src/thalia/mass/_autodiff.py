"""Whether derivatives flow through a computation (to skip work that only matters for them)."""

from __future__ import annotations

import torch


def transforms_active() -> bool:
    """True inside a torch.func transform (vmap, jacfwd, jacrev, grad)."""
    return bool(getattr(torch._C, "_are_functorch_transforms_active", lambda: True)())


def tracks_derivatives(*tensors: torch.Tensor) -> bool:
    """True if autograd, forward-mode AD or a torch.func transform may differentiate through ``tensors``."""
    transforms = transforms_active()
    forward_ad = torch.autograd.forward_ad._current_level >= 0
    return bool(transforms or forward_ad or any(t.requires_grad for t in tensors))

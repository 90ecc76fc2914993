"""Buffers that stay float64 when the module around them changes dtype."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["keep_float64"]


def keep_float64(module: nn.Module, fn, *args, **kwargs):
    """``nn.Module._apply`` that moves float64 buffers to the new device but never changes their dtype.

    Assign as ``_apply = keep_float64`` in a module whose buffers hold
    energies that must not be rounded to float32 (reference energies, scale,
    shift): ``potential.to(torch.float32)`` then casts the network but keeps
    these values exact. The original float64 values are moved, not a float32
    copy cast back, so nothing is rounded on the way.
    """
    originals = {name: buf for name, buf in module._buffers.items() if buf is not None and buf.dtype == torch.float64}
    nn.Module._apply(module, fn, *args, **kwargs)
    for name, original in originals.items():
        moved = module._buffers[name]
        module._buffers[name] = original.to(device=moved.device)
    return module

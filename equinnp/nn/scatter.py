"""Scatter helpers. Every call takes ``dim_size`` (never ``index.max() + 1``)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["scatter_sum"]


def scatter_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Sum rows of ``src`` [M, ...] into ``dim_size`` bins by ``index`` [M] → [dim_size, ...]."""
    out = src.new_zeros((dim_size,) + tuple(src.shape[1:]))
    return out.index_add_(0, index, src)

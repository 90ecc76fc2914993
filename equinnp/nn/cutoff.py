"""Smooth cutoff envelopes: 1 at r = 0, 0 with vanishing derivative at the cutoff.

Shapes: ``r`` [E] → [E]. Beyond the cutoff every envelope is exactly 0.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["CosineCutoff", "PolynomialCutoff"]


class CosineCutoff(nn.Module):
    r"""Behler's cosine cutoff (SchNet, PaiNN).

    .. math:: f(r) = \tfrac12\left(\cos\frac{\pi r}{r_c} + 1\right)\,[r < r_c]
    """

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, r: Tensor) -> Tensor:
        value = 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0)
        return value * (r < self.cutoff).to(r.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cutoff={self.cutoff:g})"


class PolynomialCutoff(nn.Module):
    r"""Polynomial envelope of Klicpera et al. 2020 (DimeNet eq. 8; MACE, NequIP).

    With :math:`x = r / r_c` and exponent :math:`p`:

    .. math:: f(x) = 1 - \frac{(p+1)(p+2)}{2}x^p + p(p+2)x^{p+1} - \frac{p(p+1)}{2}x^{p+2}

    for :math:`x < 1` and 0 beyond; value, first and second derivative vanish at
    the cutoff.
    """

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff = float(cutoff)
        self.p = int(p)

    def forward(self, r: Tensor) -> Tensor:
        p = self.p
        x = r / self.cutoff
        value = (
            1.0
            - 0.5 * (p + 1) * (p + 2) * x**p
            + p * (p + 2) * x ** (p + 1)
            - 0.5 * p * (p + 1) * x ** (p + 2)
        )
        return value * (x < 1.0).to(r.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cutoff={self.cutoff:g}, p={self.p})"

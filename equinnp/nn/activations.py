"""Activation functions that torch does not ship."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ShiftedSoftplus"]


class ShiftedSoftplus(nn.Module):
    r"""SchNet's :math:`\mathrm{ssp}(x) = \ln(0.5 e^x + 0.5) = \mathrm{softplus}(x) - \ln 2`, so ssp(0) = 0."""

    shift = math.log(2.0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.softplus(x) - self.shift

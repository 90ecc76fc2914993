"""Activation functions that torch does not ship."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["ShiftedSoftplus", "sequential_forward_ad"]


class ShiftedSoftplus(nn.Module):
    r"""SchNet's :math:`\mathrm{ssp}(x) = \ln(0.5 e^x + 0.5) = \mathrm{softplus}(x) - \ln 2`, so ssp(0) = 0."""

    shift = math.log(2.0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.softplus(x) - self.shift


def sequential_forward_ad(layers: nn.Sequential, x: Tensor) -> Tensor:
    r"""``layers(x)``, with every ``nn.SiLU`` evaluated as :math:`x\,\sigma(x)`.

    Same numbers (to rounding); unlike ``torch.nn.functional.silu`` this SiLU has
    forward-mode derivatives of every order (nested ``torch.func.jvp``, as the radial
    table builder takes them). Other layers run as they are.
    """
    for layer in layers:
        x = x * torch.sigmoid(x) if isinstance(layer, nn.SiLU) else layer(x)
    return x

r"""Per-element MLPs of an ensemble of M networks, with the members' weights stacked.

ANI's atomic networks (Smith et al. 2017; Devereux et al. 2020) map an atom's
AEV to its energy with one MLP per element. An ensemble holds M such sets; here
the M members of one element share one tensor per layer, so that all members
run in one batched matrix product per layer instead of M small ones:

.. math::
    h^{(0)} = x, \qquad
    h^{(l+1)}_m = \sigma\big(h^{(l)}_m W^{(l)}_m + b^{(l)}_m\big), \qquad
    \epsilon_m = h^{(L-1)}_m W^{(L)}_m + b^{(L)}_m

with :math:`\sigma` = CELU(α) on the hidden layers and a linear last layer.

Storage: ``weights[0]`` is [in, M, out] (the input is shared by the members, so the
first layer is one [n, in] x [in, M·out] product); later layers are [M, in, out]
(``torch.baddbmm``); ``biases[l]`` are [M, 1, out].
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EnsembleElementMLP"]


class EnsembleElementMLP(nn.Module):
    """M stacked MLPs ``in_features → hidden... → 1`` with CELU(α) between layers.

    Shapes: ``x`` [n, in_features] (or [n, D'] with ``columns`` [D']) → [n, M] (one energy per atom and member).
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_members: int = 1, celu_alpha: float = 0.1):
        super().__init__()
        hidden = [int(h) for h in hidden]
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden layer sizes must be positive integers (at least one layer), got {hidden}")
        if num_members < 1:
            raise ValueError(f"num_members must be at least 1, got {num_members}")
        self.in_features = int(in_features)
        self.sizes = [self.in_features] + hidden + [1]
        self.num_members = int(num_members)
        self.celu_alpha = float(celu_alpha)
        M = self.num_members
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for layer, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            shape = (fan_in, M, fan_out) if layer == 0 else (M, fan_in, fan_out)
            self.weights.append(nn.Parameter(torch.empty(shape)))
            self.biases.append(nn.Parameter(torch.empty(M, 1, fan_out)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # TorchANI's training recipe: kaiming_normal_(a=1), i.e. std 1/sqrt(fan_in), and zero biases.
        for weight, bias, fan_in in zip(self.weights, self.biases, self.sizes[:-1]):
            nn.init.normal_(weight, std=1.0 / math.sqrt(fan_in))
            nn.init.zeros_(bias)

    def forward(self, x: Tensor, columns: Optional[Tensor] = None) -> Tensor:
        """``columns`` [D']: the input features ``x`` holds (default: all ``in_features``); the others are 0."""
        n, M = x.shape[0], self.num_members
        first = self.weights[0] if columns is None else self.weights[0].index_select(0, columns)  # [D', M, h1]
        h = (x @ first.reshape(x.shape[1], -1)).reshape(n, M, -1).transpose(0, 1)  # [M, n, h1]
        h = h + self.biases[0]
        for weight, bias in zip(self.weights[1:], self.biases[1:]):
            h = torch.baddbmm(bias, F.celu(h, alpha=self.celu_alpha), weight)  # [M, n, h_next]
        return h.squeeze(-1).transpose(0, 1)  # [n, M]

    def load_member(self, member: int, weights: Sequence[Tensor], biases: Sequence[Tensor]) -> None:
        """Set member ``member``'s layers from ``(out, in)`` weights and ``(out,)`` biases (``nn.Linear`` layout)."""
        if len(weights) != len(self.weights) or len(biases) != len(self.biases):
            raise ValueError(f"member {member}: {len(weights)} layers given, the network has {len(self.weights)}")
        with torch.no_grad():
            for layer, (weight, bias) in enumerate(zip(weights, biases)):
                expected = (self.sizes[layer + 1], self.sizes[layer])
                if tuple(weight.shape) != expected or tuple(bias.shape) != expected[:1]:
                    raise ValueError(
                        f"member {member}, layer {layer + 1}: weight {tuple(weight.shape)} and bias {tuple(bias.shape)}, "
                        f"expected {expected} and {expected[:1]}"
                    )
                target = self.weights[layer][:, member] if layer == 0 else self.weights[layer][member]
                target.copy_(weight.t())
                self.biases[layer][member, 0].copy_(bias)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, num_members={self.num_members}, celu_alpha={self.celu_alpha:g}"

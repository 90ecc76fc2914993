"""Blocks that let an architecture read the total charge and spin and predict partial charges.

Both are options of an architecture (off by default, where its paper has none):

- :class:`TotalChargeSpinEmbedding` adds the system's total charge Q and spin
  multiplicity M to every atom's initial features;
- :class:`ChargeHead` predicts a raw partial charge and a non-negative
  charge-conservation weight per atom from the final scalar features (the
  charge-conservation transforms of ``equinnp.postprocessing.charges`` then
  make the charges sum to Q).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

__all__ = ["TotalChargeSpinEmbedding", "ChargeHead"]


class TotalChargeSpinEmbedding(nn.Module):
    r"""Additive embedding of the total charge and spin into the initial atom features.

    .. math::
        h_i^{(0)} \leftarrow h_i^{(0)} + \big(W_Q\, Q_{b(i)} + W_S\, (M_{b(i)} - 1)\big) \odot e_{Z_i}

    with :math:`W_Q, W_S \in \mathbb{R}^F` learned, :math:`e_{Z_i} = \mathrm{SiLU}(\mathrm{Embed}(Z_i))`
    a learned per-element gate (so that a charge changes the atoms of different
    elements differently), :math:`Q` in e and :math:`M = 2S + 1`. A neutral
    singlet (Q = 0, M = 1) adds exactly zero, so a model with the embedding on
    gives the numbers of the same model without it on such systems. The
    embedding is invariant under rotations, translations and permutations
    (it reads one number per system).

    Parameters
    ----------
    num_elements : int
        Number of element types (rows of the gate embedding).
    hidden_channels : int
        Feature size F.
    use_charge, use_spin : bool
        Which of the two totals to read (at least one).

    Shapes: ``h`` [N, F], ``species`` [N], ``charge`` [B], ``spin`` [B], ``batch`` [N] → [N, F].
    """

    def __init__(self, num_elements: int, hidden_channels: int, use_charge: bool = True, use_spin: bool = False):
        super().__init__()
        if not (use_charge or use_spin):
            raise ValueError("TotalChargeSpinEmbedding needs use_charge or use_spin (or both)")
        self.use_charge = use_charge
        self.use_spin = use_spin
        self.charge_weight = nn.Parameter(torch.empty(hidden_channels)) if use_charge else None
        self.spin_weight = nn.Parameter(torch.empty(hidden_channels)) if use_spin else None
        self.gate = nn.Embedding(num_elements, hidden_channels)
        self.act = nn.SiLU()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight in (self.charge_weight, self.spin_weight):
            if weight is not None:
                nn.init.normal_(weight, std=1.0)
        self.gate.reset_parameters()

    def forward(self, h: Tensor, species: Tensor, charge: Tensor, spin: Tensor, batch: Tensor) -> Tensor:
        per_system = h.new_zeros((charge.shape[0], h.shape[1]))  # [B, F]
        if self.charge_weight is not None:
            per_system = per_system + charge.to(h.dtype).unsqueeze(-1) * self.charge_weight  # [B, F]
        if self.spin_weight is not None:
            per_system = per_system + (spin.to(h.dtype) - 1.0).unsqueeze(-1) * self.spin_weight  # [B, F]
        return h + per_system[batch] * self.act(self.gate(species))  # [N, F]

    def extra_repr(self) -> str:
        return f"use_charge={self.use_charge}, use_spin={self.use_spin}"


class ChargeHead(nn.Module):
    r"""Per-atom raw charge and charge-conservation weight from scalar features.

    .. math::
        (\tilde q_i, \tilde f_i) = W_2\, \mathrm{SiLU}(W_1 h_i + b_1) + b_2, \qquad f_i = \tilde f_i^{\,2}

    :math:`\tilde q_i` (e) is the charge before conservation; :math:`f_i \ge 0`
    is each atom's share of the correction in the weighted (AIMNet2) scheme,
    squared as in AIMNet2 so that it is non-negative.

    Shapes: ``h`` [N, F] → (``charges`` [N], ``weights`` [N]).
    """

    def __init__(self, hidden_channels: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(hidden_channels, max(hidden_channels // 2, 1)), nn.SiLU(), nn.Linear(max(hidden_channels // 2, 1), 2)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.mlp[0], self.mlp[2]):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, h: Tensor) -> Tuple[Tensor, Tensor]:
        raw_charge, raw_weight = self.mlp(h).unbind(-1)  # [N], [N]
        return raw_charge, raw_weight.square()

r"""The two halves of a MACE layer: the atomic basis (message) and the product basis (update).

After Batatia et al. 2022, "MACE: Higher Order Equivariant Message Passing
Neural Networks for Fast and Accurate Force Fields" (NeurIPS), eq. 8-13, and
Drautz 2019 (ACE). Features use e3nn's irreps layout; ``r_ij = pos[j] - pos[i]``
(equinnp's convention, ``equinnp/neighbors/conventions.md``).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from equinnp.nn.irreps import uvu_instructions
from equinnp.nn.symmetric_contraction import SymmetricContraction

__all__ = ["AtomicBasis", "ProductBasis"]


class AtomicBasis(MessagePassing):
    r"""One-particle basis :math:`A_i` of a MACE layer, and the element-dependent skip connection.

    .. math::
        A_{i,k l_3 m_3} = \frac{1}{\bar n} \sum_{\tilde k} W_{k \tilde k l_3}
            \sum_{j \in \mathcal{N}(i)} \sum_{l_1 m_1 l_2 m_2}
            C^{l_3 m_3}_{l_1 m_1, l_2 m_2}\,
            R_{\tilde k, l_1 l_2 l_3}(r_{ij})\, Y^{m_1}_{l_1}(\hat r_{ij})\, (U h_j)_{\tilde k l_2 m_2}

        s_i = \mathrm{FCTP}(h_i, \delta_{z_i})   \quad\text{(residual, per element)}

    :math:`R` is an MLP (SiLU) of the radial basis, giving one weight per channel
    and path of the channel-wise ("uvu") tensor product; :math:`\bar n` is the
    average number of neighbors; the sum over j is the "add" aggregation.

    Parameters
    ----------
    irreps_node : o3.Irreps
        Irreps of :math:`h_j` (e.g. ``128x0e`` in the first layer).
    irreps_sh : o3.Irreps
        Spherical harmonics of the edge direction.
    irreps_target : o3.Irreps
        Irreps of :math:`A_i` (e.g. ``128x0e+128x1o+128x2e+128x3o``).
    irreps_skip : o3.Irreps
        Irreps of the residual :math:`s_i` (the layer's hidden irreps).
    num_elements : int
        Size of the element one-hot.
    num_radial : int
        Size of the radial basis.
    radial_mlp : list of int
        Hidden widths of :math:`R`.

    Shapes: ``h`` [N, irreps_node.dim], ``node_attrs`` [N, num_elements],
    ``edge_sh`` [E, irreps_sh.dim], ``edge_radial`` [E, num_radial] →
    ``A`` [N, irreps_target.dim], ``s`` [N, irreps_skip.dim].
    """

    def __init__(self, irreps_node, irreps_sh, irreps_target, irreps_skip, num_elements: int, num_radial: int, radial_mlp: List[int]):
        super().__init__(aggr="add", node_dim=0)
        self.irreps_node, self.irreps_sh = o3.Irreps(irreps_node), o3.Irreps(irreps_sh)
        self.irreps_target, self.irreps_skip = o3.Irreps(irreps_target), o3.Irreps(irreps_skip)
        self.skip_tp = o3.FullyConnectedTensorProduct(self.irreps_node, o3.Irreps(f"{num_elements}x0e"), self.irreps_skip)
        self.linear_up = o3.Linear(self.irreps_node, self.irreps_node)
        irreps_mid, instructions = uvu_instructions(self.irreps_node, self.irreps_sh, self.irreps_target)
        self.conv_tp = o3.TensorProduct(
            self.irreps_node, self.irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        self.radial_mlp = e3nn_nn.FullyConnectedNet([num_radial] + list(radial_mlp) + [self.conv_tp.weight_numel], torch.nn.functional.silu)
        self.linear = o3.Linear(irreps_mid, self.irreps_target)

    def forward(
        self, h: Tensor, node_attrs: Tensor, edge_index: Tensor, edge_sh: Tensor, edge_radial: Tensor, avg_num_neighbors: Tensor
    ) -> Tuple[Tensor, Tensor]:
        s = self.skip_tp(h, node_attrs)  # [N, irreps_skip.dim]
        h = self.linear_up(h)  # [N, irreps_node.dim]
        weights = self.radial_mlp(edge_radial)  # [E, weight_numel]
        message = self.propagate(edge_index, h=h, edge_sh=edge_sh, weights=weights)  # [N, irreps_mid.dim]
        return self.linear(message) / avg_num_neighbors, s

    def message(self, h_j: Tensor, edge_sh: Tensor, weights: Tensor) -> Tensor:
        return self.conv_tp(h_j, edge_sh, weights)  # [E, irreps_mid.dim]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_node} x {self.irreps_sh} -> {self.irreps_target})"


class ProductBasis(nn.Module):
    r"""Body-ordered features and update of a MACE layer (paper eq. 10-13).

    .. math::
        h_i^{(t+1)} = W\, \mathrm{SymmetricContraction}_{z_i}(A_i) + s_i

    Shapes: ``A`` [N, irreps_in.dim], ``species`` [N], ``s`` [N, irreps_out.dim] → [N, irreps_out.dim].
    """

    def __init__(self, irreps_in, irreps_out, correlation: int, num_elements: int):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.symmetric_contraction = SymmetricContraction(self.irreps_in, self.irreps_out, correlation, num_elements)
        self.linear = o3.Linear(self.irreps_out, self.irreps_out)

    def forward(self, A: Tensor, species: Tensor, s: Tensor) -> Tensor:
        return self.linear(self.symmetric_contraction(A, species)) + s

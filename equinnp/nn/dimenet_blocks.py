r"""DimeNet++'s embedding, interaction and output blocks (Gasteiger et al. 2020), on directed edges.

Messages live on edges ``e = (j → i)`` (``edge_index[0] = j``, ``[1] = i``), as
in ``torch_geometric.nn.models.dimenet``; layer names and shapes are PyG's, so
that a PyG ``state_dict`` maps onto these blocks one to one (the embedding table
excepted: one row per element here, one per atomic number there). σ is swish
(SiLU) throughout.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch_geometric.nn.inits import glorot_orthogonal

from equinnp.nn.scatter import scatter_sum
from equinnp.nn.triplet_contraction import TripletLayout, triplet_contract

__all__ = ["EmbeddingBlock", "ResidualLayer", "InteractionPPBlock", "OutputPPBlock"]


def _orthogonal(linear: nn.Linear) -> None:
    glorot_orthogonal(linear.weight, scale=2.0)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class EmbeddingBlock(nn.Module):
    r"""Initial messages :math:`m_{ji} = \sigma(W [h_i \| h_j \| \sigma(W_r \mathrm{RBF}(d_{ji}) + b_r)] + b)`, :math:`h = \mathrm{Emb}[Z]`.

    The bias and activation on the RBF projection are the authors' code's
    (the paper has neither). ``W`` is applied as three blocks, the two atom
    blocks once per atom and gathered per edge: the same sum as PyG's one
    [E, 3H] product, in fewer operations.

    ``h`` [N, H] replaces :math:`\mathrm{Emb}[Z]` when given (the embedding
    with the total charge/spin added, ``AtomisticModel.embed_totals``).

    Shapes: ``species`` [N], ``rbf`` [E, R], ``i``/``j`` [E] → [E, H].
    """

    def __init__(self, num_elements: int, num_radial: int, hidden_channels: int, act: Callable[[Tensor], Tensor]):
        super().__init__()
        self.act = act
        self.hidden_channels = hidden_channels
        self.emb = nn.Embedding(num_elements, hidden_channels)
        self.lin_rbf = nn.Linear(num_radial, hidden_channels)
        self.lin = nn.Linear(3 * hidden_channels, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.emb.weight, -3**0.5, 3**0.5)
        self.lin_rbf.reset_parameters()
        self.lin.reset_parameters()

    def forward(self, species: Tensor, rbf: Tensor, i: Tensor, j: Tensor, h: Optional[Tensor] = None) -> Tensor:
        H = self.hidden_channels
        h = self.emb(species) if h is None else h  # [N, H]
        w_i, w_j, w_rbf = self.lin.weight.split(H, dim=1)  # [H, H] each
        radial = self.act(self.lin_rbf(rbf))  # [E, H]
        per_atom_i, per_atom_j = h @ w_i.T, h @ w_j.T  # [N, H]
        return self.act(per_atom_i[i] + per_atom_j[j] + nn.functional.linear(radial, w_rbf, self.lin.bias))  # [E, H]


class ResidualLayer(nn.Module):
    r""":math:`x + \sigma(W_2 \sigma(W_1 x + b_1) + b_2)`. Shapes: [E, H] → [E, H]."""

    def __init__(self, hidden_channels: int, act: Callable[[Tensor], Tensor]):
        super().__init__()
        self.act = act
        self.lin1 = nn.Linear(hidden_channels, hidden_channels)
        self.lin2 = nn.Linear(hidden_channels, hidden_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _orthogonal(self.lin1)
        _orthogonal(self.lin2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.act(self.lin2(self.act(self.lin1(x))))


class InteractionPPBlock(nn.Module):
    r"""DimeNet++ interaction: directional message update over triplets ``t = (k → j → i)``.

    .. math::
        s_{kj} &= \sigma\big(W_\downarrow [\sigma(W_{kj} m_{kj} + b_{kj}) \odot W_{rbf2} W_{rbf1} \mathrm{RBF}(d_{kj})]\big) \\
        a_{ji} &= \sum_{t:\,ji(t)=ji} s_{kj} \odot W_{sbf2} W_{sbf1} \mathrm{SBF}(t) \\
        m'_{ji} &= \mathrm{Res}^{2}\Big(\sigma\big(W\, \mathrm{Res}^{1}(\sigma(W_{ji} m_{ji} + b_{ji})
                   + \sigma(W_\uparrow a_{ji})) + b\big) + m_{ji}\Big)

    with :math:`\mathrm{SBF}_{ln}(t) = \tilde u_{ln}(d_{kj}) Y_l(\alpha_t)`
    (``equinnp.nn.dimenet_basis``). Because :math:`W_{sbf1}` is linear and the
    radial part depends on the edge ``kj`` only, the projection is taken per
    edge and the angle enters last:

    .. math::
        s_{kj} \odot W_{sbf2} W_{sbf1} \mathrm{SBF}(t) = \sum_l Y_l(\alpha_t)\, M_{kj,l}, \qquad
        M_{kj,l} = s_{kj} \odot W_{sbf2} \textstyle\sum_n W_{sbf1}[:, l, n]\, \tilde u_{ln}(d_{kj})

    and the triplet sum is one batched matrix product per center atom
    (``equinnp.nn.triplet_contraction``), instead of PyG's [T, L·R] basis, two
    per-triplet matrix products and a gather of ``s`` per triplet. The sum is
    the same, in another order.

    Shapes: ``m`` [E, H], ``rbf`` [E, R], ``sbf_radial`` [E, L, R], ``dense_y`` [N, D, D·L]
    (``dense_angular`` of the [T, L] angular basis) → [E, H].
    """

    def __init__(self, hidden_channels: int, int_emb_size: int, basis_emb_size: int, num_spherical: int,
                 num_radial: int, num_before_skip: int, num_after_skip: int, act: Callable[[Tensor], Tensor]):
        super().__init__()
        self.act = act
        self.num_spherical, self.num_radial = num_spherical, num_radial
        self.lin_rbf1 = nn.Linear(num_radial, basis_emb_size, bias=False)
        self.lin_rbf2 = nn.Linear(basis_emb_size, hidden_channels, bias=False)
        self.lin_sbf1 = nn.Linear(num_spherical * num_radial, basis_emb_size, bias=False)
        self.lin_sbf2 = nn.Linear(basis_emb_size, int_emb_size, bias=False)
        self.lin_kj = nn.Linear(hidden_channels, hidden_channels)
        self.lin_ji = nn.Linear(hidden_channels, hidden_channels)
        self.lin_down = nn.Linear(hidden_channels, int_emb_size, bias=False)
        self.lin_up = nn.Linear(int_emb_size, hidden_channels, bias=False)
        self.layers_before_skip = nn.ModuleList(ResidualLayer(hidden_channels, act) for _ in range(num_before_skip))
        self.lin = nn.Linear(hidden_channels, hidden_channels)
        self.layers_after_skip = nn.ModuleList(ResidualLayer(hidden_channels, act) for _ in range(num_after_skip))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in (self.lin_rbf1, self.lin_rbf2, self.lin_sbf1, self.lin_sbf2, self.lin_kj, self.lin_ji,
                       self.lin_down, self.lin_up, self.lin):
            _orthogonal(linear)
        for layer in (*self.layers_before_skip, *self.layers_after_skip):
            layer.reset_parameters()

    def forward(self, m: Tensor, rbf: Tensor, sbf_radial: Tensor, dense_y: Tensor, layout: TripletLayout) -> Tensor:
        x_ji = self.act(self.lin_ji(m))  # [E, H]
        x_kj = self.act(self.lin_kj(m)) * self.lin_rbf2(self.lin_rbf1(rbf))  # [E, H]
        s = self.act(self.lin_down(x_kj))  # [E, I]
        w_sbf1 = self.lin_sbf1.weight.view(-1, self.num_spherical, self.num_radial)  # [B, L, R]
        projected = torch.einsum("elr,blr->elb", sbf_radial, w_sbf1)  # [E, L, B]
        M = self.lin_sbf2(projected) * s.unsqueeze(1)  # [E, L, I]
        a = triplet_contract(dense_y, M, layout)  # [E, I]
        h = x_ji + self.act(self.lin_up(a))  # [E, H]
        for layer in self.layers_before_skip:
            h = layer(h)
        h = self.act(self.lin(h)) + m
        for layer in self.layers_after_skip:
            h = layer(h)
        return h  # [E, H]


class OutputPPBlock(nn.Module):
    r"""DimeNet++ output: :math:`P_i = W \sigma(\ldots\sigma(W_1 W_\uparrow \sum_{e:\,i(e)=i} (W_{rbf} \mathrm{RBF}_e) \odot m_e + b_1)\ldots)`.

    ``num_layers`` hidden layers of width ``out_emb_channels`` with biases;
    ``lin_rbf``, ``lin_up`` and the last ``lin`` have none. ``output_initializer``
    is PyG's: ``"zeros"`` (its default and the paper's: energy 0 at
    initialisation) or ``"glorot_orthogonal"`` (the authors' code for U0).

    Shapes: ``m`` [E, H], ``rbf`` [E, R], ``i`` [E] → [N, out_channels].
    """

    def __init__(self, num_radial: int, hidden_channels: int, out_emb_channels: int, out_channels: int,
                 num_layers: int, act: Callable[[Tensor], Tensor], output_initializer: str = "zeros"):
        super().__init__()
        if output_initializer not in ("zeros", "glorot_orthogonal"):
            raise ValueError(f"output_initializer must be 'zeros' or 'glorot_orthogonal', got {output_initializer!r}")
        self.act = act
        self.output_initializer = output_initializer
        self.lin_rbf = nn.Linear(num_radial, hidden_channels, bias=False)
        self.lin_up = nn.Linear(hidden_channels, out_emb_channels, bias=False)
        self.lins = nn.ModuleList(nn.Linear(out_emb_channels, out_emb_channels) for _ in range(num_layers))
        self.lin = nn.Linear(out_emb_channels, out_channels, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _orthogonal(self.lin_rbf)
        _orthogonal(self.lin_up)
        for linear in self.lins:
            _orthogonal(linear)
        if self.output_initializer == "zeros":
            nn.init.zeros_(self.lin.weight)
        else:
            _orthogonal(self.lin)

    def forward(self, m: Tensor, rbf: Tensor, i: Tensor, num_nodes: int) -> Tensor:
        x = scatter_sum(self.lin_rbf(rbf) * m, i, num_nodes)  # [N, H]
        x = self.lin_up(x)  # [N, O]
        for linear in self.lins:
            x = self.act(linear(x))
        return self.lin(x)  # [N, out]

r"""The two halves of a MACE layer: the atomic basis (message) and the product basis (update).

After Batatia et al. 2022, "MACE: Higher Order Equivariant Message Passing
Neural Networks for Fast and Accurate Force Fields" (NeurIPS), eq. 8-13, and
Drautz 2019 (ACE). Features use e3nn's irreps layout; ``r_ij = pos[j] - pos[i]``
(equinnp's convention, ``equinnp/neighbors/conventions.md``).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from equinnp.nn.irreps import block_layout, to_components, uniform_multiplicity, uvu_instructions
from equinnp.nn.symmetric_contraction import SymmetricContraction

__all__ = ["AtomicBasis", "ProductBasis"]


class _TensorProductSpec:
    """What the atomic basis needs of an e3nn ``TensorProduct``: its paths and weight layout."""

    def __init__(self, tp: o3.TensorProduct):
        self.instructions = list(tp.instructions)
        self.irreps_in1, self.irreps_in2, self.irreps_out = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
        self.weight_numel = tp.weight_numel


def fully_connected(mlp, x: Tensor) -> Tensor:
    r"""e3nn's ``FullyConnectedNet`` (SiLU) evaluated layer by layer, SiLU written as :math:`x\,\sigma(x)`.

    Each layer is :math:`x W / \sqrt{h_\text{in} v_\text{in}}`, then (hidden layers) the
    second-moment-normalized activation :math:`c\,\phi` and a factor :math:`\sqrt{v_\text{out}}`;
    the last layer is :math:`x W \sqrt{v_\text{out} / (h_\text{in} v_\text{in})}`. Same numbers
    as ``mlp(x)``; unlike ``torch.nn.functional.silu`` this SiLU has forward-mode derivatives of
    every order (``torch.func.jvp`` nested, as the radial table builder uses it).
    Shapes: ``x`` [E, hs[0]] → [E, hs[-1]].
    """
    for layer in mlp:
        if layer.act is None:
            x = x @ (layer.weight / (layer.h_in * layer.var_in / layer.var_out) ** 0.5)
            continue
        if layer.act.f is not torch.nn.functional.silu:
            raise TypeError(f"fully_connected evaluates SiLU layers only, got the activation {layer.act.f!r}")
        x = x @ (layer.weight / (layer.h_in * layer.var_in) ** 0.5)
        x = x * torch.sigmoid(x)
        if not layer.act._is_id:
            x = x * layer.act.cst
        x = x * layer.var_out**0.5
    return x


class AtomicBasis(MessagePassing):
    r"""One-particle basis :math:`A_i` of a MACE layer, with its element-dependent connection.

    .. math::
        M_{i,k l_3 m_3} = \frac{1}{\bar n} \sum_{\tilde k} W_{k \tilde k l_3}
            \sum_{j \in \mathcal{N}(i)} \sum_{l_1 m_1 l_2 m_2}
            C^{l_3 m_3}_{l_1 m_1, l_2 m_2}\,
            R_{\tilde k, l_1 l_2 l_3}(r_{ij})\, Y^{m_1}_{l_1}(\hat r_{ij})\, (U h_j)_{\tilde k l_2 m_2}

    :math:`R` is an MLP (SiLU) of the radial basis, giving one weight per channel
    and path of the channel-wise ("uvu") tensor product; :math:`\bar n` is the
    average number of neighbors; the sum over j is the "add" aggregation. The
    element-dependent map :math:`\mathrm{FCTP}(\cdot, \delta_{z_i})` (a linear
    map of the channels per irrep and element) is used in one of two ways:

    - ``residual=True`` (mace-torch's ``RealAgnosticResidualInteractionBlock``):
      :math:`A_i = M_i` and a residual :math:`s_i = \mathrm{FCTP}(h_i, \delta_{z_i})`
      of the input features, added after the product basis;
    - ``residual=False`` (mace-torch's ``RealAgnosticInteractionBlock``):
      :math:`A_i = \mathrm{FCTP}(M_i, \delta_{z_i})` and no residual (``s = None``).
      An atom without neighbors then has :math:`A_i = 0`.

    Parameters
    ----------
    irreps_node : o3.Irreps
        Irreps of :math:`h_j` (e.g. ``128x0e`` in the first layer).
    irreps_sh : o3.Irreps
        Spherical harmonics of the edge direction.
    irreps_target : o3.Irreps
        Irreps of :math:`A_i` (e.g. ``128x0e+128x1o+128x2e+128x3o``).
    irreps_skip : o3.Irreps or None
        Irreps of the residual :math:`s_i` (the layer's hidden irreps); unused
        (may be None) when ``residual`` is False.
    num_elements : int
        Size of the element one-hot.
    num_radial : int
        Size of the radial basis.
    radial_mlp : list of int
        Hidden widths of :math:`R`.
    residual : bool
        Residual connection of the input features (True) or element-dependent
        map of the message (False), see above.

    Shapes: ``h`` [N, irreps_node.dim], ``node_attrs`` [N, num_elements],
    ``edge_sh`` [E, irreps_sh.dim], ``edge_radial`` [E, num_radial] →
    ``A`` [D_target, N, C] (component-major, ``equinnp.nn.irreps.to_components``),
    ``s`` [N, irreps_skip.dim] or None. Messages are component-major [D_mid, E, C] so that
    every Clebsch-Gordan contraction is one matrix product over all edges and channels.
    """

    def __init__(
        self,
        irreps_node,
        irreps_sh,
        irreps_target,
        irreps_skip,
        num_elements: int,
        num_radial: int,
        radial_mlp: List[int],
        residual: bool = True,
    ):
        super().__init__(aggr="add", node_dim=-2)  # features are component-major [D, N, C]
        self.irreps_node, self.irreps_sh = o3.Irreps(irreps_node), o3.Irreps(irreps_sh)
        self.irreps_target = o3.Irreps(irreps_target)
        self.residual = bool(residual)
        self.channels = uniform_multiplicity(self.irreps_node)
        elements = o3.Irreps(f"{num_elements}x0e")
        if self.residual:
            self.irreps_skip = o3.Irreps(irreps_skip)
            self.skip_tp = o3.FullyConnectedTensorProduct(self.irreps_node, elements, self.irreps_skip)
        else:
            self.irreps_skip = None
            self.skip_tp = o3.FullyConnectedTensorProduct(self.irreps_target, elements, self.irreps_target)
        self.linear_up = o3.Linear(self.irreps_node, self.irreps_node)
        self.irreps_mid, self.instructions = uvu_instructions(self.irreps_node, self.irreps_sh, self.irreps_target)
        # e3nn's TensorProduct with these instructions defines the paths, their normalization
        # and the weight layout; this block evaluates it on component-major features (same
        # numbers, see tests) and keeps only its description, not the module.
        self.conv_tp = _TensorProductSpec(
            o3.TensorProduct(self.irreps_node, self.irreps_sh, self.irreps_mid, self.instructions, shared_weights=False, internal_weights=False)
        )
        self.radial_mlp = e3nn_nn.FullyConnectedNet([num_radial] + list(radial_mlp) + [self.conv_tp.weight_numel], torch.nn.functional.silu)
        self.linear = o3.Linear(self.irreps_mid, self.irreps_target)
        self._plan_message()
        self._plan_linear()
        if not self.residual:
            self._plan_element_map()

    def _plan_message(self) -> None:
        groups = {}
        for p, ins in enumerate(self.conv_tp.instructions):
            groups.setdefault((ins.i_in1, ins.i_in2), []).append((p, ins))
        self._message_groups, self._exact = [], {}
        for n, ((i1, i2), members) in enumerate(groups.items()):
            l1, l2 = self.irreps_node[i1].ir.l, self.irreps_sh[i2].ir.l
            cgs = [o3.wigner_3j(l1, l2, self.conv_tp.irreps_out[ins.i_out].ir.l, dtype=torch.float64) * ins.path_weight for _, ins in members]
            self._exact[f"cg_{n}"] = torch.cat(cgs, dim=-1).reshape((2 * l1 + 1) * (2 * l2 + 1), -1)  # [d1*d2, Σ d3]
            self.register_buffer(f"cg_{n}", self._exact[f"cg_{n}"].to(torch.get_default_dtype()), persistent=False)
            diagonal = []  # with a scalar factor the coupling is c * identity: keep c
            for cg in cgs:
                d3 = cg.shape[-1]
                flat = cg.reshape(-1, d3)
                c = flat[0, 0].item()
                diagonal.append(c if (l1 == 0 or l2 == 0) and torch.allclose(flat, c * torch.eye(d3, dtype=torch.float64), atol=1e-14) else None)
            self._message_groups.append(
                (i1, i2, f"cg_{n}", [(p, self.conv_tp.irreps_out[ins.i_out].ir.dim, c) for (p, ins), c in zip(members, diagonal)])
            )
        self._node_dims = [ir.dim for _, ir in self.irreps_node]
        self._node_layout = block_layout(self.irreps_node)  # ints for the forward pass (torch.compile guards)
        self._sh_dims = [ir.dim for _, ir in self.irreps_sh]
        self._num_paths = len(self.conv_tp.instructions)
        # For the fused neighbor sum: paths grouped by harmonic degree, with their CG columns.
        node_offsets = [sum(self._node_dims[:k]) for k in range(len(self._node_dims) + 1)]
        self._node_offsets_list = node_offsets[:-1]
        self._by_harmonic = {}
        for i1, i2, cg_name, members in self._message_groups:
            start = 0
            for p, d3, _ in members:
                self._by_harmonic.setdefault(i2, []).append((p, node_offsets[i1], self._node_dims[i1], cg_name, start, start + d3))
                start += d3

    def _plan_linear(self) -> None:
        self._linear_blocks = []  # per target block: [(weight offset, mid block, path weight)]
        offset = 0
        per_target = {k: [] for k in range(len(self.irreps_target))}
        for ins in self.linear.instructions:
            per_target[ins.i_out].append((offset, ins.i_in, ins.path_weight))
            offset += ins.path_shape[0] * ins.path_shape[1]
        self._linear_blocks = [per_target[k] for k in range(len(self.irreps_target))]
        mid_dims = [ir.dim for _, ir in self.conv_tp.irreps_out]
        self._mid_offsets = [sum(mid_dims[:k]) for k in range(len(mid_dims) + 1)]
        self._mid_dims = mid_dims

    def _plan_element_map(self) -> None:
        """Weight offset and coefficient of each path (irrep of A) x (element one-hot) -> same irrep of ``skip_tp``."""
        self._element_blocks = []  # per target block: (weight offset, coefficient)
        offset, C, K = 0, self.channels, self.skip_tp.irreps_in2.dim
        for k, ins in enumerate(self.skip_tp.instructions):
            assert (ins.i_in1, ins.i_in2, ins.i_out, ins.connection_mode) == (k, 0, k, "uvw")
            l = self.irreps_target[k].ir.l
            cg = (o3.wigner_3j(l, 0, l, dtype=torch.float64) * ins.path_weight).reshape(2 * l + 1, 2 * l + 1)
            c = cg[0, 0].item()  # (l x 0 -> l) couples m to m: c * identity
            assert torch.allclose(cg, c * torch.eye(2 * l + 1, dtype=torch.float64), atol=1e-14)
            self._element_blocks.append((offset, c))
            offset += C * K * C
        self._target_dims = [ir.dim for _, ir in self.irreps_target]

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        with torch.no_grad():  # exact coefficients after a dtype change
            for name, value in self._exact.items():
                getattr(self, name).copy_(value)
        return self

    def forward(
        self,
        h: Tensor,
        node_attrs: Tensor,
        edge_index: Tensor,
        edge_sh: Tensor,
        edge_radial: Tensor,
        avg_num_neighbors: Tensor,
        species: Optional[Tensor] = None,
        radial_weights: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Returns ``A`` component-major [D_target, N, C] and ``s`` [N, irreps_skip.dim] (e3nn layout), or None.

        ``species`` [N] (optional): the element index of each atom, i.e. ``node_attrs``
        is its one-hot; lets the element map select weights instead of multiplying
        by the one-hot (same numbers). ``radial_weights`` [E, paths*C] (optional): the
        radial MLP's output, given (by a table) instead of computed from ``edge_radial``.
        """
        s = self.skip_tp(h, node_attrs) if self.residual else None  # [N, irreps_skip.dim]
        h = to_components(self.linear_up(h), self._node_layout)  # [D_node, N, C]
        weights = self.radial_mlp(edge_radial) if radial_weights is None else radial_weights  # [E, paths*C]
        message = self.propagate(edge_index, h=h, edge_sh=edge_sh, weights=weights)  # [D_mid, N, C]
        A = self._mix(message) / avg_num_neighbors  # [D_target, N, C]
        if not self.residual:
            A = self._element_map(A, node_attrs, species)
        return A, s

    def _element_map(self, A: Tensor, node_attrs: Tensor, species: Optional[Tensor] = None) -> Tensor:
        """e3nn's ``skip_tp(A, node_attrs)`` (irreps_target x elements -> irreps_target) on component-major A [D, N, C].

        Per irrep block: ``x @ W`` for every element at once ([d, N, K, C]), then the
        atom's own element is selected (one-hot ``node_attrs``, given ``species``) or
        the elements are summed with the weights ``node_attrs`` (any attributes).
        """
        N, C = A.shape[1], self.channels
        K = node_attrs.shape[1]
        weight = self.skip_tp.weight
        rows = None if species is None else torch.arange(N, device=A.device) * K + species  # [N] in the [N*K] rows
        blocks = []
        for x, (offset, c) in zip(torch.split(A, self._target_dims, dim=0), self._element_blocks):
            W = (weight[offset : offset + C * K * C].view(C, K, C) * c).view(C, K * C)  # weight layout (u, element, w)
            y = x @ W  # [d, N, K*C]
            if rows is None:
                blocks.append(torch.einsum("dnkc,nk->dnc", y.view(-1, N, K, C), node_attrs))  # [d, N, C]
            else:
                blocks.append(y.view(-1, N * K, C).index_select(1, rows))  # [d, N, C]
        return torch.cat(blocks, dim=0)  # [D_target, N, C]

    def message(self, h_j: Tensor, edge_sh: Tensor, weights: Tensor) -> Tensor:
        E, C = h_j.shape[1], self.channels
        weights = weights.view(E, self._num_paths, C).transpose(0, 1).unbind(0)  # paths x [E, C]
        blocks = torch.split(h_j, self._node_dims, dim=0)  # [2l+1, E, C] per input irrep
        sh = torch.split(edge_sh.t(), self._sh_dims, dim=0)  # [2l+1, E] per harmonic degree
        out = [None] * self._num_paths
        for i1, i2, cg_name, members in self._message_groups:
            x, y = blocks[i1], sh[i2]  # [d1, E, C], [d2, E]
            if all(c is not None for _, _, c in members):  # a scalar factor: no outer product
                for p, d3, c in members:
                    if x.shape[0] == 1:
                        out[p] = y.unsqueeze(-1) * (x[0] * weights[p] * c)  # [d3, E, C]
                    else:
                        out[p] = x * (y[0].unsqueeze(-1) * weights[p] * c)  # [d3, E, C]
                continue
            outer = (x.unsqueeze(1) * y.view(1, -1, E, 1)).reshape(-1, E * C)  # [d1*d2, E*C]
            coupled = getattr(self, cg_name).t() @ outer  # [Σ d3, E*C]
            for (p, d3, _), block in zip(members, torch.split(coupled, [d for _, d, _ in members], dim=0)):
                out[p] = block.view(d3, E, C) * weights[p]  # [d3, E, C]
        return torch.cat(out, dim=0)  # [D_mid, E, C]

    def message_and_aggregate(self, adj_t: Tensor, h: Tensor, edge_sh: Tensor, weights: Tensor) -> Tensor:
        r"""The neighbor sum without per-edge outputs: for every path,

        .. math:: A_{i,c k} = \sum_{m_1 m_2} C_{m_1 m_2 k} \sum_j (w_{ij,c} h_{j,c m_1})\, Y_{ij,m_2}

        the inner sum is one batched matrix product over a padded [N, K] neighbor
        table (K the largest degree); the Clebsch-Gordan contraction runs per atom.
        ``adj_t`` is the CSR adjacency (rows: centers i, columns: neighbors j), with
        ``edge_sh`` and ``weights`` in its edge order. Gives the same numbers as
        :meth:`message` followed by the "add" aggregation.
        """
        rowptr, col = adj_t.crow_indices(), adj_t.col_indices()
        N, E, C = rowptr.numel() - 1, col.numel(), self.channels
        if E == 0:
            return h.new_zeros(self._mid_offsets[-1], N, C)
        degree = rowptr[1:] - rowptr[:-1]  # [N]
        K = int(degree.max())
        row = torch.repeat_interleave(torch.arange(N, device=col.device), degree)  # [E]
        flat = row * K + torch.arange(E, device=col.device) - rowptr[row]  # [E] slot in the [N*K] table
        sender = torch.full((N * K,), N, dtype=col.dtype, device=col.device).index_copy_(0, flat, col)  # N = empty slot
        nodes = torch.cat([h.permute(1, 0, 2), h.new_zeros(1, h.shape[0], C)], dim=0)  # [N+1, D_node, C]
        h_pad = nodes[sender]  # [N*K, D_node, C]
        w_pad = weights.new_zeros(N * K, weights.shape[1]).index_copy_(0, flat, weights).view(N * K, self._num_paths, C)
        y_pad = edge_sh.new_zeros(N * K, edge_sh.shape[1]).index_copy_(0, flat, edge_sh)  # [N*K, S]
        y_blocks = torch.split(y_pad, self._sh_dims, dim=1)  # [N*K, 2l+1] per degree

        # split/unbind, not slicing: their backward is one concatenation, not a zero-filled copy per slice
        h_blocks = dict(zip(self._node_offsets_list, torch.split(h_pad, self._node_dims, dim=1)))  # [N*K, 2l+1, C] each
        w_paths = w_pad.unbind(1)  # paths x [N*K, C]
        out = [None] * self._num_paths
        for i2, paths in self._by_harmonic.items():
            d2 = self._sh_dims[i2]
            hw = torch.cat([h_blocks[o] * w_paths[p].unsqueeze(1) for p, o, _, _, _, _ in paths], dim=1)  # [N*K, Σd1, C]
            rows = hw.shape[1]
            Z = torch.bmm(hw.view(N, K, rows * C).transpose(1, 2), y_blocks[i2].reshape(N, K, d2))  # [N, Σd1*C, d2]
            Z_paths = torch.split(Z.view(N, rows, C, d2), [d1 for _, _, d1, _, _, _ in paths], dim=1)  # [N, d1, C, d2] each
            for (p, _, d1, cg_name, c0, c1), Zp in zip(paths, Z_paths):
                cg = getattr(self, cg_name).view(d1, d2, -1)[:, :, c0:c1]  # [d1, d2, d3]
                out[p] = torch.einsum("nicj,ijk->knc", Zp, cg)  # [d3, N, C]
        return torch.cat(out, dim=0)  # [D_mid, N, C]

    def _mix(self, message: Tensor) -> Tensor:
        """The e3nn ``o3.Linear`` (irreps_mid → target) on component-major features."""
        N, C = message.shape[1], self.channels
        weight = self.linear.weight
        blocks = []
        mid = torch.split(message, self._mid_dims, dim=0)  # [2l+1, N, C] per path
        for members in self._linear_blocks:
            x = torch.cat([mid[i] for _, i, _ in members], dim=-1)  # [d, N, C*n]
            W = torch.cat([weight[o : o + C * C].view(C, C) * pw for o, _, pw in members], dim=0)  # [C*n, C]
            blocks.append(x @ W)  # [d, N, C]
        return torch.cat(blocks, dim=0)  # [D_target, N, C]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_node} x {self.irreps_sh} -> {self.irreps_target})"


class ProductBasis(nn.Module):
    r"""Body-ordered features and update of a MACE layer (paper eq. 10-13).

    .. math::
        h_i^{(t+1)} = W\, \mathrm{SymmetricContraction}_{z_i}(A_i) + s_i

    with :math:`s_i` the atomic basis' residual, or nothing where that block has none.

    Shapes: ``A`` [D, N, C] (component-major), ``species`` [N], ``s`` [N, irreps_out.dim] or None → [N, irreps_out.dim].
    """

    def __init__(self, irreps_in, irreps_out, correlation: int, num_elements: int):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.symmetric_contraction = SymmetricContraction(self.irreps_in, self.irreps_out, correlation, num_elements)
        self.linear = o3.Linear(self.irreps_out, self.irreps_out)

    def forward(self, A: Tensor, species: Tensor, s: Optional[Tensor] = None) -> Tensor:
        """``A`` component-major [D, N, C]."""
        h = self.linear(self.symmetric_contraction.contract(A, species))
        return h if s is None else h + s

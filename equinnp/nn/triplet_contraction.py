r"""The triplet sum of DimeNet++ as one batched matrix product per center atom.

DimeNet++'s directional message (``equinnp.nn.dimenet_blocks``) is, for each
edge ``ji``, a sum over its triplets ``t = (kj, ji)`` of an angular weight
``Y[t, l]`` times a per-edge tensor ``M[kj, l, c]``:

.. math::
    a_{ji,c} = \sum_{t:\, ji(t) = ji} \sum_l Y_{t,l}\, M_{kj(t),l,c}

All triplets of ``ji`` meet at its source atom ``j``, and their edges ``kj`` are
the edges into ``j``; the edge ``ji`` itself is known at ``j`` by its reverse
``ij``, also an edge into ``j``. Numbering the edges into each atom
``0 .. deg(j) - 1`` (a *slot*), the sum is, per atom ``j``, a product of a
[D, D·L] matrix of angular weights (row: the slot of ``ij``, column: the slot of
``kj`` and ``l``) with the [D·L, C] matrix of ``M`` of the edges into ``j``, D
the largest in-degree of the batch. The back-tracking pair (``kj = ij``, the
diagonal) and the padding hold zeros.

Compared with gathering ``M[kj]`` per triplet ([T, L, C] numbers moved and, for
autograd, kept), this moves the [T, L] angular weights once and lets BLAS do
the products; autograd keeps the two dense operands ([N, D, D·L] and
[N, D·L, C]), about ``T·L + E·L·C`` numbers, and derivatives of every order
(forces, force training, Hessians) are those of ordinary PyTorch operations.
The padding costs ``N·D² - (T + E)`` zeros where in-degrees differ.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from equinnp.neighbors.triplets import Triplets

__all__ = ["TripletLayout", "triplet_layout", "dense_angular", "triplet_contract"]


class TripletLayout(NamedTuple):
    """Where each edge and triplet sits in the per-atom dense blocks.

    Attributes
    ----------
    num_nodes, max_degree : int
        N and D (largest number of edges into one atom).
    edge_slot : Tensor, [E] long
        ``target(e) * D + slot(e)``: row of edge ``e`` among the edges into its target.
    out_slot : Tensor, [E] long
        ``source(e) * D + slot(reverse(e))``: row of edge ``e`` = (j → i) at its source j.
    triplet_slot : Tensor, [T] long
        ``(j * D + slot(ij)) * D + slot(kj)`` for each triplet.
    """

    num_nodes: int
    max_degree: int
    edge_slot: Tensor
    out_slot: Tensor
    triplet_slot: Tensor


def triplet_layout(edge_index: Tensor, reverse_edge: Tensor, triplets: Triplets, num_nodes: int) -> TripletLayout:
    """Slots of edges and triplets in the per-atom blocks (module docstring).

    Shapes: ``edge_index`` [2, E], ``reverse_edge`` [E], ``triplets`` with [T] indices.
    """
    src, dst = edge_index[0], edge_index[1]
    E = src.numel()
    in_degree = torch.bincount(dst, minlength=num_nodes)  # [N]
    D = int(in_degree.max()) if E else 0
    by_target = torch.argsort(dst, stable=True)  # [E]
    first_in = torch.cumsum(in_degree, 0) - in_degree  # [N]
    slot = torch.empty_like(dst)
    slot[by_target] = torch.arange(E, device=dst.device) - first_in[dst[by_target]]  # [E] position among edges into target
    edge_slot = dst * D + slot  # [E]
    out_slot = src * D + slot[reverse_edge]  # [E]
    idx_kj, idx_ji = triplets.idx_kj, triplets.idx_ji
    triplet_slot = out_slot[idx_ji] * D + slot[idx_kj]  # [T]
    return TripletLayout(num_nodes, D, edge_slot, out_slot, triplet_slot)


def dense_angular(angular: Tensor, layout: TripletLayout) -> Tensor:
    """Angular weights ``Y`` [T, L] placed in the per-atom blocks → [N, D, D·L] (zeros elsewhere)."""
    N, D = layout.num_nodes, layout.max_degree
    L = angular.shape[1]
    dense = angular.new_zeros((N * D * D, L))
    dense = dense.index_put((layout.triplet_slot,), angular)  # [N·D·D, L]
    return dense.view(N, D, D * L)


def triplet_contract(dense_y: Tensor, M: Tensor, layout: TripletLayout) -> Tensor:
    r""":math:`a_{ji,c} = \sum_{t:\,ji(t)=ji} \sum_l Y_{t,l} M_{kj(t),l,c}`.

    Shapes: ``dense_y`` [N, D, D·L] (``dense_angular``), ``M`` [E, L, C] → [E, C].
    """
    N, D = layout.num_nodes, layout.max_degree
    E, L, C = M.shape
    if E == 0 or D == 0:
        return M.new_zeros((E, C))
    blocks = M.new_zeros((N * D, L, C)).index_put((layout.edge_slot,), M)  # [N·D, L, C]
    per_atom = torch.bmm(dense_y, blocks.view(N, D * L, C))  # [N, D, C]
    return per_atom.view(N * D, C)[layout.out_slot]  # [E, C]

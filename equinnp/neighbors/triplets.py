"""Triplets k → j → i of a directed neighbor list, for angle-based message passing (DimeNet++).

A triplet joins two edges that meet at atom j: ``kj = (k → j)`` and ``ji = (j → i)``.
Every edge into j pairs with every edge out of j, except the one that goes
straight back: the reverse of ``ji``, which is the edge ``(i → j, -shift_ji)``.
Only that edge is excluded, compared by edge (atom index *and* periodic image),
never every ``k`` with the same atom index as ``i``: in a periodic cell smaller
than twice the cutoff, atom ``k = i`` through another image is a real third atom
and its triplet is kept. Without periodicity the two rules agree.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["Triplets", "triplets"]


class Triplets(NamedTuple):
    """Edge indices of every triplet ``t = (k → j → i)``, ordered by ``ji``, then by ``kj``.

    Attributes
    ----------
    idx_kj : Tensor, [T] long
        The edge ``k → j`` of each triplet.
    idx_ji : Tensor, [T] long
        The edge ``j → i`` of each triplet (non-decreasing).
    """

    idx_kj: Tensor
    idx_ji: Tensor

    @property
    def num_triplets(self) -> int:
        return self.idx_kj.numel()


def triplets(edge_index: Tensor, reverse_edge: Tensor, num_nodes: int) -> Triplets:
    r"""All triplets ``k → j → i`` of a neighbor list, in time and memory linear in their number.

    .. math::
        \mathcal{T} = \{(kj, ji) : \mathrm{dst}(kj) = \mathrm{src}(ji),\ kj \neq \mathrm{rev}(ji)\}

    The edges into each atom are grouped once (a stable sort by target atom,
    ``O(E log E)``); each edge ``ji`` then takes the block of edges into its
    source ``j``, minus its own reverse edge.

    Parameters
    ----------
    edge_index : Tensor, [2, E] long
        ``edge_index[0] = j`` (source), ``edge_index[1] = i`` (target).
    reverse_edge : Tensor, [E] long
        Index of each edge's reverse (``equinnp.neighbors.reverse.reverse_edges``;
        ``Graph.reverse_edge``), exact through periodic images.
    num_nodes : int
        Number of atoms N.

    Returns
    -------
    Triplets
        ``idx_kj``, ``idx_ji`` of shape [T].
    """
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if reverse_edge.shape != (edge_index.shape[1],):
        raise ValueError(
            f"reverse_edge must have shape [E] = [{edge_index.shape[1]}], got {tuple(reverse_edge.shape)}"
        )
    src, dst = edge_index[0], edge_index[1]  # j, i
    E = src.numel()
    by_target = torch.argsort(dst, stable=True)  # [E] edges grouped by target atom
    in_degree = torch.bincount(dst, minlength=num_nodes)  # [N]
    first_in = torch.cumsum(in_degree, 0) - in_degree  # [N] start of each atom's block in by_target
    candidates = in_degree[src]  # [E] edges k -> j for each edge j -> i, the reverse included
    idx_ji = torch.repeat_interleave(torch.arange(E, device=src.device), candidates)  # [T + E']
    block_start = torch.cumsum(candidates, 0) - candidates  # [E]
    offset = torch.arange(idx_ji.numel(), device=src.device) - block_start[idx_ji]  # [T + E']
    idx_kj = by_target[first_in[src[idx_ji]] + offset]  # [T + E']
    keep = idx_kj != reverse_edge[idx_ji]  # drop only the back-tracking edge
    return Triplets(idx_kj=idx_kj[keep], idx_ji=idx_ji[keep])

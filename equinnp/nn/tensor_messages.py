r"""Channel-weighted message passing of irreps tensors, in edge chunks.

TensorNet's messages (Simeon & De Fabritiis, NeurIPS 2023, eq. 8)

.. math:: M_i = \sum_{e:\,i_e = i} w_e^{(I)} \circ I(Y_{j_e}) + w_e^{(A)} \circ A(Y_{j_e}) + w_e^{(S)} \circ S(Y_{j_e})

are a gather, a product and a scatter of [E, 9, F] tensors: on a CPU their cost
is memory traffic. :func:`weighted_aggregate` evaluates the same sum over
chunks of edges (bounded temporaries), and never stores a per-edge
[E, 9, F] tensor. Its derivative is again a :func:`weighted_aggregate` (for
``y``, with gather and scatter indices swapped) and an :func:`edge_inner` (for
``w``), and vice versa, so derivatives of every order (forces, and force
training with ``create_graph=True``) go through the same chunked code.

Shapes: node tensors ``[N, 9, F]`` (irreps coefficients of I | A | S in slices
0, 1..3, 4..8), edge weights ``[E, 3, F]`` (one per part), indices ``[E]``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ["EdgeSet", "PairMap", "reverse_pairs", "per_edge", "weighted_aggregate", "edge_inner", "segment_sum"]

_CHUNK_BYTES = 1 << 22  # 4 MB of gathered rows per chunk (measured on an idle CPU: 8-16 MB chunks lose the cache)


def _chunk(x: Tensor) -> int:
    return max(64, _CHUNK_BYTES // max(1, x[0].numel() * x.element_size()))


def _aggregate(y: Tensor, w: Tensor, src: Tensor, dst: Tensor, order, num_out: int) -> Tensor:
    # Edges are visited in ``order`` (ascending ``dst``), so that each chunk adds
    # into a contiguous block of output rows. Gathers and sums run on flat
    # [rows, 9 * F] views: one contiguous row copy and one row add per edge.
    F = y.shape[-1]
    out = y.new_zeros((num_out,) + tuple(y.shape[1:]))  # [num_out, 9, F]
    flat_out, flat_y = out.view(num_out, 9 * F), y.reshape(y.shape[0], 9 * F)  # [num_out, 9F], [N, 9F]
    step = _chunk(y)
    for start in range(0, src.shape[0], step):
        if order is None:
            s = slice(start, start + step)
            chunk_src, chunk_dst, ws = src[s], dst[s], w[s]
        else:
            e = order[start : start + step]
            chunk_src, chunk_dst, ws = src[e], dst[e], w.index_select(0, e)
        flat_rows = flat_y.index_select(0, chunk_src)  # [c, 9F]
        rows = flat_rows.view(-1, 9, F)  # [c, 9, F]
        rows[:, 0:1].mul_(ws[:, 0:1])
        rows[:, 1:4].mul_(ws[:, 1:2])
        rows[:, 4:9].mul_(ws[:, 2:3])
        flat_out.index_add_(0, chunk_dst, flat_rows)
    return out


def _inner(a: Tensor, b: Tensor, ia: Tensor, ib: Tensor) -> Tensor:
    E, F = ia.shape[0], a.shape[-1]
    out = a.new_empty((E, 3, F))  # [E, 3, F]
    flat_a, flat_b = a.reshape(a.shape[0], 9 * F), b.reshape(b.shape[0], 9 * F)  # [Na, 9F], [Nb, 9F]
    step = _chunk(a)
    for start in range(0, E, step):
        s = slice(start, start + step)
        prod = flat_a.index_select(0, ia[s]).mul_(flat_b.index_select(0, ib[s])).view(-1, 9, F)  # [c, 9, F]
        part = out[s]  # [c, 3, F]; sums as chains of row adds (faster than strided reductions)
        part[:, 0] = prod[:, 0]
        torch.add(prod[:, 1], prod[:, 2], out=part[:, 1]).add_(prod[:, 3])
        torch.add(prod[:, 4], prod[:, 5], out=part[:, 2]).add_(prod[:, 6]).add_(prod[:, 7]).add_(prod[:, 8])
    return out


class EdgeSet(NamedTuple):
    """Directed edges ``src → dst`` with the permutations that sort them by ``dst`` and by ``src``.

    ``None`` for a permutation means the edges are already in that order. The
    permutations are the orders in which the sums visit the edges (each chunk
    then adds into a contiguous block of output rows); any order gives the
    same sums up to rounding.
    Shapes: four [E] long tensors (or None).
    """

    src: Tensor
    dst: Tensor
    by_dst: Optional[Tensor]
    by_src: Optional[Tensor]

    @classmethod
    def from_index(cls, src: Tensor, dst: Tensor) -> "EdgeSet":
        by_dst = None if bool((dst[1:] >= dst[:-1]).all()) else torch.argsort(dst, stable=True)
        by_src = None if bool((src[1:] >= src[:-1]).all()) else torch.argsort(src, stable=True)
        return cls(src, dst, by_dst, by_src)

    @classmethod
    def from_reverse(cls, src: Tensor, dst: Tensor, reverse_edge: Tensor) -> "EdgeSet":
        """Edges sorted by ``dst`` (then ``src``), with the index of each one's reverse edge.

        Taken in edge order, the reverse edges are sorted by ``src`` (``src[reverse_edge] == dst``),
        so no sort is needed.
        """
        return cls(src, dst, None, reverse_edge)

    def reversed(self) -> "EdgeSet":
        return EdgeSet(self.dst, self.src, self.by_src, self.by_dst)


class _WeightedAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, w, edges, num_out, symmetric):
        ctx.save_for_backward(y, w)
        ctx.edges, ctx.symmetric = edges, symmetric
        return _aggregate(y, w, edges.src, edges.dst, edges.by_dst, num_out)

    @staticmethod
    def backward(ctx, grad):
        y, w = ctx.saved_tensors
        edges = ctx.edges
        grad_y = grad_w = None
        if ctx.needs_input_grad[0]:
            if ctx.symmetric:  # the reversed sum is the same sum over the reversed edges
                grad_y = weighted_aggregate(grad, w, edges, y.shape[0], symmetric=True)
            else:
                grad_y = weighted_aggregate(grad, w, edges.reversed(), y.shape[0])
        if ctx.needs_input_grad[1]:
            grad_w = edge_inner(grad, y, edges.reversed())
        return grad_y, grad_w, None, None, None


class _EdgeInner(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, edges):
        ctx.save_for_backward(a, b)
        ctx.edges = edges
        return _inner(a, b, edges.src, edges.dst)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved_tensors
        edges = ctx.edges  # a is read at edges.src, b at edges.dst
        grad_a = weighted_aggregate(b, grad, edges.reversed(), a.shape[0]) if ctx.needs_input_grad[0] else None
        grad_b = weighted_aggregate(a, grad, edges, b.shape[0]) if ctx.needs_input_grad[1] else None
        return grad_a, grad_b, None


def weighted_aggregate(y: Tensor, w: Tensor, edges: EdgeSet, num_out: int, symmetric: bool = False) -> Tensor:
    r""":math:`\mathrm{out}_n = \sum_{e:\,\mathrm{dst}_e = n} w_e \circ y_{\mathrm{src}_e}`, part by part.

    ``symmetric=True`` promises that every edge's reverse is in ``edges`` with
    the same weight (as for weights that depend on the distance only); the
    derivative for ``y`` then reuses the ``dst`` order instead of a ``src`` sort.

    Shapes: ``y`` [N, 9, F], ``w`` [E, 3, F], ``edges`` of E edges → [num_out, 9, F].
    """
    return _WeightedAggregate.apply(y, w, edges, num_out, symmetric)


def edge_inner(a: Tensor, b: Tensor, edges: EdgeSet) -> Tensor:
    r""":math:`g_e = \sum_{k \in \mathrm{part}} a_{\mathrm{src}_e, k} \circ b_{\mathrm{dst}_e, k}` for the parts I, A, S.

    Shapes: ``a`` [Na, 9, F], ``b`` [Nb, 9, F], ``edges`` of E edges → [E, 3, F].
    """
    return _EdgeInner.apply(a, b, edges)


class _SegmentSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, index, order, dim_size):
        ctx.save_for_backward(index)
        rows, sorted_index = (src, index) if order is None else (src.index_select(0, order), index[order])
        flat = rows.reshape(rows.shape[0], math.prod(src.shape[1:]))  # [E, prod(rest)]
        out = flat.new_zeros((dim_size, flat.shape[1]))
        return out.index_add_(0, sorted_index, flat).view((dim_size,) + tuple(src.shape[1:]))

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved_tensors
        flat = grad.reshape(grad.shape[0], math.prod(grad.shape[1:]))  # rows gathered as flat, contiguous copies
        return flat.index_select(0, index).view((index.shape[0],) + tuple(grad.shape[1:])), None, None, None


def segment_sum(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    """Sum rows of ``src`` into ``dim_size`` bins by ``index`` (rows visited in ``index`` order, added as flat rows).

    Shapes: ``src`` [E, ...], ``index`` [E] → [dim_size, ...].
    """
    order = None if bool((index[1:] >= index[:-1]).all()) else torch.argsort(index, stable=True)
    return _SegmentSum.apply(src, index, order, dim_size)


class PairMap(NamedTuple):
    """Each undirected atom pair (P = E / 2) as its two directed edges.

    ``first``, ``second`` [P]: the two edges of each pair; ``pair`` [E]: the pair of each edge.
    """

    first: Tensor
    second: Tensor
    pair: Tensor


def reverse_pairs(reverse_edge: Tensor) -> PairMap:
    """Pair each edge j→i with its reverse i→j, to evaluate functions of the distance once per pair.

    ``reverse_edge`` [E] is the index of each edge's reverse (``Graph.reverse_edge``:
    the edge i→j with the opposite periodic shift). It tells apart the several
    images that join two atoms in a small periodic cell, and pairs an atom's
    edge to its own image at shift S with the one at -S. Pairs are numbered in
    the order of their first edge (``first < second``).

    ``g(length[first])[pair] == g(length)`` because both directions have
    bitwise the same length (``r_ji = -r_ij`` is exact in floating point), and
    the gradient reaching ``length[first]`` is the sum over both edges, as the
    two lengths are the same function of the positions.

    Raises
    ------
    ValueError
        If ``reverse_edge`` is not a pairing (some edge is its own reverse, or
        the reverse of its reverse is another edge).
    """
    E = reverse_edge.shape[0]
    index = torch.arange(E, device=reverse_edge.device)  # [E]
    if not bool(((reverse_edge[reverse_edge] == index) & (reverse_edge != index)).all()):
        raise ValueError("reverse_edge does not pair the edges: each edge needs one reverse edge, other than itself")
    is_first = index < reverse_edge  # [E]
    first = index[is_first]  # [P]
    pair_of_first = torch.cumsum(is_first, 0) - 1  # [E], valid where is_first
    pair = pair_of_first[torch.minimum(index, reverse_edge)]  # [E]
    return PairMap(first, reverse_edge[first], pair)


class _PairGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values, pairs):
        ctx.pairs = pairs
        return values.index_select(0, pairs.pair)  # [E, ...]

    @staticmethod
    def backward(ctx, grad):
        pairs = ctx.pairs  # each pair collects the gradients of its two edges
        return grad.index_select(0, pairs.first) + grad.index_select(0, pairs.second), None


def per_edge(values: Tensor, pairs: Optional[PairMap]) -> Tensor:
    """Per-pair values [P, ...] → per-edge [E, ...] (unchanged when ``pairs`` is None)."""
    return values if pairs is None else _PairGather.apply(values, pairs)  # [E, ...]

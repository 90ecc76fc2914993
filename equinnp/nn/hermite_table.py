r"""Piecewise Hermite interpolation of many channels of one variable, evaluated by small matrix products.

Knots :math:`r_g = r_0 + g h`, :math:`g = 0..G-1`, carry the values and scaled
derivatives of :math:`C` channels, :math:`D_g = [y_g,\ h\,y'_g,\ h^2 y''_g]`
(quintic Hermite, C2) or :math:`[y_g,\ h\,y'_g]` (cubic Hermite, C1). On the
interval :math:`[r_g, r_{g+1})`, with :math:`t = (r - r_g)/h`,

.. math:: p(r) = \sum_{a} H_a(t)\, D_{g,a} + \sum_a H'_a(t)\, D_{g+1,a}

with the Hermite basis polynomials :math:`H` (:data:`HERMITE_BASIS`), so that
:math:`p` and its first (cubic) or first two (quintic) derivatives equal the
knot data at every knot.

Evaluation: each distance selects two knots (6 or 4 rows of ``D``). Instead of
gathering those rows per distance (a pass over [E, 6, C] in memory), distances
are grouped by blocks of :data:`GROUP` intervals and each block is one matrix
product ``basis [n, (GROUP + 1) a] @ D_block [(GROUP + 1) a, C]``, the basis
holding the 2a non-zero Hermite weights of each row. The derivative in ``r``
(forces) is the same product with the basis' derivatives; its backward, with
``create_graph``, is again a table evaluation, so second derivatives work.

Shapes: ``r`` [E] → [E, C].
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["HERMITE_BASIS", "GROUP", "HermiteTable", "evaluate"]

#: Coefficients of the Hermite basis polynomials in powers of t (rows: t^0..t^n; columns: the
#: knot data of the left knot, then of the right knot).
HERMITE_BASIS = {
    3: [  # y0, h y0', y1, h y1'
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [-3.0, -2.0, 3.0, -1.0],
        [2.0, 1.0, -2.0, 1.0],
    ],
    5: [  # y0, h y0', h^2 y0'', y1, h y1', h^2 y1''
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.5, 0.0, 0.0, 0.0],
        [-10.0, -6.0, -1.5, 10.0, -4.0, 0.5],
        [15.0, 8.0, 1.5, -15.0, 7.0, -1.0],
        [-6.0, -3.0, -0.5, 6.0, -3.0, 0.5],
    ],
}
#: Intervals per block of the grouped matrix products.
GROUP = 4


class HermiteTable(NamedTuple):
    """Knot data of a piecewise Hermite interpolant.

    Attributes
    ----------
    knots : Tensor, [G, a, C]
        Per knot: value, ``h`` × first derivative (and ``h²`` × second derivative for quintic).
    start, spacing, stop : float
        First knot, knot spacing, last knot (Å). The interpolant is 0 at and beyond ``stop``.
    """

    knots: Tensor
    start: float
    spacing: float
    stop: float

    @property
    def degree(self) -> int:
        return 2 * self.knots.shape[1] - 1

    def __call__(self, r: Tensor, order: int = 0) -> Tensor:
        """The interpolant's ``order``-th derivative in ``r``: [E] → [E, C]."""
        return _Lookup.apply(r, self, order)


def _basis(t: Tensor, degree: int, order: int, spacing: float) -> Tensor:
    """``d^order/dr^order`` of the Hermite basis at ``t`` [E] → [E, 2a] (``r = r_g + t h``)."""
    powers = torch.arange(degree + 1, dtype=t.dtype, device=t.device)  # [n+1]
    factor = torch.ones_like(powers)
    for k in range(order):
        factor = factor * (powers - k)
    exponent = (powers - order).clamp(min=0)
    monomials = factor * t.unsqueeze(-1) ** exponent  # [E, n+1]: d^order/dt^order t^p
    matrix = torch.tensor(HERMITE_BASIS[degree], dtype=t.dtype, device=t.device)  # [n+1, 2a]
    return (monomials @ matrix) / spacing**order  # [E, 2a]


class _Layout(NamedTuple):
    """Where each distance goes: its row in block order, the blocks' sizes, its basis columns."""

    order: Tensor  # [E] long: rows sorted by block
    counts: list  # rows per block (host)
    blocks: list  # block index of each non-empty block (host)
    columns: Tensor  # [E, 2a] long: columns of the block basis
    t: Tensor  # [E]
    inside: Tensor  # [E] bool: r < stop


def _layout(r: Tensor, table: HermiteTable) -> _Layout:
    num_knots, per_knot = table.knots.shape[0], table.knots.shape[1]
    x = (r.detach() - table.start) / table.spacing  # [E]
    interval = x.floor().clamp(0, num_knots - 2)  # [E]
    t = x - interval  # [E]; < 0 below ``start`` (extrapolation of the first interval)
    interval = interval.long()
    block = torch.div(interval, GROUP, rounding_mode="floor")  # [E]
    local = interval - block * GROUP  # [E] interval within its block
    columns = (local * per_knot).unsqueeze(-1) + torch.arange(2 * per_knot, device=r.device)  # [E, 2a]
    order = torch.argsort(block, stable=True)  # [E]
    present, counts = torch.unique_consecutive(block[order], return_counts=True)
    return _Layout(order, counts.tolist(), present.tolist(), columns, t, r.detach() < table.stop)


def _block_knots(table: HermiteTable, block: int) -> Tensor:
    """Knot data of one block's ``GROUP + 1`` knots as rows: [(GROUP + 1) a, C] (fewer at the end)."""
    first = block * GROUP
    return table.knots[first:first + GROUP + 1].reshape(-1, table.knots.shape[2])


def _block_basis(layout: _Layout, table: HermiteTable, order: int) -> Tensor:
    """Each row's basis weights in its block's columns, rows in block order: [E, (GROUP + 1) a]."""
    per_knot = table.knots.shape[1]
    weights = _basis(layout.t, table.degree, order, table.spacing) * layout.inside.unsqueeze(-1)  # [E, 2a]
    basis = weights.new_zeros(weights.shape[0], (GROUP + 1) * per_knot)
    basis.scatter_(1, layout.columns, weights)
    return basis[layout.order]  # [E, (GROUP+1) a]


def evaluate(r: Tensor, table: HermiteTable, order: int = 0, layout=None) -> Tensor:
    """``d^order p / dr^order`` at ``r`` [E] → [E, C] (no autograd through ``r``)."""
    layout = _layout(r, table) if layout is None else layout
    basis = _block_basis(layout, table, order).to(table.knots.dtype)  # [E, (GROUP+1) a]
    out_sorted = table.knots.new_empty(r.shape[0], table.knots.shape[2])  # [E, C]
    start = 0
    for block, count in zip(layout.blocks, layout.counts):
        knots = _block_knots(table, block)  # [K, C]
        torch.mm(basis[start:start + count, :knots.shape[0]], knots, out=out_sorted[start:start + count])
        start += count
    out = torch.empty_like(out_sorted)
    out[layout.order] = out_sorted
    return out


def _derivative_dot(grad: Tensor, r: Tensor, table: HermiteTable, order: int, layout: _Layout) -> Tensor:
    """``sum_c grad[e, c] d^{order+1} p_c / dr^{order+1}`` [E], by one product per block
    (``grad`` projected on each block's knot rows, then weighted by the basis' derivatives)."""
    basis = _block_basis(layout, table, order + 1).to(grad.dtype)  # [E, K]
    grad_sorted = grad[layout.order]  # [E, C]
    out_sorted = grad.new_empty(r.shape[0])
    start = 0
    for block, count in zip(layout.blocks, layout.counts):
        knots = _block_knots(table, block)  # [K, C]
        projected = grad_sorted[start:start + count] @ knots.t()  # [n, K]
        out_sorted[start:start + count] = (projected * basis[start:start + count, :knots.shape[0]]).sum(-1)
        start += count
    out = torch.empty_like(out_sorted)
    out[layout.order] = out_sorted
    return out


class _Lookup(torch.autograd.Function):
    """``p^(order)(r)`` with its derivative in ``r``; the table is a constant (no gradient)."""

    @staticmethod
    def forward(ctx, r: Tensor, table: HermiteTable, order: int) -> Tensor:
        layout = _layout(r, table)
        ctx.save_for_backward(r)
        ctx.table, ctx.order, ctx.layout = table, order, layout
        return evaluate(r, table, order, layout)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (r,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: a differentiable expression (second derivatives)
            return (grad * _Lookup.apply(r, ctx.table, ctx.order + 1)).sum(-1), None, None
        return _derivative_dot(grad.contiguous(), r, ctx.table, ctx.order, ctx.layout), None, None

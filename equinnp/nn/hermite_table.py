r"""Piecewise Hermite interpolation of many channels of one variable, evaluated by small matrix products.

Knots :math:`r_g = r_0 + g h`, :math:`g = 0..G-1`, carry the values and scaled
derivatives of :math:`C` channels, :math:`D_g = [y_g,\ h\,y'_g,\ h^2 y''_g]`
(quintic Hermite, C2) or :math:`[y_g,\ h\,y'_g]` (cubic Hermite, C1). On the
interval :math:`[r_g, r_{g+1})`, with :math:`t = (r - r_g)/h`,

.. math:: p(r) = \sum_{a} H_a(t)\, D_{g,a} + \sum_a H'_a(t)\, D_{g+1,a}

with the Hermite basis polynomials :math:`H` (:data:`HERMITE_BASIS`), so that
:math:`p` and its first (cubic) or first two (quintic) derivatives equal the
knot data at every knot. The table stores each interval's polynomial in powers
of t, :math:`p = \sum_{q=0}^{n} c_{g,q} t^q`, computed in float64 before any
rounding to the model's dtype: the derivative is then as precise as the value
in float32 too (from knot values rounded to float32 it would lose a factor
:math:`\sim 1/h` to cancellation).

Evaluation: each distance selects one interval (n + 1 rows of ``c``). Instead
of gathering those rows per distance (a pass over [E, n + 1, C] in memory),
distances are grouped by blocks of :data:`GROUP` intervals and each block is
one matrix product ``powers [m, GROUP (n + 1)] @ c_block [GROUP (n + 1), C]``,
each row of ``powers`` holding the n + 1 powers of its t. Below :data:`FEW`
distances the rows are gathered (fewer operations). The derivative in ``r``
(forces) is the same product with the powers' derivatives; with
``create_graph`` it is again a table evaluation, so second derivatives work.

With ``size`` the channels come back as C / size separate tensors [E, size]
(one per layer's filters): each is written directly, and their gradients are
taken as they come, without the [E, C] concatenation a ``split`` of one output
would cost in the backward.

Shapes: ``r`` [E] → [E, C], or C / ``size`` tensors [E, size].
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
from torch import Tensor

__all__ = ["HERMITE_BASIS", "GROUP", "FEW", "HermiteTable", "evaluate"]

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
#: Below this many distances (a molecular-dynamics step of a small molecule) the knot rows are
#: gathered per distance instead: fewer operations, and [E, 2a, C] is small.
FEW = 1024


class HermiteTable(NamedTuple):
    """A piecewise Hermite interpolant (build it with :meth:`from_knots`).

    Attributes
    ----------
    coefficients : Tensor, [G - 1, n + 1, C]
        Per interval, the polynomial's coefficients of t^0..t^n (n = 3 or 5).
    start, spacing, stop : float
        First knot, knot spacing, last knot (Å). The interpolant is 0 at and beyond ``stop``.
    """

    coefficients: Tensor
    start: float
    spacing: float
    stop: float

    @classmethod
    def from_knots(cls, knots: Tensor, start: float, spacing: float, stop: float, dtype=None) -> "HermiteTable":
        """From knot data ``knots`` [G, a, C] (value, ``h`` y', and ``h²`` y'' for quintic), rounded to
        ``dtype`` (default: that of ``knots``) after the coefficients are formed."""
        per_knot = knots.shape[1]
        matrix = torch.tensor(HERMITE_BASIS[2 * per_knot - 1], dtype=knots.dtype, device=knots.device)  # [n+1, 2a]
        pairs = torch.cat([knots[:-1], knots[1:]], dim=1)  # [G-1, 2a, C]
        coefficients = torch.einsum("qk,gkc->gqc", matrix, pairs)  # [G-1, n+1, C]
        return cls(coefficients.to(dtype or knots.dtype), start, spacing, stop)

    @property
    def degree(self) -> int:
        return self.coefficients.shape[1] - 1

    def __call__(self, r: Tensor, order: int = 0, size=None):
        """The interpolant's ``order``-th derivative in ``r``: [E] → [E, C]; with ``size`` (an int, or
        the sizes of consecutive parts as ``torch.split`` takes them), a tuple of parts [E, size]."""
        channels = self.coefficients.shape[2]
        if size is None:
            return _Lookup.apply(r, self, order, (channels,))[0]
        sizes = _part_sizes(channels, size)
        return _Lookup.apply(r, self, order, sizes)


def _part_sizes(channels: int, size) -> tuple:
    """``torch.split``'s parts of ``channels``: an int (equal parts) or a sequence of sizes."""
    if isinstance(size, int):
        if size < 1 or channels % size:
            raise ValueError(f"cannot split {channels} table channels into parts of {size}")
        return (size,) * (channels // size)
    sizes = tuple(int(k) for k in size)
    if sum(sizes) != channels or min(sizes) < 1:
        raise ValueError(f"cannot split {channels} table channels into parts of {list(sizes)}")
    return sizes


def _offsets(sizes) -> list:
    """``[(start, stop)]`` of consecutive parts of these sizes."""
    bounds, start = [], 0
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    return bounds


def _powers(t: Tensor, degree: int, order: int, spacing: float) -> Tensor:
    """``d^order/dr^order`` of ``t^0..t^degree`` at ``t`` [E] → [E, degree + 1] (``r = r_g + t h``)."""
    exponents = torch.arange(degree + 1, dtype=t.dtype, device=t.device)  # [n+1]
    factor = torch.ones_like(exponents)
    for k in range(order):
        factor = factor * (exponents - k)
    return factor * t.unsqueeze(-1) ** (exponents - order).clamp(min=0) / spacing**order  # [E, n+1]


class _Layout(NamedTuple):
    """Where each distance goes: its row in block order, the blocks' sizes, its basis columns."""

    order: Tensor  # [E] long: rows sorted by block
    counts: list  # rows per block (host)
    blocks: list  # block index of each non-empty block (host)
    columns: Tensor  # [E, n+1] long: columns of the block's powers
    t: Tensor  # [E]
    inside: Tensor  # [E] bool: r < stop


def _layout(r: Tensor, table: HermiteTable) -> _Layout:
    num_intervals, per_interval = table.coefficients.shape[0], table.coefficients.shape[1]
    x = (r.detach() - table.start) / table.spacing  # [E]
    interval = x.floor().clamp(0, num_intervals - 1)  # [E]
    t = x - interval  # [E]; < 0 below ``start`` (extrapolation of the first interval)
    interval = interval.long()
    block = torch.div(interval, GROUP, rounding_mode="floor")  # [E]
    local = interval - block * GROUP  # [E] interval within its block
    columns = (local * per_interval).unsqueeze(-1) + torch.arange(per_interval, device=r.device)  # [E, n+1]
    order = torch.argsort(block, stable=True)  # [E]
    present, counts = torch.unique_consecutive(block[order], return_counts=True)
    return _Layout(order, counts.tolist(), present.tolist(), columns, t, r.detach() < table.stop)


def _block_rows(table: HermiteTable, block: int) -> Tensor:
    """Coefficients of one block's ``GROUP`` intervals as rows: [GROUP (n + 1), C] (fewer at the end)."""
    first = block * GROUP
    return table.coefficients[first:first + GROUP].reshape(-1, table.coefficients.shape[2])


def _block_powers(layout: _Layout, table: HermiteTable, order: int) -> Tensor:
    """Each row's powers of t in its block's columns, rows in block order: [E, GROUP (n + 1)]."""
    per_interval = table.coefficients.shape[1]
    weights = _powers(layout.t, table.degree, order, table.spacing) * layout.inside.unsqueeze(-1)  # [E, n+1]
    powers = weights.new_zeros(weights.shape[0], GROUP * per_interval)
    powers.scatter_(1, layout.columns, weights)
    return powers[layout.order]  # [E, GROUP (n+1)]


def evaluate(r: Tensor, table: HermiteTable, order: int = 0, layout=None, sizes: Optional[Sequence[int]] = None):
    """``d^order p / dr^order`` at ``r`` [E] → [E, C] (no autograd through ``r``); with ``sizes``,
    a list of the consecutive parts [E, size]."""
    layout = _layout(r, table) if layout is None else layout
    powers = _block_powers(layout, table, order).to(table.coefficients.dtype)  # [E, K], rows in block order
    channels = table.coefficients.shape[2]
    bounds = _offsets((channels,) if sizes is None else sizes)
    outs = [table.coefficients.new_empty(r.shape[0], stop - begin) for begin, stop in bounds]  # [E, size] each
    start = 0
    for block, count in zip(layout.blocks, layout.counts):
        rows = _block_rows(table, block)  # [K, C]
        which = layout.order[start:start + count]  # [m]
        values = powers[start:start + count, :rows.shape[0]] @ rows  # [m, C], still in cache
        for (begin, stop), out in zip(bounds, outs):
            out.index_copy_(0, which, values if len(outs) == 1 else values[:, begin:stop])
        start += count
    return outs if sizes is not None else outs[0]


def _derivative_dot(grads: Sequence[Tensor], r: Tensor, table: HermiteTable, order: int, layout: _Layout,
                    g_sizes: Sequence[int]) -> Tensor:
    """``sum_c grad[e, c] d^{order+1} p_c / dr^{order+1}`` [E], ``grad`` given as its parts [E, size]
    (None: zero), by one product per block and part (projected on the block's coefficient rows,
    then weighted by the powers' derivatives)."""
    powers = _block_powers(layout, table, order + 1)  # [E, K], rows in block order
    parts = [(bounds, g.contiguous()) for bounds, g in zip(_offsets(g_sizes), grads) if g is not None]
    powers = powers.to(parts[0][1].dtype)
    out_sorted = powers.new_empty(r.shape[0])
    start = 0
    for block, count in zip(layout.blocks, layout.counts):
        rows = _block_rows(table, block)  # [K, C]
        which = layout.order[start:start + count]
        projected = None  # [m, K]
        for (begin, stop), g in parts:
            term = g.index_select(0, which) @ rows[:, begin:stop].t()
            projected = term if projected is None else projected.add_(term)
        out_sorted[start:start + count] = (projected * powers[start:start + count, :rows.shape[0]]).sum(-1)
        start += count
    out = torch.empty_like(out_sorted)
    out[layout.order] = out_sorted
    return out


def _gathered(r: Tensor, table: HermiteTable):
    """For few distances: the coefficients of each distance's interval [E, n + 1, C], its ``t`` [E] and mask [E]."""
    x = (r.detach() - table.start) / table.spacing  # [E]
    interval = x.floor().clamp(0, table.coefficients.shape[0] - 1)  # [E]
    return table.coefficients[interval.long()], x - interval, r.detach() < table.stop


def _weights(t: Tensor, inside: Tensor, table: HermiteTable, order: int) -> Tensor:
    return (_powers(t, table.degree, order, table.spacing) * inside.unsqueeze(-1)).to(table.coefficients.dtype)  # [E, n+1]


class _Lookup(torch.autograd.Function):
    """``p^(order)(r)`` as parts of ``size`` channels, with the derivative in ``r``; the table is a constant."""

    @staticmethod
    def forward(ctx, r: Tensor, table: HermiteTable, order: int, sizes: tuple):
        ctx.save_for_backward(r)
        ctx.table, ctx.order, ctx.sizes = table, order, sizes
        if r.shape[0] <= FEW:
            rows, t, inside = _gathered(r, table)
            ctx.few = (rows, t, inside)
            values = torch.bmm(_weights(t, inside, table, order).unsqueeze(1), rows).squeeze(1)  # [E, C]
            return tuple(part.contiguous() for part in values.split(list(sizes), dim=-1))
        ctx.few = None
        ctx.layout = _layout(r, table)
        return tuple(evaluate(r, table, order, ctx.layout, sizes))

    @staticmethod
    def backward(ctx, *grads):
        (r,) = ctx.saved_tensors
        none = (None, None, None)
        if all(g is None for g in grads):
            return (torch.zeros_like(r),) + none
        if torch.is_grad_enabled():  # create_graph: a differentiable expression (second derivatives)
            slopes = _Lookup.apply(r, ctx.table, ctx.order + 1, ctx.sizes)
            return sum((g * slope).sum(-1) for g, slope in zip(grads, slopes) if g is not None), *none
        if ctx.few is not None:
            rows, t, inside = ctx.few
            projected = sum(torch.bmm(rows[:, :, begin:stop], g.unsqueeze(-1)).squeeze(-1)
                            for (begin, stop), g in zip(_offsets(ctx.sizes), grads) if g is not None)  # [E, n+1]
            dtype = next(g for g in grads if g is not None).dtype
            return (projected * _weights(t, inside, ctx.table, ctx.order + 1)).sum(-1).to(dtype), *none
        return _derivative_dot(grads, r, ctx.table, ctx.order, ctx.layout, ctx.sizes), *none

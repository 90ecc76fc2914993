"""Types and helpers shared by every neighbor-list backend.

Conventions (see ``conventions.md`` in this folder):

* ``edge_index[0] = j`` is the neighbor (sender), ``edge_index[1] = i`` the
  center (receiver);
* ``r_ij = pos[j] - pos[i] + cell_shifts @ cell[batch[i]]``;
* every pair with ``|r_ij| <= cutoff`` is returned, in both directions, and an
  atom is its own neighbor only through a non-zero periodic shift.

Every backend produces candidate triples ``(i, j, shift)`` and hands them to
:func:`exact_filter` and :func:`sort_edges`, so that all backends decide the
``<= cutoff`` test with the very same floating point expression and return
the edges in the same order.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

# Relative safety margin used when sizing bins and image ranges, so that
# rounding never makes a backend miss a pair that lies exactly at the cutoff.
MARGIN = 1e-6


class NeighborList(NamedTuple):
    """Edges of a radius graph.

    Attributes
    ----------
    edge_index : Tensor
        ``[2, E]`` long. Row 0 is the neighbor ``j``, row 1 the center ``i``.
    cell_shifts : Tensor
        ``[E, 3]`` integer image offsets stored in the dtype of ``pos``; the
        shift vector of an edge is ``cell_shifts @ cell[batch[i]]``.
    """

    edge_index: Tensor
    cell_shifts: Tensor


class Systems(NamedTuple):
    """Validated, canonical description of a batch of systems.

    Built by :func:`equinnp.neighbors.radius_graph.prepare_systems`; backends
    receive this and never look at the raw user arguments.

    Attributes
    ----------
    pos : Tensor
        ``[N, 3]`` positions as given (floating dtype, any device).
    pos64 : Tensor
        ``[N, 3]`` float64 copy of ``pos``.
    pos_t : Tensor
        ``[3, N]`` contiguous float64 transpose of ``pos64`` (per-component
        gathers are much faster than gathering rows of three).
    batch : Tensor
        ``[N]`` long system index of every atom (not necessarily sorted).
    num_systems : int
        ``B``, number of systems (some may hold no atom).
    pbc : Tensor
        ``[B, 3]`` bool periodicity of every lattice direction.
    cell64 : Tensor
        ``[B, 3, 3]`` float64 lattice vectors (rows); rows of non-periodic
        directions are set to zero (their shifts are always zero).
    cell_t : Tensor
        ``[9, B]`` contiguous float64, ``cell_t[3 * k + d, b] = cell64[b, k, d]``.
    cell_eff : Tensor
        ``[B, 3, 3]`` float64 invertible "binning" cell: its periodic rows
        are a reduced (short, nearly orthogonal) basis of the lattice spanned
        by the periodic rows of ``cell64``; non-periodic rows are an
        orthonormal basis of the orthogonal complement of the periodic rows
        (the identity for open systems). Fractional coordinates along a
        non-periodic direction are therefore plain Angstrom distances.
    basis : Tensor
        ``[B, 3, 3]`` long unimodular matrix with ``cell_eff = basis @
        cell64`` on the periodic rows: a shift ``S'`` counted in rows of
        ``cell_eff`` is ``S' @ basis`` in rows of the user's cell (see
        :func:`to_cell_basis`). The identity on non-periodic directions.
    inv_eff : Tensor
        ``[B, 3, 3]`` inverse of ``cell_eff``; ``frac = pos @ inv_eff``.
    widths : Tensor
        ``[B, 3]`` float64 perpendicular widths ``volume / |a_j x a_k|`` of
        ``cell_eff`` (1 along non-periodic directions).
    cutoff : float
        Cutoff radius in Angstrom.
    """

    pos: Tensor
    pos64: Tensor
    pos_t: Tensor
    batch: Tensor
    num_systems: int
    pbc: Tensor
    cell64: Tensor
    cell_t: Tensor
    cell_eff: Tensor
    basis: Tensor
    inv_eff: Tensor
    widths: Tensor
    cutoff: float

    @property
    def num_atoms(self) -> int:
        return self.pos.shape[0]

    @property
    def any_periodic(self) -> bool:
        return bool(self.pbc.any())


def fractional(systems: Systems) -> tuple[Tensor, Tensor]:
    """Fractional coordinates of every atom, wrapped in periodic directions.

    Returns
    -------
    frac : Tensor
        ``[N, 3]`` float64; in ``[0, 1)`` along periodic directions (up to
        rounding), in Angstrom along non-periodic directions (unwrapped).
    image : Tensor
        ``[N, 3]`` long; ``frac_unwrapped = frac + image`` (zero along
        non-periodic directions), counted in rows of ``cell_eff``.
    """
    inv = systems.inv_eff[systems.batch]  # [N, 3, 3]
    frac = torch.bmm(systems.pos64.unsqueeze(1), inv).squeeze(1)  # [N, 3]
    periodic = systems.pbc[systems.batch]  # [N, 3]
    image = torch.where(periodic, torch.floor(frac), torch.zeros_like(frac))
    return frac - image, image.long()


def to_cell_basis(shifts: Tensor, basis: Tensor) -> Tensor:
    """Convert integer shifts counted in rows of ``cell_eff`` to the user's cell.

    Parameters
    ----------
    shifts : Tensor
        ``[..., 3]`` long shifts along the rows of ``cell_eff``.
    basis : Tensor
        ``[..., 3, 3]`` long, broadcastable (:attr:`Systems.basis`).

    Returns
    -------
    Tensor
        ``[..., 3]`` long, ``shifts @ basis``.
    """
    return (shifts.unsqueeze(-1) * basis).sum(dim=-2)


def shift_vectors(shifts: Tensor, cell: Tensor) -> Tensor:
    """Cartesian shift vectors ``shifts @ cell`` written out term by term.

    Parameters
    ----------
    shifts : Tensor
        ``[..., 3]`` float64 integer-valued image offsets.
    cell : Tensor
        ``[..., 3, 3]`` float64 lattice vectors (rows), broadcastable.

    Returns
    -------
    Tensor
        ``[..., 3]`` float64.
    """
    return (
        shifts[..., 0:1] * cell[..., 0, :]
        + shifts[..., 1:2] * cell[..., 1, :]
        + shifts[..., 2:3] * cell[..., 2, :]
    )


def sum_of_squares(components) -> Tensor:
    """``c_0^2 + c_1^2 + c_2^2`` of the three components of pair vectors, added in this order:
    the one expression every backend decides an edge with (any shape, elementwise)."""
    total = None
    for c in components:
        total = c * c if total is None else total + c * c
    return total


def exact_filter(
    systems: Systems, center: Tensor, neighbor: Tensor, shifts: Tensor
) -> Tensor:
    """Mask of candidate edges that really are neighbors.

    Component ``d`` of the pair vector is ``(pos[j, d] - pos[i, d]) + (S_0
    a_0d + S_1 a_1d + S_2 a_2d)`` in float64 (``a_k`` the rows of
    ``cell[b_i]``), and an edge is kept when ``r_0^2 + r_1^2 + r_2^2 <=
    cutoff^2`` and it is not an atom paired with itself without shift. Every
    backend decides with this one expression, evaluated element by element,
    so the result does not depend on how candidates were grouped.

    Parameters
    ----------
    center, neighbor : Tensor
        ``[E]`` long atom indices ``i`` and ``j``.
    shifts : Tensor
        ``[E, 3]`` long image offsets.

    Returns
    -------
    Tensor
        ``[E]`` bool.
    """
    pos_t = systems.pos_t  # [3, N]
    cutoff = float(systems.cutoff)
    if systems.any_periodic:
        s0, s1, s2 = shifts.to(torch.float64).unbind(dim=1)  # [E] each
        if systems.num_systems == 1:
            cell = systems.cell_t[:, 0]  # [9], broadcast to every edge
        else:
            cell = systems.cell_t.index_select(1, systems.batch.index_select(0, center))  # [9, E]
        dist2 = sum_of_squares(
            pos_t[d].index_select(0, neighbor) - pos_t[d].index_select(0, center)
            + (s0 * cell[d] + s1 * cell[3 + d] + s2 * cell[6 + d])
            for d in range(3)
        )  # [E]
        not_self = shifts.ne(0).any(dim=1) | (center != neighbor)  # [E]
    else:
        dist2 = sum_of_squares(pos_t[d].index_select(0, neighbor) - pos_t[d].index_select(0, center)
                               for d in range(3))  # [E]
        not_self = center != neighbor  # [E]
    return (dist2 <= cutoff * cutoff) & not_self


def sort_edges(
    num_atoms: int, center: Tensor, neighbor: Tensor, shifts: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Sort edges by center ``i``, then neighbor ``j``, then shift.

    Parameters
    ----------
    num_atoms : int
        ``N``, used to build a combined integer key.
    center, neighbor : Tensor
        ``[E]`` long.
    shifts : Tensor
        ``[E, 3]`` long.

    Returns
    -------
    tuple of Tensor
        ``center``, ``neighbor`` and ``shifts`` in sorted order.
    """
    if center.numel() <= 1:
        return center, neighbor, shifts
    pair_key = center * num_atoms + neighbor  # [E]
    if not bool(shifts.ne(0).any()):
        order = torch.argsort(pair_key)  # [E]
        return center.index_select(0, order), neighbor.index_select(0, order), shifts
    low = shifts.min(dim=0).values  # [3]
    span = [int(v) for v in (shifts.max(dim=0).values - low + 1).tolist()]
    rel = shifts - low  # [E, 3], non-negative
    code = (rel[:, 0] * span[1] + rel[:, 1]) * span[2] + rel[:, 2]  # [E]
    n_codes = span[0] * span[1] * span[2]
    if num_atoms * num_atoms * n_codes < 2**62:
        order = torch.argsort(pair_key * n_codes + code)  # [E]
    else:  # key would overflow: two stable sorts instead of one
        order = torch.argsort(code, stable=True)  # [E]
        order = order.index_select(0, torch.argsort(pair_key.index_select(0, order), stable=True))
    return center.index_select(0, order), neighbor.index_select(0, order), shifts.index_select(0, order)


def finalize(
    systems: Systems, center: Tensor, neighbor: Tensor, shifts: Tensor, filtered: bool
) -> NeighborList:
    """Filter (unless already done), sort and package candidate edges.

    Parameters
    ----------
    center, neighbor : Tensor
        ``[E]`` long candidate centers ``i`` and neighbors ``j``.
    shifts : Tensor
        ``[E, 3]`` long image offsets.
    filtered : bool
        Whether :func:`exact_filter` was already applied.
    """
    device = systems.pos.device
    center = center.to(device=device, dtype=torch.long)
    neighbor = neighbor.to(device=device, dtype=torch.long)
    shifts = shifts.to(device=device, dtype=torch.long).reshape(-1, 3)  # [E, 3]
    if not filtered and center.numel() > 0:
        keep = exact_filter(systems, center, neighbor, shifts)
        center, neighbor, shifts = center[keep], neighbor[keep], shifts[keep]
    center, neighbor, shifts = sort_edges(systems.num_atoms, center, neighbor, shifts)
    edge_index = torch.stack([neighbor, center], dim=0)  # [2, E]
    return NeighborList(edge_index, shifts.to(systems.pos.dtype))


def ragged_arange(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Expand ``counts`` into (segment id, position inside segment) pairs.

    Parameters
    ----------
    counts : Tensor
        ``[M]`` long, non-negative.

    Returns
    -------
    segment : Tensor
        ``[sum(counts)]`` long, ``segment[k]`` is the index into ``counts``.
    within : Tensor
        ``[sum(counts)]`` long, ``0 .. counts[segment]-1``.
    """
    total = int(counts.sum())
    segment = torch.repeat_interleave(
        torch.arange(counts.numel(), device=counts.device), counts, output_size=total
    )  # [total]
    first = torch.cumsum(counts, 0) - counts  # [M]
    within = torch.arange(total, device=counts.device) - first[segment]  # [total]
    return segment, within


def budget_slices(counts: Tensor, budget: int) -> list[tuple[int, int]]:
    """Split ``range(len(counts))`` into slices whose counts sum to ``<= budget``.

    A single entry larger than ``budget`` forms a slice of its own, so memory
    stays proportional to ``budget`` plus the largest entry.
    """
    m = counts.numel()
    if m == 0:
        return []
    total = int(counts.sum())
    if total <= budget:
        return [(0, m)]
    ends = torch.cumsum(counts, 0)  # [M]
    slices = []
    start, consumed = 0, 0
    while start < m:
        stop = int(torch.searchsorted(ends, consumed + budget, right=True))
        stop = max(stop, start + 1)
        slices.append((start, stop))
        consumed = int(ends[stop - 1])
        start = stop
    return slices


def no_edges(device) -> tuple[Tensor, Tensor, Tensor]:
    """The ``(center, neighbor, shifts)`` triple of an empty edge set: [0], [0], [0, 3] long."""
    empty = torch.zeros(0, dtype=torch.long, device=device)
    return empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device)

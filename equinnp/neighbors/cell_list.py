"""Linear-scaling cell list in pure PyTorch.

Algorithm
---------
1. Every atom gets coordinates in the "binning cell" of its system
   (:attr:`Systems.cell_eff`): fractional and wrapped into ``[0, 1)`` along
   periodic directions, plain Angstrom along open directions.
2. Each periodic direction ``d`` is cut into ``n_d = floor(width_d / cutoff)``
   slabs (at least one), each at least ``cutoff`` thick; open directions are
   cut into slabs of thickness ``cutoff`` starting at the lowest atom. Two
   atoms within the cutoff lie at most ``k_d = ceil(cutoff * n_d / width_d)``
   bins apart along ``d`` (``k_d = 1`` unless the cell is narrower than the
   cutoff).
3. The bin key of an atom combines its system and its three bin coordinates;
   atoms are sorted by key (and handled in that order, which keeps the atoms
   of a bin, and the neighbors of nearby centers, together in memory) and the
   occupied keys are looked up with ``searchsorted``, so memory follows the
   number of atoms, never the number of (possibly empty) bins.
4. For every bin offset ``o`` in half of the ``(2k+1)^3`` neighborhood
   (``o`` lexicographically ``>= 0``), each atom ``i`` pairs with all atoms of
   bin ``c_i + o``; a periodic direction wraps the target bin and records the
   crossing as an image shift, so offsets ``o`` and ``o'`` never produce the
   same (atom, shift) pair even when a cell holds fewer than three bins. Pairs
   of a non-zero offset are also added reversed (``j -> i``, shift ``-S``).
5. Candidates pass a cheap distance test on wrapped coordinates (with a
   small safety margin) and then the shared exact test of
   :func:`~equinnp.neighbors.common.exact_filter`.

Periodic directions are binned in the reduced cell :attr:`Systems.cell_eff`
(shifts are converted back to the user's cell with :attr:`Systems.basis`), so
even a very skewed cell costs little more than an equivalent orthogonal one.

Queries and candidates are processed in chunks of bounded size, so the
memory stays proportional to the number of atoms (plus the output).
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from equinnp.neighbors.common import (
    MARGIN,
    no_edges,
    NeighborList,
    Systems,
    budget_slices,
    exact_filter,
    finalize,
    fractional,
    shift_vectors,
    to_cell_basis,
)

# (center atom, bin offset) queries handled at once.
_QUERY_BUDGET = 1 << 18
# Candidate pairs handled at once: small enough for the temporaries (a few
# MB each) to stay in cache, large enough to amortize the per-slice overhead.
_CANDIDATE_BUDGET = 1 << 19
# Upper bound on bins per direction and system, which keeps the integer bin
# keys far from overflowing; larger systems just get larger bins.
_MAX_BINS = 1 << 16


def _bins(systems: Systems, frac: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Bin coordinates of the atoms and bin grid of every system.

    Parameters
    ----------
    frac : Tensor
        ``[N, 3]`` float64 wrapped binning coordinates from
        :func:`~equinnp.neighbors.common.fractional`.

    Returns
    -------
    coords : Tensor
        ``[N, 3]`` long bin coordinates in ``[0, n_d)``.
    nbins : Tensor
        ``[B, 3]`` long number of bins ``n_d``.
    reach : Tensor
        ``[B, 3]`` long largest bin offset ``k_d`` that can hold a neighbor.
    """
    batch, pbc = systems.batch, systems.pbc
    num_systems = systems.num_systems
    cutoff = systems.cutoff

    # Periodic directions: n_d slabs of the unit interval.
    per_n = torch.floor(systems.widths / (cutoff * (1.0 + 2.0 * MARGIN)))  # [B, 3]
    per_n = per_n.clamp(1, _MAX_BINS)
    per_reach = torch.ceil(cutoff * (1.0 + MARGIN) * per_n / systems.widths)  # [B, 3]

    # Open directions: slabs of thickness >= cutoff from the lowest atom.
    inf = torch.full((num_systems, 3), float("inf"), dtype=torch.float64, device=frac.device)
    index = batch.unsqueeze(1).expand(-1, 3)  # [N, 3]
    low = inf.scatter_reduce(0, index, frac, reduce="amin", include_self=True)  # [B, 3]
    high = (-inf).scatter_reduce(0, index, frac, reduce="amax", include_self=True)  # [B, 3]
    empty = ~torch.isfinite(low)
    low = torch.where(empty, torch.zeros_like(low), low)
    extent = torch.where(empty, torch.zeros_like(high), high - low)  # [B, 3]
    size = torch.clamp(extent / (_MAX_BINS - 1), min=cutoff * (1.0 + MARGIN))  # [B, 3]
    open_n = torch.floor(extent / size) + 1  # [B, 3]

    nbins = torch.where(pbc, per_n, open_n)  # [B, 3]
    scale = torch.where(pbc, per_n, 1.0 / size)  # bins per binning unit, [B, 3]
    origin = torch.where(pbc, torch.zeros_like(low), low)  # [B, 3]
    reach = torch.where(pbc, per_reach, torch.ones_like(per_reach)).long()  # [B, 3]
    nbins = nbins.long()

    scaled = (frac - origin[batch]) * scale[batch]  # [N, 3]
    coords = torch.floor(scaled).long()  # [N, 3]
    coords = torch.minimum(coords.clamp_min(0), nbins[batch] - 1)  # [N, 3]
    return coords, nbins, reach


def _half_shell(reach: Tensor) -> Tensor:
    """``[M, 3]`` long bin offsets with ``|o_d| <= reach_d`` and ``o >= 0`` lexicographically."""
    ranges = [range(-int(r), int(r) + 1) for r in reach.tolist()]
    offsets = [o for o in itertools.product(*ranges) if o >= (0, 0, 0)]
    return torch.tensor(offsets, dtype=torch.long).reshape(-1, 3)


def candidate_edges(systems: Systems) -> tuple[Tensor, Tensor, Tensor]:
    """Exact edges ``(center, neighbor, shifts)`` found with the cell list (unsorted).

    Returns
    -------
    tuple of Tensor
        ``[E]`` long centers ``i``, ``[E]`` long neighbors ``j`` and ``[E, 3]``
        long shifts.
    """
    device = systems.pos.device
    batch, pbc = systems.batch, systems.pbc
    num_atoms = systems.num_atoms
    periodic = systems.any_periodic

    frac, image = fractional(systems)  # [N, 3], [N, 3]
    coords, nbins, reach = _bins(systems, frac)

    # Integer bin keys: system block offset + row-major bin index.
    per_system = nbins.prod(dim=1)  # [B]
    block = torch.cumsum(per_system, 0) - per_system  # [B]
    strides = torch.stack([nbins[:, 1] * nbins[:, 2], nbins[:, 2], torch.ones_like(nbins[:, 2])],
                          dim=1)  # [B, 3]
    key = block[batch] + (coords * strides[batch]).sum(dim=1)  # [N]
    order = torch.argsort(key)  # [N]
    # From here on atoms are numbered in bin order (atom k is atom order[k]),
    # so that the atoms of a bin, and the neighbors of nearby centers, sit
    # next to each other in memory.
    key = key.index_select(0, order)  # [N]
    coords = coords.index_select(0, order)  # [N, 3]
    batch = batch.index_select(0, order)  # [N]
    image = image.index_select(0, order)  # [N, 3]
    unique_keys, counts = torch.unique_consecutive(key, return_counts=True)  # [K], [K]
    starts = torch.cumsum(counts, 0) - counts  # [K]

    # Wrapped Cartesian positions and a margin for the cheap pre-test.
    wrapped = systems.pos64.index_select(0, order)  # [N, 3]
    if periodic:
        wrapped = wrapped - shift_vectors(image.to(torch.float64), systems.cell_eff[batch])
        image = to_cell_basis(image, systems.basis[batch])  # [N, 3] in user cell rows
    sorted_t = wrapped.t().contiguous()  # [3, N]
    scale = float(systems.pos64.abs().max()) + float(wrapped.abs().max()) + 1.0
    pre_cut = systems.cutoff * (1.0 + MARGIN) + 1e-11 * scale
    pre_cut2 = pre_cut * pre_cut

    occupied = torch.bincount(batch, minlength=systems.num_systems) > 0  # [B]
    top_reach = reach[occupied].max(dim=0).values  # [3]
    offsets = _half_shell(top_reach.cpu()).to(device)  # [M, 3]
    nonzero_offset = offsets.ne(0).any(dim=1)  # [M]

    sys_nbins = nbins[batch]  # [N, 3]
    sys_pbc = pbc[batch]  # [N, 3]
    sys_reach = reach[batch]  # [N, 3]
    sys_block = block[batch]  # [N]
    sys_strides = strides[batch]  # [N, 3]

    per_chunk = max(1, _QUERY_BUDGET // max(num_atoms, 1))
    centers_out, neighbors_out, shifts_out = [], [], []
    for first in range(0, offsets.shape[0], per_chunk):
        chunk = offsets[first:first + per_chunk]  # [m, 3]
        m = chunk.shape[0]
        target = coords.unsqueeze(1) + chunk.unsqueeze(0)  # [N, m, 3]
        wrap = torch.div(target, sys_nbins.unsqueeze(1), rounding_mode="floor")  # [N, m, 3]
        wrap = torch.where(sys_pbc.unsqueeze(1), wrap, torch.zeros_like(wrap))
        target = target - wrap * sys_nbins.unsqueeze(1)  # [N, m, 3]
        valid = ((target >= 0) & (target < sys_nbins.unsqueeze(1))).all(dim=2)  # [N, m]
        valid &= (chunk.abs().unsqueeze(0) <= sys_reach.unsqueeze(1)).all(dim=2)
        flat = torch.nonzero(valid.reshape(-1)).flatten()  # [Q] index into N * m
        atom_q = torch.div(flat, m, rounding_mode="floor")  # [Q]
        offset_q = flat - atom_q * m  # [Q]
        target = target.reshape(-1, 3).index_select(0, flat)  # [Q, 3]
        wrap = wrap.reshape(-1, 3).index_select(0, flat)  # [Q, 3]
        target_key = sys_block.index_select(0, atom_q) + (
            target * sys_strides.index_select(0, atom_q)).sum(dim=1)  # [Q]
        slot = torch.searchsorted(unique_keys, target_key).clamp_max(unique_keys.numel() - 1)
        found = torch.nonzero(unique_keys.index_select(0, slot) == target_key).flatten()  # [Q']
        atom_q, offset_q = atom_q.index_select(0, found), offset_q.index_select(0, found)
        wrap, slot = wrap.index_select(0, found), slot.index_select(0, found)
        # Pair vector of a candidate = (its wrapped position) - anchor, with
        # anchor = wrapped center position minus the image vector of the query.
        anchor = wrapped.index_select(0, atom_q)  # [Q, 3]
        if periodic:
            query_system = batch.index_select(0, atom_q)  # [Q]
            anchor = anchor - shift_vectors(wrap.to(torch.float64),
                                            systems.cell_eff.index_select(0, query_system))
            wrap = to_cell_basis(wrap, systems.basis.index_select(0, query_system))  # [Q, 3]
        anchor_t = anchor.t().contiguous()  # [3, Q]
        first_sorted = starts.index_select(0, slot)  # [Q] first position of the target bin
        query_counts = counts.index_select(0, slot)  # [Q]
        mirrored = nonzero_offset.index_select(0, first + offset_q)  # [Q]
        del target, target_key, found, valid, anchor, flat

        for lo, hi in budget_slices(query_counts, _CANDIDATE_BUDGET):
            cnt = query_counts[lo:hi]  # [q]
            ends = torch.cumsum(cnt, 0)  # [q]
            total = int(ends[-1])
            # Query of every candidate (relative to lo), and the candidate's
            # position in bin order: the target bin's atoms are contiguous there.
            query = torch.repeat_interleave(torch.arange(hi - lo, device=device), cnt,
                                            output_size=total)  # [P]
            sorted_pos = (first_sorted[lo:hi] - (ends - cnt)).index_select(0, query)  # [P]
            sorted_pos += torch.arange(total, device=device)
            dist2 = None
            for d in range(3):
                diff = (sorted_t[d].index_select(0, sorted_pos)
                        - anchor_t[d, lo:hi].index_select(0, query))  # [P]
                dist2 = diff * diff if dist2 is None else dist2 + diff * diff
            close = torch.nonzero(dist2 <= pre_cut2).flatten()  # [P']
            del dist2, diff
            query = query.index_select(0, close) + lo  # [P']
            neighbor = sorted_pos.index_select(0, close)  # [P'] (bin order)
            center = atom_q.index_select(0, query)  # [P'] (bin order)
            del sorted_pos, close
            if periodic:
                shifts = (wrap.index_select(0, query) + image.index_select(0, center)
                          - image.index_select(0, neighbor))  # [P', 3]
            else:
                shifts = torch.zeros(center.numel(), 3, dtype=torch.long, device=device)
            center, neighbor = order.index_select(0, center), order.index_select(0, neighbor)
            keep = torch.nonzero(exact_filter(systems, center, neighbor, shifts)).flatten()  # [E']
            query, center = query.index_select(0, keep), center.index_select(0, keep)
            neighbor, shifts = neighbor.index_select(0, keep), shifts.index_select(0, keep)
            centers_out.append(center)
            neighbors_out.append(neighbor)
            shifts_out.append(shifts)
            mirror = torch.nonzero(mirrored.index_select(0, query)).flatten()  # [E'']
            centers_out.append(neighbor.index_select(0, mirror))
            neighbors_out.append(center.index_select(0, mirror))
            shifts_out.append(-shifts.index_select(0, mirror))

    if not centers_out:
        return no_edges(device)
    return torch.cat(centers_out), torch.cat(neighbors_out), torch.cat(shifts_out)


def compute(systems: Systems) -> NeighborList:
    """Cell-list neighbor list of validated ``systems``."""
    if systems.num_atoms == 0:
        empty = torch.zeros(0, dtype=torch.long, device=systems.pos.device)
        return finalize(systems, empty, empty, torch.zeros(0, 3, dtype=torch.long), True)
    center, neighbor, shifts = candidate_edges(systems)
    return finalize(systems, center, neighbor, shifts, filtered=True)

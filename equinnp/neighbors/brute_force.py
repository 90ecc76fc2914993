"""O(N^2) reference neighbor list: every same-system pair times every image.

For a pair ``(i, j)`` of a system the fractional difference
``ds = s_j - s_i`` is first reduced to the nearest image,
``n0 = round(ds)`` along periodic directions, so that ``|ds - n0| <= 1/2``.
A pair vector ``ds - n0 + S'`` can then only be within the cutoff when
``|S'_d| <= cutoff / width_d + 1/2`` for every periodic direction ``d``
(``width_d`` is the perpendicular width of the cell), and the edge shift is
``S = S' - n0``. Fractions and shifts are taken in the reduced cell
:attr:`Systems.cell_eff` and converted to the user's cell at the end. All candidates go through the shared exact distance test.
Memory is bounded by processing the pairs in chunks.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from equinnp.neighbors.common import (
    MARGIN,
    NeighborList,
    Systems,
    budget_slices,
    exact_filter,
    finalize,
    ragged_arange,
    to_cell_basis,
)

# Maximum number of (pair, image) candidates held in memory at once.
_CHUNK = 1 << 21


def _image_bounds(systems: Systems) -> Tensor:
    """``[B, 3]`` long: largest ``|S'_d|`` to try for every system and direction."""
    reach = systems.cutoff * (1.0 + MARGIN) / systems.widths + 0.5 + MARGIN  # [B, 3]
    bounds = torch.floor(reach).long()  # [B, 3]
    return torch.where(systems.pbc, bounds, torch.zeros_like(bounds))


def estimated_work(systems: Systems) -> int:
    """Number of (ordered pair, image) candidates the brute force would test."""
    counts = torch.bincount(systems.batch, minlength=systems.num_systems)  # [B]
    images = (2 * _image_bounds(systems) + 1).prod(dim=1)  # [B]
    return int((counts * counts * images).sum())


def _images(bounds: Tensor) -> Tensor:
    """``[n_img, 3]`` long: every offset with ``|S'_d| <= max_b bounds[b, d]``."""
    top = [int(v) for v in bounds.max(dim=0).values.tolist()] if bounds.numel() else [0, 0, 0]
    ranges = [range(-t, t + 1) for t in top]
    return torch.tensor(list(itertools.product(*ranges)), dtype=torch.long,
                        device=bounds.device).reshape(-1, 3)


def candidate_edges(systems: Systems) -> tuple[Tensor, Tensor, Tensor]:
    """Exact edges ``(center, neighbor, shifts)`` found by brute force (unsorted).

    Returns
    -------
    tuple of Tensor
        ``[E]`` long centers ``i``, ``[E]`` long neighbors ``j`` and ``[E, 3]``
        long shifts.
    """
    device = systems.pos.device
    batch = systems.batch
    num_atoms = systems.num_atoms
    periodic = systems.any_periodic
    if periodic:
        bounds = _image_bounds(systems)  # [B, 3]
        images = _images(bounds)  # [n_img, 3]
        allowed = (images.abs().unsqueeze(0) <= bounds.unsqueeze(1)).all(dim=2)  # [B, n_img]
        frac = torch.bmm(systems.pos64.unsqueeze(1), systems.inv_eff[batch]).squeeze(1)  # [N, 3]
        # Image offsets in rows of the user's cell, per system.
        images_cell = to_cell_basis(images.unsqueeze(0), systems.basis.unsqueeze(1))  # [B, n_img, 3]
        atom_pbc = systems.pbc[batch]  # [N, 3]
    n_img = images.shape[0] if periodic else 1

    # Atoms grouped by system: the partners of atom i are
    # perm[first[b_i] : first[b_i] + counts[b_i]].
    if systems.num_systems == 1:
        perm = torch.arange(num_atoms, device=device)
        counts = torch.tensor([num_atoms], device=device)
    else:
        perm = torch.argsort(batch, stable=True)  # [N]
        counts = torch.bincount(batch, minlength=systems.num_systems)  # [B]
    first = torch.cumsum(counts, 0) - counts  # [B]
    partners = counts[batch]  # [N]

    centers_out, neighbors_out, shifts_out = [], [], []
    for start, stop in budget_slices(partners * n_img, _CHUNK):
        seg, within = ragged_arange(partners[start:stop])
        center = seg + start  # [P]
        center_system = batch[center]  # [P]
        neighbor = perm[first[center_system] + within]  # [P]
        if periodic:
            dfrac = frac[neighbor] - frac[center]  # [P, 3]
            n0 = torch.where(atom_pbc[center], torch.round(dfrac), torch.zeros_like(dfrac)).long()
            n0 = to_cell_basis(n0, systems.basis[center_system])  # [P, 3]
            shifts = images_cell[center_system] - n0.unsqueeze(1)  # [P, n_img, 3]
            mask = allowed[center_system]  # [P, n_img]
            pair_id = torch.arange(center.numel(), device=device).unsqueeze(1).expand(-1, n_img)
            pair_id = pair_id[mask]  # [Q]
            shifts = shifts[mask]  # [Q, 3]
            center, neighbor = center[pair_id], neighbor[pair_id]  # [Q]
        else:
            shifts = torch.zeros(center.numel(), 3, dtype=torch.long, device=device)  # [P, 3]
        keep = exact_filter(systems, center, neighbor, shifts)  # [Q]
        centers_out.append(center[keep])
        neighbors_out.append(neighbor[keep])
        shifts_out.append(shifts[keep])
    if not centers_out or num_atoms == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, torch.zeros(0, 3, dtype=torch.long, device=device)
    return torch.cat(centers_out), torch.cat(neighbors_out), torch.cat(shifts_out)


def compute(systems: Systems) -> NeighborList:
    """Brute-force neighbor list of validated ``systems``."""
    center, neighbor, shifts = candidate_edges(systems)
    return finalize(systems, center, neighbor, shifts, filtered=True)

"""O(N^2) reference neighbor list: every same-system pair times every image.

For a pair ``(i, j)`` of a system the fractional difference
``ds = s_j - s_i`` is first reduced to the nearest image,
``n0 = round(ds)`` along periodic directions, so that ``|ds - n0| <= 1/2``.
A pair vector ``ds - n0 + S'`` can then only be within the cutoff when
``|S'_d| <= cutoff / width_d + 1/2`` for every periodic direction ``d``
(``width_d`` is the perpendicular width of the cell), and the edge shift is
``S = S' - n0``. Fractions and shifts are taken in the reduced cell
:attr:`Systems.cell_eff` and converted to the user's cell at the end. Every
(pair, image) gets a cheap distance test with a small safety margin and the
survivors the shared exact test. Memory is bounded by processing the pairs
in chunks.
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
    ragged_arange,
    to_cell_basis,
)

# Number of (pair, image) candidates handled at once: temporaries of this
# size stay in cache (2^21 ran 3x slower for 1,000 atoms than 2^16).
_CHUNK = 1 << 16


def _image_bounds(systems: Systems) -> Tensor:
    """``[B, 3]`` long: largest ``|S'_d|`` to try for every system and direction."""
    reach = systems.cutoff * (1.0 + MARGIN) / systems.widths + 0.5 + MARGIN  # [B, 3]
    bounds = torch.floor(reach).long()  # [B, 3]
    return torch.where(systems.pbc, bounds, torch.zeros_like(bounds))


def estimated_work(systems: Systems) -> tuple[int, int]:
    """Ordered same-system atom pairs, and (pair, image) candidates, to test."""
    counts = torch.bincount(systems.batch, minlength=systems.num_systems)  # [B]
    pairs = counts * counts  # [B]
    if not systems.any_periodic:
        total = int(pairs.sum())
        return total, total
    images = (2 * _image_bounds(systems) + 1).prod(dim=1)  # [B]
    return int(pairs.sum()), int((pairs * images).sum())


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
    single = systems.num_systems == 1
    if num_atoms == 0:
        return no_edges(device)
    if periodic:
        bounds = _image_bounds(systems)  # [B, 3]
        images = _images(bounds)  # [n_img, 3]
        allowed = (images.abs().unsqueeze(0) <= bounds.unsqueeze(1)).all(dim=2)  # [B, n_img]
        all_allowed = bool(allowed.all())
        frac = torch.bmm(systems.pos64.unsqueeze(1), systems.inv_eff[batch]).squeeze(1)  # [N, 3]
        atom_pbc = systems.pbc[batch]  # [N, 3]
        # Cartesian image vectors per system, one row per component.
        image_vec = torch.matmul(images.to(torch.float64), systems.cell_eff)  # [B, n_img, 3]
        image_vec_t = image_vec.permute(2, 0, 1).contiguous()  # [3, B, n_img]
        # The same offsets counted in rows of the user's cell.
        images_cell = to_cell_basis(images.unsqueeze(0), systems.basis.unsqueeze(1))  # [B, n_img, 3]
        images_cell = images_cell.reshape(-1, 3)  # [B * n_img, 3]
        scale = float(systems.pos64.abs().max()) + 1.0
        pre_cut = systems.cutoff * (1.0 + MARGIN) + 1e-10 * scale
    n_img = images.shape[0] if periodic else 1

    # Atoms grouped by system: the partners of atom i are
    # perm[first[b_i] : first[b_i] + counts[b_i]].
    if single:
        perm = torch.arange(num_atoms, device=device)
        counts = torch.tensor([num_atoms], device=device)
    else:
        perm = torch.argsort(batch, stable=True)  # [N]
        counts = torch.bincount(batch, minlength=systems.num_systems)  # [B]
    first = torch.cumsum(counts, 0) - counts  # [B]
    partners = counts.index_select(0, batch)  # [N]

    centers_out, neighbors_out, shifts_out = [], [], []
    for start, stop in budget_slices(partners * n_img, _CHUNK):
        seg, within = ragged_arange(partners[start:stop])
        center = seg + start  # [P]
        center_system = batch.index_select(0, center)  # [P]
        neighbor = perm.index_select(0, first.index_select(0, center_system) + within)  # [P]
        if periodic:
            dfrac = frac.index_select(0, neighbor) - frac.index_select(0, center)  # [P, 3]
            n0 = torch.where(atom_pbc.index_select(0, center), torch.round(dfrac),
                             torch.zeros_like(dfrac))  # [P, 3]
            if single:
                cart = torch.matmul(dfrac - n0, systems.cell_eff[0])  # [P, 3]
            else:
                cart = torch.bmm((dfrac - n0).unsqueeze(1),
                                 systems.cell_eff.index_select(0, center_system)).squeeze(1)
            # Cheap test of every (pair, image); survivors get the exact test.
            dist2 = None
            for d in range(3):
                img = image_vec_t[d, 0].unsqueeze(0) if single else \
                    image_vec_t[d].index_select(0, center_system)  # [1 or P, n_img]
                diff = cart[:, d:d + 1] + img  # [P, n_img]
                dist2 = diff * diff if dist2 is None else dist2 + diff * diff
            close = dist2 <= pre_cut * pre_cut  # [P, n_img]
            if not all_allowed:
                close &= allowed.index_select(0, center_system)
            hit = torch.nonzero(close.reshape(-1)).flatten()  # [Q]
            pair = torch.div(hit, n_img, rounding_mode="floor")  # [Q]
            image_id = hit - pair * n_img  # [Q]
            n0_cell = to_cell_basis(n0.index_select(0, pair).long(),
                                    systems.basis.index_select(0, center_system.index_select(0, pair)))
            center, neighbor = center.index_select(0, pair), neighbor.index_select(0, pair)  # [Q]
            shifts = images_cell.index_select(
                0, batch.index_select(0, center) * n_img + image_id) - n0_cell  # [Q, 3]
        else:
            shifts = torch.zeros(center.numel(), 3, dtype=torch.long, device=device)  # [P, 3]
        keep = torch.nonzero(exact_filter(systems, center, neighbor, shifts)).flatten()
        centers_out.append(center.index_select(0, keep))
        neighbors_out.append(neighbor.index_select(0, keep))
        shifts_out.append(shifts.index_select(0, keep))
    if not centers_out:
        return no_edges(device)
    return torch.cat(centers_out), torch.cat(neighbors_out), torch.cat(shifts_out)


def compute(systems: Systems) -> NeighborList:
    """Brute-force neighbor list of validated ``systems``."""
    center, neighbor, shifts = candidate_edges(systems)
    return finalize(systems, center, neighbor, shifts, filtered=True)

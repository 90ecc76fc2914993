"""Neighbor lists from vesin-torch (compiled cell list), one system at a time.

Used only when ``vesin_torch`` (package ``vesin-torch``) or ``vesin.torch``
can be imported. vesin's pair ``(i, j)`` with shift ``S`` has the vector
``pos[j] - pos[i] + S @ box``, i.e. vesin's ``i`` is our center. vesin is
asked for a slightly larger cutoff and the result goes through the shared
exact distance test, so pairs exactly at the cutoff are decided as in every
other backend.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from equinnp.neighbors.common import MARGIN, NeighborList, Systems, finalize, to_cell_basis, no_edges


@functools.lru_cache(maxsize=1)
def _neighbor_list_class():
    try:
        from vesin_torch import NeighborList as VesinNeighborList
    except ImportError:
        try:
            from vesin.torch import NeighborList as VesinNeighborList
        except ImportError:
            return None
    return VesinNeighborList


def is_available() -> bool:
    """Whether vesin-torch can be imported."""
    return _neighbor_list_class() is not None


def candidate_edges(systems: Systems) -> tuple[Tensor, Tensor, Tensor]:
    """Candidate edges ``(center, neighbor, shifts)`` from vesin (not yet exact-filtered).

    Returns
    -------
    tuple of Tensor
        ``[E]`` long centers, ``[E]`` long neighbors, ``[E, 3]`` long shifts.
    """
    vesin_class = _neighbor_list_class()
    if vesin_class is None:
        raise ValueError("backend='vesin' requires vesin-torch, which is not installed")
    device = systems.pos.device
    calculator = vesin_class(cutoff=systems.cutoff * (1.0 + MARGIN), full_list=True)
    batch = systems.batch
    if systems.num_systems == 1:
        groups = [(0, None)] if systems.num_atoms > 0 else []
    else:
        perm = torch.argsort(batch, stable=True)  # [N]
        counts = torch.bincount(batch, minlength=systems.num_systems).tolist()
        groups, start = [], 0
        for b, count in enumerate(counts):
            if count > 0:
                groups.append((b, perm[start:start + count]))
            start += count

    centers, neighbors, shifts = [], [], []
    for b, atoms in groups:
        points = systems.pos64 if atoms is None else systems.pos64[atoms]  # [n, 3]
        pbc = systems.pbc[b]
        # vesin gets the reduced, completed cell (a well-formed box even for
        # slabs with a zero third row); its shifts are converted back to the
        # user's cell rows below.
        box = systems.cell_eff[b] if bool(pbc.any()) else torch.zeros_like(systems.cell_eff[b])
        i, j, s = calculator.compute(points, box, pbc, "ijS")
        i, j = i.to(torch.long), j.to(torch.long)
        if atoms is not None:
            i, j = atoms[i], atoms[j]
        centers.append(i)
        neighbors.append(j)
        shifts.append(to_cell_basis(s.to(torch.long).reshape(-1, 3), systems.basis[b]))  # [E_b, 3]
    if not centers:
        return no_edges(device)
    return torch.cat(centers), torch.cat(neighbors), torch.cat(shifts)


def compute(systems: Systems) -> NeighborList:
    """vesin neighbor list of validated ``systems``."""
    center, neighbor, shifts = candidate_edges(systems)
    return finalize(systems, center, neighbor, shifts, filtered=False)

"""Neighbor lists of open (non-periodic) systems from ``torch_cluster.radius_graph``.

Used only when torch-cluster can be imported; periodic systems are handled
by another backend (see :func:`equinnp.neighbors.radius_graph`).

``torch_cluster.radius_graph`` returns at most ``max_num_neighbors`` neighbors
per center, and on GPU it allocates ``N * max_num_neighbors`` slots. So the
cap starts small and is raised (x4, up to the largest system size, which no
center can reach) whenever some center hit it; a result is only accepted
when every center is strictly below the cap, i.e. nothing was truncated.
"""

from __future__ import annotations

import importlib

import torch
from torch import Tensor

from equinnp.neighbors.common import MARGIN, NeighborList, Systems, finalize, no_edges

_FIRST_CAP = 128


def _module():
    try:
        return importlib.import_module("torch_cluster")
    except ImportError:
        return None


def is_available() -> bool:
    """Whether torch-cluster can be imported."""
    return _module() is not None


def candidate_edges(systems: Systems) -> tuple[Tensor, Tensor, Tensor]:
    """Candidate edges ``(center, neighbor, shifts)`` of open systems.

    Returns
    -------
    tuple of Tensor
        ``[E]`` long centers, ``[E]`` long neighbors and ``[E, 3]`` zero
        shifts (not yet exact-filtered).

    Raises
    ------
    ValueError
        If a system is periodic or torch-cluster is missing.
    RuntimeError
        If torch-cluster truncated a neighborhood even at the largest cap.
    """
    module = _module()
    if module is None:
        raise ValueError("backend='torch_cluster' requires torch-cluster, which is not installed")
    if systems.any_periodic:
        raise ValueError("the torch_cluster backend only handles open (non-periodic) systems")
    device = systems.pos.device
    num_atoms = systems.num_atoms
    if num_atoms == 0:
        return no_edges(device)

    batch = systems.batch
    perm = None
    if num_atoms > 1 and bool((batch[1:] < batch[:-1]).any()):
        perm = torch.argsort(batch, stable=True)  # torch_cluster needs a sorted batch
    pos = systems.pos64 if perm is None else systems.pos64[perm]  # [N, 3]
    sorted_batch = batch if perm is None else batch[perm]  # [N]
    largest = int(torch.bincount(sorted_batch).max())
    radius = systems.cutoff * (1.0 + MARGIN)

    cap = min(_FIRST_CAP, largest)
    while True:
        edge_index = module.radius_graph(
            pos, radius, batch=sorted_batch, loop=False, max_num_neighbors=cap,
            flow="source_to_target",
        )  # [2, E]
        per_center = torch.bincount(edge_index[1], minlength=num_atoms)  # [N]
        most = int(per_center.max()) if per_center.numel() else 0
        if most < cap:
            break
        if cap >= largest:
            raise RuntimeError(
                f"torch_cluster.radius_graph returned {most} neighbors for one atom with "
                f"max_num_neighbors={cap}; the neighbor list may be truncated"
            )
        cap = min(4 * cap, largest)

    neighbor, center = edge_index[0], edge_index[1]
    if perm is not None:
        neighbor, center = perm[neighbor], perm[center]
    shifts = torch.zeros(center.numel(), 3, dtype=torch.long, device=device)  # [E, 3]
    return center, neighbor, shifts


def compute(systems: Systems) -> NeighborList:
    """torch-cluster neighbor list of validated open ``systems``."""
    center, neighbor, shifts = candidate_edges(systems)
    return finalize(systems, center, neighbor, shifts, filtered=False)

"""When edges attached to a ``Data`` (by ``RadiusGraph``) may stand in for a fresh search."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["NEIGHBOR_KEYS", "is_radius_graph", "reusable"]

#: The ``Data`` keys ``RadiusGraph`` attaches: the edges and the record of the search they came from.
NEIGHBOR_KEYS = ("edge_index", "cell_shifts", "neighbor_cutoff", "neighbor_pos", "neighbor_cell")


def is_radius_graph(data) -> bool:
    """Edges from ``RadiusGraph`` come with ``cell_shifts``; an ``edge_index`` alone
    (a bond graph, as in PyG's QM9) is never taken for a radius graph."""
    return getattr(data, "edge_index", None) is not None and getattr(data, "cell_shifts", None) is not None


def reusable(data, cutoff: float, cell: Optional[Tensor]) -> bool:
    """Whether ``data``'s precomputed edges hold every pair within ``cutoff`` at ``data.pos``.

    ``RadiusGraph`` records the radius R it searched (``neighbor_cutoff``, [B])
    and the positions and cells it searched (``neighbor_pos`` [N, 3],
    ``neighbor_cell`` [B, 3, 3]). A pair within c now was within c + 2d then, d
    being the largest displacement of an atom, so the edges are complete while
    2d <= R - c (the skin) and the cells are unchanged.

    Raises
    ------
    ValueError
        For edges without these records, or searched with R < c.
    """
    built_with = getattr(data, "neighbor_cutoff", None)
    built_at = getattr(data, "neighbor_pos", None)
    if built_with is None or built_at is None:
        missing = "cutoff" if built_with is None else "positions"
        raise ValueError(
            f"precomputed edges (edge_index with cell_shifts) carry no record of the {missing} they were "
            f"built for, so they cannot be checked against this model's {cutoff:g} Å cutoff: attach "
            f"them with equinnp.neighbors.RadiusGraph({cutoff:g}), or delete data.edge_index and "
            "data.cell_shifts to let the potential search"
        )
    radius = float(built_with.min())
    if radius < cutoff:
        raise ValueError(
            f"edges were precomputed with a cutoff of {radius:g} Å, shorter than "
            f"this model's {cutoff:g} Å: use RadiusGraph({cutoff:g}) or larger"
        )
    if built_at.shape != data.pos.shape:
        raise ValueError(f"data.neighbor_pos has shape {tuple(built_at.shape)} but data.pos {tuple(data.pos.shape)}")
    if cell is not None:
        built_cell = getattr(data, "neighbor_cell", None)
        if built_cell is None or not torch.equal(built_cell.reshape(-1, 3, 3).to(cell.dtype), cell):
            return False
    if built_at.numel() == 0:
        return True
    moved = torch.linalg.vector_norm(data.pos.detach().double() - built_at.double(), dim=-1).max()
    return bool(2.0 * moved <= radius - cutoff)

"""The reverse of every directed edge, from indices and periodic shifts."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["reverse_edges"]


def reverse_edges(edge_index: Tensor, cell_shifts: Tensor, num_nodes: int) -> Tensor:
    """Index of each edge's reverse: edge ``e`` = (j → i, shift S) ↦ the edge (i → j, shift -S).

    Exact in cells shorter than the cutoff, where several edges join the same
    two atoms (one per image) and an atom is its own neighbor through its
    images: the shift tells them apart.

    Shapes: ``edge_index`` [2, E], ``cell_shifts`` [E, 3] (integer-valued) → [E] long.

    Raises
    ------
    ValueError
        If some edge has no reverse (a one-directional or truncated list).
    """
    E = edge_index.shape[1]
    if E == 0:
        return edge_index.new_zeros(0)
    shifts = cell_shifts.round().long()  # [E, 3]
    span = int(shifts.abs().max()) if shifts.numel() else 0
    base = 2 * span + 1
    code = ((shifts[:, 0] + span) * base + shifts[:, 1] + span) * base + shifts[:, 2] + span  # [E]
    reverse_code = ((-shifts[:, 0] + span) * base - shifts[:, 1] + span) * base - shifts[:, 2] + span  # [E]
    j, i = edge_index[0], edge_index[1]
    cells = base ** 3
    key = (i * num_nodes + j) * cells + code  # [E] (center, neighbor, shift)
    wanted = (j * num_nodes + i) * cells + reverse_code  # [E] (neighbor, center, -shift)
    order = torch.argsort(key)
    sorted_key = key[order]
    position = torch.searchsorted(sorted_key, wanted).clamp(max=E - 1)  # [E]
    found = sorted_key[position] == wanted
    if not bool(found.all()):
        e = int((~found).nonzero()[0])
        raise ValueError(
            f"edge {e} ({int(j[e])} -> {int(i[e])}, shift {shifts[e].tolist()}) has no reverse edge: "
            "the neighbor list is not symmetric"
        )
    return order[position]  # [E]

"""Neighbor lists (radius graphs) for molecules and periodic crystals.

>>> from equinnp.neighbors import radius_graph
>>> nl = radius_graph(pos, cutoff=5.0, batch=batch, cell=cell, pbc=pbc)
>>> j, i = nl.edge_index
>>> r_ij = pos[j] - pos[i] + (nl.cell_shifts.unsqueeze(-1) * cell[batch[i]]).sum(-2)

See ``conventions.md`` in this folder for the edge and shift conventions.
"""

from equinnp.neighbors.common import NeighborList
from equinnp.neighbors.radius_graph import BACKENDS, brute_force_radius_graph, radius_graph
from equinnp.neighbors.transform import RadiusGraph

__all__ = [
    "BACKENDS",
    "NeighborList",
    "RadiusGraph",
    "brute_force_radius_graph",
    "radius_graph",
]

"""All pairs of one small open system as an [N, N] distance matrix.

For a molecule of a few dozen atoms (an MD step, a geometry optimization) the
neighbor search is dominated by the number of tensor operations, not by
arithmetic: the general backends spend ~100 of them on batching, cells and
chunking that a single open system does not need. Here the squared distance
of every ordered pair is one [N, N] matrix,

.. math::
    d^2_{ij} = \\sum_{d=0}^{2} \\left(r_{j,d} - r_{i,d}\\right)^2 \\quad\\text{(float64, terms in order)},

by :func:`equinnp.neighbors.common.sum_of_squares`, the expression
:func:`~equinnp.neighbors.common.exact_filter` evaluates edge by edge, so both
give the same edges bit for bit; ``nonzero`` of the mask
lists them row-major, i.e. sorted by center ``i`` and then neighbor ``j``
(the order of every backend). Memory is N² (``radius_graph(backend="auto")`` takes it for one open
system given without ``batch`` of up to :data:`MAX_ATOMS` atoms; ``backend="dense"``
also searches a batch of open systems, masking pairs of different systems).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from equinnp.neighbors.common import NeighborList, Systems, sum_of_squares

__all__ = ["MAX_ATOMS", "compute", "compute_open"]

#: Largest system ``radius_graph(backend="auto")`` gives to this backend. Measured on the
#: 2-core development machine (one thread, float64, 0.1 atoms/Å³, 5 Å cutoff, CPU ms per call;
#: dense / brute force / vesin): 9 atoms 0.18 / 0.74 / 0.86, 64 atoms 0.25 / 1.25 / 1.49,
#: 150 atoms 0.50 / 1.9 / 2.6, 300 atoms 0.96 / 10.0 / 4.0, 400 atoms 1.8 / 10.6 / 7.3,
#: 450 atoms 6.7 / 17.3 / 7.0 (the [N, N] temporaries no longer fit in cache).
MAX_ATOMS = 400


def _edges(pos_t: Tensor, cutoff: float, batch: Optional[Tensor], dtype: torch.dtype) -> NeighborList:
    dist2 = sum_of_squares(pos_t[d].unsqueeze(0) - pos_t[d].unsqueeze(1) for d in range(3))  # [N, N]: row i, column j
    close = dist2 <= cutoff * cutoff  # [N, N]
    close.fill_diagonal_(False)
    if batch is not None:
        close &= batch.unsqueeze(0) == batch.unsqueeze(1)  # atoms of different systems never connect
    center_neighbor = torch.nonzero(close)  # [E, 2], row-major: sorted by i, then j
    edge_index = center_neighbor.t().flip(0).contiguous()  # [2, E]: (j, i)
    return NeighborList(edge_index, torch.zeros(edge_index.shape[1], 3, dtype=dtype, device=pos_t.device))


def compute_open(pos: Tensor, cutoff: float) -> NeighborList:
    """Edges of one open system: ``pos`` [N, 3] (validated), ``cutoff`` (Å) → :class:`NeighborList`.

    ``edge_index`` [2, E] (row 0 neighbor ``j``, row 1 center ``i``, sorted by
    ``i`` then ``j``) and zero ``cell_shifts`` [E, 3] in the dtype of ``pos``.
    """
    return _edges(pos.detach().to(torch.float64).t(), cutoff, None, pos.dtype)


def compute(systems: Systems) -> NeighborList:
    """Edges of validated open ``systems`` (one or a batch: pairs of different systems are masked out)."""
    batch = systems.batch if systems.num_systems > 1 else None
    return _edges(systems.pos_t, float(systems.cutoff), batch, systems.pos.dtype)

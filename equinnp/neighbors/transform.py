"""PyG transform that attaches a periodic radius graph to a ``Data`` object."""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from equinnp.neighbors.radius_graph import BACKENDS, _as_cutoff, radius_graph


class RadiusGraph(BaseTransform):
    """Add ``edge_index`` and ``cell_shifts`` computed by :func:`radius_graph`, with what they were built for.

    Reads ``data.pos`` ``[N, 3]`` and, when present, ``data.cell``
    (``[1, 3, 3]`` per system, ``[B, 3, 3]`` for a batch, or ``[3, 3]``),
    ``data.pbc`` (``[1, 3]``, ``[B, 3]`` or ``[3]``) and ``data.batch``
    ``[N]``. Searches within ``cutoff + skin`` and writes

    - ``data.edge_index`` ``[2, E]`` (row 0 neighbor ``j``, row 1 center ``i``),
    - ``data.cell_shifts`` ``[E, 3]`` (dtype of ``pos``),
    - ``data.neighbor_cutoff`` ``[1]`` float64: the radius searched, ``cutoff + skin``;
    - ``data.neighbor_pos`` ``[N, 3]``: the positions searched (a copy);
    - ``data.neighbor_cell`` ``[1, 3, 3]``: the cell searched, when there is one.

    ``Potential`` uses these edges only while they are complete for its own
    cutoff c: searched with a radius R >= c, the same cell, and no atom moved by
    more than (R - c) / 2 since; otherwise it searches again. Edges without
    these records are refused. With per-system ``cell`` of shape ``[1, 3, 3]``,
    a PyG ``DataLoader`` batches all of them consistently: ``edge_index`` is
    offset by the node counts and the rest is concatenated.

    Parameters
    ----------
    cutoff : float
        Cutoff radius in Angstrom (the model's).
    skin : float
        Extra search radius (Å), so that the edges stay valid while atoms move by up to ``skin / 2``.
    backend : str
        Backend passed to :func:`radius_graph` (default ``"auto"``).
    """

    def __init__(self, cutoff: float, skin: float = 0.0, backend: str = "auto") -> None:
        self.cutoff = _as_cutoff(cutoff)
        if not (isinstance(skin, (int, float)) and skin >= 0.0 and skin == skin):
            raise ValueError(f"skin must be a number >= 0 (Å), got {skin!r}")
        self.skin = float(skin)
        if backend not in BACKENDS:
            raise ValueError(f"unknown neighbor-list backend {backend!r}; choose one of {BACKENDS}")
        self.backend = backend

    def forward(self, data: Data) -> Data:
        if getattr(data, "pos", None) is None:
            raise ValueError("RadiusGraph needs data.pos, an [N, 3] tensor of positions")
        neighbors = radius_graph(
            data.pos,
            self.cutoff + self.skin,
            batch=getattr(data, "batch", None),
            cell=getattr(data, "cell", None),
            pbc=getattr(data, "pbc", None),
            backend=self.backend,
        )
        data.edge_index = neighbors.edge_index
        data.cell_shifts = neighbors.cell_shifts
        data.neighbor_cutoff = torch.full((1,), self.cutoff + self.skin, dtype=torch.float64)
        data.neighbor_pos = data.pos.detach().clone()
        if getattr(data, "cell", None) is not None:
            data.neighbor_cell = data.cell.detach().clone().reshape(-1, 3, 3)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cutoff={self.cutoff}, skin={self.skin}, backend={self.backend!r})"

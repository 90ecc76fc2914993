"""PyG transform that attaches a periodic radius graph to a ``Data`` object."""

from __future__ import annotations

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from equinnp.neighbors.radius_graph import BACKENDS, _as_cutoff, radius_graph


class RadiusGraph(BaseTransform):
    """Add ``edge_index`` and ``cell_shifts`` computed by :func:`radius_graph`.

    Reads ``data.pos`` ``[N, 3]`` and, when present, ``data.cell``
    (``[1, 3, 3]`` per system, ``[B, 3, 3]`` for a batch, or ``[3, 3]``),
    ``data.pbc`` (``[1, 3]``, ``[B, 3]`` or ``[3]``) and ``data.batch``
    ``[N]``. Writes ``data.edge_index`` ``[2, E]`` (row 0 neighbor ``j``, row 1
    center ``i``), ``data.cell_shifts`` ``[E, 3]`` (dtype of ``pos``) and
    ``data.neighbor_cutoff`` ``[1]`` (this cutoff, so that a potential can
    refuse edges built with a shorter one). With
    per-system ``cell`` of shape ``[1, 3, 3]``, a PyG ``DataLoader`` batches
    all of them consistently: ``edge_index`` is offset by the node counts and
    ``cell``, ``pbc`` and ``cell_shifts`` are concatenated.

    Parameters
    ----------
    cutoff : float
        Cutoff radius in Angstrom.
    backend : str
        Backend passed to :func:`radius_graph` (default ``"auto"``).
    """

    def __init__(self, cutoff: float, backend: str = "auto") -> None:
        self.cutoff = _as_cutoff(cutoff)
        if backend not in BACKENDS:
            raise ValueError(f"unknown neighbor-list backend {backend!r}; choose one of {BACKENDS}")
        self.backend = backend

    def forward(self, data: Data) -> Data:
        if getattr(data, "pos", None) is None:
            raise ValueError("RadiusGraph needs data.pos, an [N, 3] tensor of positions")
        neighbors = radius_graph(
            data.pos,
            self.cutoff,
            batch=getattr(data, "batch", None),
            cell=getattr(data, "cell", None),
            pbc=getattr(data, "pbc", None),
            backend=self.backend,
        )
        data.edge_index = neighbors.edge_index
        data.cell_shifts = neighbors.cell_shifts
        data.neighbor_cutoff = torch.full((1,), self.cutoff, dtype=torch.float64)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(cutoff={self.cutoff}, backend={self.backend!r})"

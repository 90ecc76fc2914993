"""Statistics of a set of structures that potentials fit their data-dependent constants from.

One :class:`DatasetStatistics` is computed per dataset and handed to every stage
that needs something from the data (``Potential.fit``, ``AtomisticModel.fit``):
each statistic is computed on first use and cached, so a model that needs no
neighbor counts never pays for a neighbor search.
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, List, Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data

__all__ = ["DatasetStatistics"]


class DatasetStatistics:
    """Lazily computed statistics of structures (``Data`` records with ``z``, ``pos`` and labels).

    Parameters
    ----------
    records : iterable of Data
        A list of records or a dataset (anything with ``len`` and indexing, or an iterable).
    """

    def __init__(self, records: Iterable[Data]):
        if hasattr(records, "__len__") and hasattr(records, "__getitem__"):
            self.records: List[Data] = [records[k] for k in range(len(records))]
        else:
            self.records = list(records)
        if not self.records:
            raise ValueError("cannot compute statistics of an empty dataset")
        self._neighbors: Dict[float, float] = {}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def elements(self) -> List[int]:
        """Sorted atomic numbers present."""
        return sorted({int(z) for r in self.records for z in r.z.tolist()})

    def composition(self, elements: Sequence[int]) -> np.ndarray:
        """Element counts [M, K] of the M structures over ``elements``."""
        index = {int(z): k for k, z in enumerate(elements)}
        counts = np.zeros((len(self.records), len(index)))
        for m, record in enumerate(self.records):
            for z in record.z.tolist():
                if z not in index:
                    raise ValueError(f"structure {m} has element {z}, not in the model's elements {list(elements)}")
                counts[m, index[z]] += 1
        return counts

    def energies(self) -> np.ndarray:
        """Total energies [M] (eV) in float64."""
        values = []
        for m, record in enumerate(self.records):
            if getattr(record, "energy", None) is None:
                raise ValueError(f"structure {m} has no energy label")
            values.append(float(record.energy.reshape(-1)[0]))
        return np.array(values, dtype=np.float64)

    def rms_forces(self) -> float:
        """Root mean square of all force components (eV/Å)."""
        total, count = 0.0, 0
        for m, record in enumerate(self.records):
            if getattr(record, "forces", None) is None:
                raise ValueError(f"structure {m} has no force labels: the RMS of forces needs them (use scale='energy_std' or a number)")
            total += float(record.forces.double().square().sum())
            count += record.forces.numel()
        if count == 0:
            raise ValueError("no force components to compute the RMS of")
        return math.sqrt(total / count)

    def energy_residual_std(self, reference: Dict[int, float]) -> float:
        """Standard deviation of :math:`(E_m - \\sum_i E^{ref}_{Z_i}) / N_m` over structures (eV/atom)."""
        if len(self.records) < 2:
            raise ValueError("the spread of per-atom energies needs at least two structures")
        residuals = [
            (e - sum(reference.get(int(z), 0.0) for z in r.z.tolist())) / r.z.numel()
            for e, r in zip(self.energies(), self.records)
        ]
        return float(np.std(residuals, ddof=1))

    def avg_num_neighbors(self, cutoff: float, chunk: int = 256) -> float:
        """Mean number of neighbors within ``cutoff`` per atom that has at least one (as mace-torch counts).

        Periodic images are counted. Atoms without neighbors (isolated atoms)
        are left out of the mean, as in mace-torch's ``compute_avg_num_neighbors``.
        """
        from equinnp.neighbors import radius_graph

        cutoff = float(cutoff)
        if cutoff not in self._neighbors:
            edges, centers = 0, 0
            for start in range(0, len(self.records), chunk):
                keys = ("z", "pos", "cell", "pbc")
                batch = Batch.from_data_list([Data(**{k: r[k] for k in keys if k in r}) for r in self.records[start : start + chunk]])
                neighbors = radius_graph(batch.pos, cutoff, batch=batch.batch, cell=getattr(batch, "cell", None), pbc=getattr(batch, "pbc", None))
                receivers = neighbors.edge_index[1]
                edges += receivers.numel()
                centers += int(torch.unique(receivers).numel())
            if centers == 0:
                raise ValueError(f"no atom has a neighbor within {cutoff:g} Å: cannot average the number of neighbors")
            self._neighbors[cutoff] = edges / centers
        return self._neighbors[cutoff]

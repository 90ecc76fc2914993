"""Atomic reference energies: the composition-dependent part of the total energy."""

from __future__ import annotations

import warnings
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from equinnp.postprocessing.base import EnergyTerm
from equinnp.postprocessing.float64 import keep_float64

__all__ = ["AtomicReferenceEnergies", "ReferenceEnergyFit", "fit_reference_energies", "reference_energy_fit"]


class AtomicReferenceEnergies(EnergyTerm):
    r"""Adds a fixed energy per element, :math:`E_i \mathrel{+}= E^{\mathrm{ref}}_{Z_i}` (eV).

    An additive postprocessing term: returns the per-atom contribution [N]
    (float64), independent of any other term. The energies stay float64
    whatever the network's dtype: a float32 reference energy of C (about
    -1029.489 eV) would be off by ~1e-5 eV per atom.
    """

    name = "reference_energies"
    fit_options = ("reference_energies",)
    _apply = keep_float64

    def __init__(self, elements: Sequence[int], energies: Optional[Union[Sequence[float], Mapping[int, float]]] = None):
        super().__init__()
        self.elements = [int(e) for e in elements]
        self.register_buffer("energies", torch.zeros(len(self.elements), dtype=torch.float64))
        if energies is not None:
            self.set(energies)

    def set(self, energies: Union[Sequence[float], Mapping[int, float]]) -> None:
        """Set from a list in ``elements`` order or a mapping atomic number → eV."""
        if isinstance(energies, Mapping):
            unknown = sorted(set(int(k) for k in energies) - set(self.elements))
            if unknown:
                raise ValueError(f"reference energies given for elements {unknown} that the model does not have {self.elements}")
            values = [float(energies.get(z, energies.get(str(z), 0.0))) for z in self.elements]
        else:
            values = [float(v) for v in energies]
            if len(values) != len(self.elements):
                raise ValueError(f"need {len(self.elements)} reference energies (elements {self.elements}), got {len(values)}")
        self.energies.copy_(torch.tensor(values, dtype=torch.float64))

    def as_dict(self) -> dict:
        return {z: float(e) for z, e in zip(self.elements, self.energies.tolist())}

    def fit(self, statistics, fitted: dict, reference_energies="fit") -> dict:
        """``reference_energies``: "fit" (least squares, :func:`reference_energy_fit`), a dict or
        list to set, or None to keep. The fit's rank is recorded under ``fit_info``."""
        self.fit_info = {}
        if reference_energies is None:
            return {}
        if isinstance(reference_energies, str):
            if reference_energies != "fit":
                raise ValueError(f"reference_energies must be 'fit', a dict, a list or None, got {reference_energies!r}")
            result = reference_energy_fit(statistics, self.elements)
            self.set(result.energies)
            self.fit_info = result.info()
        else:
            self.set(reference_energies)
            self.fit_info = {"method": "given"}
        return {"reference_energies": self.as_dict()}

    def per_atom(self, species: Tensor) -> Tensor:
        return self.energies[species]  # [N] float64

    def forward(self, graph, atomic) -> Tensor:
        return self.energies[graph.species]  # [N] float64

    def extra_repr(self) -> str:
        return f"energies={self.as_dict()}"


class ReferenceEnergyFit(NamedTuple):
    """Result of a least-squares fit of atomic reference energies.

    Attributes
    ----------
    energies : dict
        Atomic number → reference energy (eV).
    rank : int
        Rank of the [structures x elements] composition matrix.
    num_elements : int
        Number of elements present in the data (absent ones get 0 eV).
    identifiable : bool
        ``rank == num_elements``: each element's energy is determined by the data.
        False when compositions are proportional (one molecule's MD, e.g. rMD17):
        then only combinations are determined and the minimum-norm split is not physical.
    absent : list of int
        Elements of the model that no structure contains.
    """

    energies: Dict[int, float]
    rank: int
    num_elements: int
    identifiable: bool
    absent: List[int]

    def info(self) -> dict:
        """Plain values for a saved potential's metadata."""
        return {
            "method": "least_squares",
            "rank": self.rank,
            "num_elements": self.num_elements,
            "identifiable": self.identifiable,
            "absent_elements": list(self.absent),
        }


def reference_energy_fit(dataset, elements: Sequence[int]) -> ReferenceEnergyFit:
    r"""Least-squares atomic reference energies from total energies, with the rank of the problem.

    Solves :math:`\min_{E^{\mathrm{ref}}} \sum_m (E_m - \sum_Z n_{mZ} E^{\mathrm{ref}}_Z)^2`
    where :math:`n_{mZ}` counts element Z in structure m. When the composition
    matrix has lower rank than the number of elements present (all structures
    the same molecule, as in rMD17), the elements are not separately
    identifiable: ``lstsq`` returns the minimum-norm solution, which still
    reproduces the energies of these compositions but splits them in
    proportion to the element counts (ethanol: H -616, C -205, O -103 eV), so
    that an isolated atom's energy is meaningless. A ``UserWarning`` says so
    and ``identifiable`` is False.

    Parameters
    ----------
    dataset : iterable of Data or DatasetStatistics
        Records with ``z`` and ``energy``.
    elements : sequence of int
    """
    from equinnp.data.statistics import DatasetStatistics

    elements = [int(e) for e in elements]
    stats = dataset if isinstance(dataset, DatasetStatistics) else DatasetStatistics(dataset)
    counts = stats.composition(elements)  # [M, K]
    energies = stats.energies()  # [M]
    present = counts.sum(axis=0) > 0
    solution = np.zeros(len(elements))
    solution[present], *_ = np.linalg.lstsq(counts[:, present], energies, rcond=None)
    rank = int(np.linalg.matrix_rank(counts[:, present]))
    num_present = int(present.sum())
    fit = ReferenceEnergyFit(
        energies={z: float(e) for z, e in zip(elements, solution)},
        rank=rank,
        num_elements=num_present,
        identifiable=rank == num_present,
        absent=[z for z, p in zip(elements, present) if not p],
    )
    if not fit.identifiable:
        warnings.warn(
            f"atomic reference energies are not identifiable from these {len(stats)} structures: their "
            f"compositions span only {rank} of {num_present} elements (e.g. one molecule's conformers), so the "
            f"least-squares split {', '.join(f'Z={z}: {e:.2f} eV' for z, e in fit.energies.items())} is not "
            "physical (energies of other compositions and isolated atoms will be wrong). Give "
            "reference_energies= from isolated-atom calculations for transferable energies.",
            UserWarning,
            stacklevel=2,
        )
    return fit


def fit_reference_energies(dataset: Iterable, elements: Sequence[int]) -> dict:
    """Atomic number → least-squares reference energy (eV); see :func:`reference_energy_fit`."""
    return reference_energy_fit(dataset, elements).energies

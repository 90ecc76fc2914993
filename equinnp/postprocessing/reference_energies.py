"""Atomic reference energies: the composition-dependent part of the total energy."""

from __future__ import annotations

from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["AtomicReferenceEnergies", "fit_reference_energies"]


class AtomicReferenceEnergies(nn.Module):
    r"""Adds a fixed energy per element, :math:`E_i \mathrel{+}= E^{\mathrm{ref}}_{Z_i}` (eV).

    An additive postprocessing term: returns the per-atom contribution [N]
    (float64), independent of any other term.
    """

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

    def forward(self, species: Tensor) -> Tensor:
        return self.energies[species]  # [N]

    def extra_repr(self) -> str:
        return f"energies={self.as_dict()}"


def fit_reference_energies(dataset: Iterable, elements: Sequence[int]) -> dict:
    r"""Least-squares atomic reference energies from total energies.

    Solves :math:`\min_{E^{\mathrm{ref}}} \sum_m (E_m - \sum_Z n_{mZ} E^{\mathrm{ref}}_Z)^2`
    where :math:`n_{mZ}` counts element Z in structure m. Elements whose counts are
    the same multiple in every structure (e.g. a single molecule's MD) are
    not separately identifiable; ``lstsq`` returns the minimum-norm solution then,
    which still reproduces the mean energy.

    Parameters
    ----------
    dataset : iterable of Data
        Records with ``z`` and ``energy``.
    elements : sequence of int

    Returns
    -------
    dict
        Atomic number → reference energy (eV).
    """
    elements = [int(e) for e in elements]
    index = {z: k for k, z in enumerate(elements)}
    counts, energies = [], []
    for data in dataset:
        row = np.zeros(len(elements))
        for z in data.z.tolist():
            if z not in index:
                raise ValueError(f"dataset has element {z}, not in the model's elements {elements}")
            row[index[z]] += 1
        counts.append(row)
        energies.append(float(data.energy.reshape(-1)[0]))
    if not counts:
        raise ValueError("cannot fit reference energies from an empty dataset")
    solution, *_ = np.linalg.lstsq(np.array(counts), np.array(energies), rcond=None)
    return {z: float(e) for z, e in zip(elements, solution)}

"""Shared pieces of the file-based datasets: unit factors, label look-up, collation.

Every dataset in :mod:`equinnp.data.datasets` turns its file format into the
standard records of :mod:`equinnp.data.atoms` (Å, eV, eV/Å, eV/Å³) when the
file is read; nothing downstream converts units again.
"""

from __future__ import annotations

import warnings
from typing import Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch
from ase import units
from torch_geometric.data import Data, InMemoryDataset

from equinnp.data.atoms import from_arrays

__all__ = [
    "ENERGY_UNITS",
    "LENGTH_UNITS",
    "RecordDataset",
    "energy_factor",
    "length_factor",
    "as_scalar",
    "finite_rows",
    "make_record",
    "index_list",
    "missing_key_error",
    "resolve_dtype",
    "warn_skipped",
]

# eV per unit of energy, Å per unit of length (ase.units, CODATA 2014 in ASE 3.29).
ENERGY_UNITS = {
    "ev": 1.0,
    "mev": 1e-3,
    "kcal/mol": units.kcal / units.mol,
    "kj/mol": units.kJ / units.mol,
    "hartree": units.Hartree,
    "ha": units.Hartree,
    "rydberg": units.Rydberg,
    "ry": units.Rydberg,
}
LENGTH_UNITS = {
    "å": 1.0,
    "a": 1.0,
    "ang": 1.0,
    "angstrom": 1.0,
    "bohr": units.Bohr,
    "nm": units.nm,
}


def _factor(unit: str, table: Mapping[str, float], what: str) -> float:
    key = str(unit).strip().lower()
    if key not in table:
        raise ValueError(f"unknown {what} unit {unit!r}; known units: {sorted(table)}")
    return table[key]


def energy_factor(unit: str) -> float:
    """eV per ``unit`` (e.g. ``"kcal/mol"`` → 0.0433641)."""
    return _factor(unit, ENERGY_UNITS, "energy")


def length_factor(unit: str) -> float:
    """Å per ``unit`` (e.g. ``"bohr"`` → 0.529177)."""
    return _factor(unit, LENGTH_UNITS, "length")


def missing_key_error(
    key: str, what: str, where: str, available: Iterable[str], can_skip: bool = True
) -> ValueError:
    """A ``ValueError`` naming the missing label key and listing the keys that exist."""
    listed = sorted({str(k) for k in available})
    hint = f"Pass the name the file uses ({what.replace(' ', '_')}_key=...)"
    if can_skip:
        hint += f", or {what.replace(' ', '_')}_key=None to read no {what}"
    return ValueError(f"{what} key {key!r} not found in {where}; keys present: {listed}. {hint}")


def warn_skipped(skipped: int, total: int, reason: str, source: str) -> None:
    """Warn once per file about frames that were dropped."""
    if skipped:
        warnings.warn(
            f"{source}: skipped {skipped} of {total} conformers because {reason}",
            UserWarning,
            stacklevel=3,
        )


def as_scalar(value, name: str) -> float:
    """A label stored as a number or a one-element array → float."""
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if array.size != 1:
        raise ValueError(f"{name} must be one number per structure, got shape {np.shape(value)}")
    return float(array[0])


class RecordDataset(InMemoryDataset):
    """An in-memory PyG dataset built from a list of standard ``Data`` records.

    Energies are kept in float64 whatever ``dtype`` is: a total energy of
    ~1e4 eV in float32 is rounded by up to ~1 meV, the size of the errors that
    good potentials reach on rMD17. Positions, forces, stress, cell, charge and
    spin use ``dtype`` (default: ``torch.get_default_dtype()``).

    Parameters
    ----------
    records : list of Data
        Records from :func:`equinnp.data.from_arrays`.
    transform : callable, optional
        PyG transform applied on access (e.g. ``equinnp.neighbors.RadiusGraph``).
    """

    def __init__(self, records: Sequence[Data], transform=None) -> None:
        super().__init__(None, transform)
        records = list(records)
        if not records:
            raise ValueError(f"{type(self).__name__}: no structures were read")
        keys = set(records[0].keys())
        for k, record in enumerate(records):
            if set(record.keys()) != keys:
                raise ValueError(
                    f"{type(self).__name__}: structure {k} has the fields {sorted(record.keys())} but "
                    f"structure 0 has {sorted(keys)}; one dataset must label every structure alike "
                    "(for example all periodic or none, all with forces or none)"
                )
        self._data, self.slices = self.collate(records)

    @staticmethod
    def resolve_dtype(dtype) -> torch.dtype:
        return resolve_dtype(dtype)


def resolve_dtype(dtype) -> torch.dtype:
    """``None`` → the default dtype; ``"float32"``/``"float64"`` or a torch dtype → that dtype."""
    if dtype is None:
        return torch.get_default_dtype()
    if isinstance(dtype, str):
        name = dtype.replace("torch.", "")
        if name not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        return getattr(torch, name)
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return dtype


def make_record(z, pos, cell=None, pbc=None, *, energy=None, dtype=None, **labels) -> Data:
    """:func:`equinnp.data.from_arrays` with ``energy`` [1] kept in float64 (see :class:`RecordDataset`)."""
    data = from_arrays(z, pos, cell, pbc, dtype=dtype, **labels)
    if energy is not None:
        data.energy = torch.tensor([float(energy)], dtype=torch.float64)
    return data


def finite_rows(*arrays: Optional[np.ndarray]) -> np.ndarray:
    """Boolean [n]: True where every given per-conformer array is finite."""
    keep: Optional[np.ndarray] = None
    for array in arrays:
        if array is None:
            continue
        ok = np.isfinite(np.asarray(array, dtype=np.float64).reshape(len(array), -1)).all(axis=1)
        keep = ok if keep is None else keep & ok
    return keep


def index_list(index, length: int) -> List[int]:
    """Normalize an ``int``, ``slice``, ASE index string or array to a list of row numbers."""
    if isinstance(index, str):
        from ase.io.formats import string2index

        index = string2index(index)
    rows = np.arange(length)
    if isinstance(index, (int, np.integer)):
        if not -length <= index < length:
            raise ValueError(f"index {index} out of range for {length} structures")
        return [int(rows[index])]
    if isinstance(index, slice):
        return rows[index].tolist()
    array = np.asarray(index)
    if array.dtype == bool:
        return rows[array].tolist()
    if array.size and (array.min() < -length or array.max() >= length):
        raise ValueError(f"indices must lie in [0, {length}), got min {array.min()} max {array.max()}")
    return rows[array.astype(np.int64)].tolist()

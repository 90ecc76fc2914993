"""Anything ``ase.io.read`` reads (extxyz, traj, ...) and ASE databases → standard records.

Labels are looked up by name, in this order: the calculator results
(``atoms.calc.results``), ``atoms.info``, ``atoms.arrays``; for an ASE database
row first ``row.data`` and the row's key-value pairs, then the calculator
results stored with the row. Values are converted from ``energy_unit`` and
``length_unit`` to eV and Å (forces: energy/length, stress: energy/length³).
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch_geometric.data import Data

from equinnp.data.datasets.base import (
    RecordDataset,
    make_record,
    as_scalar,
    energy_factor,
    index_list,
    length_factor,
)

__all__ = ["ASEDataset", "DB_SUFFIXES"]

DB_SUFFIXES = (".db",)
_MISSING = object()
_STRUCTURE_ARRAYS = ("numbers", "positions")
# Optional labels: read when the file has them under the default name.
_OPTIONAL_DEFAULTS = {"stress": "stress", "charge": "charge", "spin": "spin", "charges": "charges", "dipole": "dipole"}


def _sources(atoms, row=None) -> List[Tuple[str, dict]]:
    """(where, mapping) pairs searched for a label, in order."""
    found = []
    if row is not None:
        found.append(("row.data", dict(row.data)))
        found.append(("row key-value pairs", dict(row.key_value_pairs)))
    if atoms.calc is not None:
        found.append(("calculator results", dict(atoms.calc.results)))
    found.append(("atoms.info", dict(atoms.info)))
    arrays = {k: v for k, v in atoms.arrays.items() if k not in _STRUCTURE_ARRAYS}
    found.append(("atoms.arrays", arrays))
    return found


def _lookup(key: str, sources):
    for _, mapping in sources:
        if key in mapping:
            return mapping[key]
    return _MISSING


def _key_listing(sources) -> List[str]:
    return [f"{key} ({where})" for where, mapping in sources for key in mapping]


class ASEDataset(RecordDataset):
    """Structures and labels from any file ASE reads, or from an ASE database.

    Parameters
    ----------
    path : str or PathLike
        An ``ase.io.read`` file (extxyz, traj, ...) or an ASE database (``.db``).
    index : str, int, slice or array of int
        Frames to read, ASE syntax (``":"`` all, ``"::10"``, ``-1``); for a
        database, positions in ``db.select()`` order.
    energy_key, forces_key : str or None
        Names of the energy and force labels; required in every frame unless
        set to ``None`` (e.g. ``forces_key="force"`` for metatrain's carbon
        files, ``energy_key="U0", forces_key=None`` for QM9 extxyz).
    stress_key, charge_key, spin_key : str or None
        Stress (ASE convention, Voigt [6] or [3, 3]), total charge (e) and spin
        multiplicity. Under their default names (``"stress"``, ``"charge"``,
        ``"spin"``) they are read when every frame has them and left out when
        no frame has them; a name you choose (``charge_key="total_charge"``) is
        required in every frame. ``None`` never reads the label.
    charges_key, dipole_key : str or None
        Reference partial charges (e, [N] per frame) and dipole moment (e·Å
        in ``length_unit``, [3] per frame), labels for models that predict
        charges; optional under their default names as above (the Ag3 and
        carbene databases of SchNetPack call the dipole ``"dipole_moment"``).
    energy_unit : str
        ``"eV"``, ``"meV"``, ``"kcal/mol"``, ``"kJ/mol"``, ``"hartree"``, ``"Ry"``.
    length_unit : str
        ``"Å"``, ``"bohr"`` or ``"nm"``: unit of positions and cell; forces are
        read in energy_unit/length_unit and stress in energy_unit/length_unit³.
    transform : callable, optional
        PyG transform applied on access (e.g. ``RadiusGraph(cutoff)``).
    dtype : torch.dtype or str, optional
        Floating dtype of positions, forces, stress, cell (energies are float64).
    format : str, optional
        ASE format name, when the suffix does not tell.

    Shapes
    ------
    Each record: ``z`` [N], ``pos`` [N, 3], optional ``cell`` [1, 3, 3] and
    ``pbc`` [1, 3], ``charge`` [1], ``spin`` [1], ``energy`` [1], ``forces``
    [N, 3], ``stress`` [1, 3, 3], ``charges`` [N], ``dipole`` [1, 3].
    """

    def __init__(
        self,
        path,
        index=":",
        energy_key: Optional[str] = "energy",
        forces_key: Optional[str] = "forces",
        stress_key: Optional[str] = "stress",
        charge_key: Optional[str] = "charge",
        spin_key: Optional[str] = "spin",
        charges_key: Optional[str] = "charges",
        dipole_key: Optional[str] = "dipole",
        energy_unit: str = "eV",
        length_unit: str = "Å",
        transform=None,
        dtype=None,
        format: Optional[str] = None,
    ) -> None:
        dtype = self.resolve_dtype(dtype)
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise ValueError(f"ASEDataset: file {self.path!r} does not exist")
        energy_scale = energy_factor(energy_unit)  # eV per file unit
        length_scale = length_factor(length_unit)  # Å per file unit
        frames = self._read(index, format)
        keys = {
            "energy": energy_key,
            "forces": forces_key,
            "stress": stress_key,
            "charge": charge_key,
            "spin": spin_key,
            "charges": charges_key,
            "dipole": dipole_key,
        }
        labels = {name: self._labels(name, key, frames) for name, key in keys.items()}
        records: List[Data] = []
        for k, (atoms, _) in enumerate(frames):
            label = {name: values[k] for name, values in labels.items() if values is not None}
            periodic = bool(np.any(atoms.pbc))
            record = make_record(
                atoms.get_atomic_numbers(),
                atoms.get_positions() * length_scale,
                cell=np.asarray(atoms.get_cell()) * length_scale if periodic else None,
                pbc=atoms.pbc if periodic else None,
                charge=as_scalar(label["charge"], charge_key) if "charge" in label else None,
                spin=as_scalar(label["spin"], spin_key) if "spin" in label else None,
                energy=as_scalar(label["energy"], energy_key) * energy_scale if "energy" in label else None,
                forces=np.asarray(label["forces"], dtype=np.float64) * (energy_scale / length_scale)
                if "forces" in label
                else None,
                stress=np.asarray(label["stress"], dtype=np.float64) * (energy_scale / length_scale**3)
                if "stress" in label
                else None,
                dtype=dtype,
            )
            if "charges" in label:
                charges = np.asarray(label["charges"], dtype=np.float64).reshape(-1)
                if charges.shape[0] != record.num_nodes:
                    raise ValueError(f"{charges_key!r} of frame {k} of {self.path!r} has {charges.shape[0]} values for {record.num_nodes} atoms")
                record.charges = torch.as_tensor(charges, dtype=record.pos.dtype)  # [N]
            if "dipole" in label:
                dipole = np.asarray(label["dipole"], dtype=np.float64).reshape(-1)
                if dipole.shape[0] != 3:
                    raise ValueError(f"{dipole_key!r} of frame {k} of {self.path!r} must have 3 components, got shape {np.shape(label['dipole'])}")
                record.dipole = torch.as_tensor(dipole * length_scale, dtype=record.pos.dtype).reshape(1, 3)  # [1, 3]
            records.append(record)
        super().__init__(records, transform)

    def _read(self, index, format):
        """List of (atoms, db row or None)."""
        is_db = format == "db" or (format is None and self.path.lower().endswith(DB_SUFFIXES))
        if is_db:
            import ase.db

            rows = list(ase.db.connect(self.path).select())
            return [(rows[k].toatoms(), rows[k]) for k in index_list(index, len(rows))]
        import ase.io

        frames = ase.io.read(self.path, index=index, format=format)
        if not isinstance(frames, list):
            frames = [frames]
        return [(atoms, None) for atoms in frames]

    def _labels(self, name: str, key: Optional[str], frames) -> Optional[list]:
        """The label ``name`` of every frame, or None when it is not read."""
        if key is None:
            return None
        values = [_lookup(key, _sources(atoms, row)) for atoms, row in frames]
        missing = [k for k, value in enumerate(values) if value is _MISSING]
        if not missing:
            return values
        optional = _OPTIONAL_DEFAULTS.get(name) == key
        if optional and len(missing) == len(values):
            return None
        k = missing[0]
        atoms, row = frames[k]
        where = f"frame {k} of {self.path!r}"
        if optional:
            where += f" (other frames have it: {len(values) - len(missing)} of {len(values)})"
        listing = _key_listing(_sources(atoms, row))
        raise ValueError(
            f"{name} key {key!r} not found in {where}; keys present: {listing}. "
            f"Pass the name the file uses ({name}_key=...), or {name}_key=None to read no {name}"
        )

"""SPICE HDF5 release files → standard records (Å, eV, eV/Å).

P. Eastman et al., "SPICE, A Dataset of Drug-like Molecules and Peptides for
Training Machine Learning Potentials", Sci. Data 10, 11 (2023).
ωB97M-D3(BJ)/def2-TZVPPD.

Layout: one group per molecule with ``atomic_numbers`` [N],
``conformations`` [n, N, 3] (bohr), ``dft_total_energy`` [n] (hartree),
``dft_total_gradient`` [n, N, 3] (hartree/bohr) and ``smiles`` (mapped SMILES
with every atom in brackets). Each dataset's ``units`` attribute is honored
when present. Forces are minus the gradient::

    F = -dE/dR  →  forces [eV/Å] = -gradient [hartree/bohr] · (Hartree / Bohr)
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence

import numpy as np
import torch
from torch_geometric.data import Data

from equinnp.data.datasets.base import (
    RecordDataset,
    make_record,
    energy_factor,
    finite_rows,
    length_factor,
    missing_key_error,
    warn_skipped,
)

__all__ = ["SPICEDataset", "is_spice_file", "smiles_charge"]

_BRACKET_ATOM = re.compile(r"\[([^\]]+)\]")
_CHARGE = re.compile(r"(\++|-+)(\d*)")


def smiles_charge(smiles: str) -> int:
    """Total formal charge of a SMILES string (sum over bracket atoms like ``[N+:9]``, ``[O-]``, ``[Fe+2]``).

    Charges can only be written inside brackets, so atoms outside them carry none.
    """
    total = 0
    for atom in _BRACKET_ATOM.findall(smiles):
        atom = atom.split(":")[0]  # drop the atom-map number
        match = _CHARGE.search(atom)
        if match is None:
            continue
        signs, digits = match.groups()
        size = int(digits) if digits else len(signs)
        total += size if signs[0] == "+" else -size
    return total


def _text(value) -> str:
    value = np.asarray(value).reshape(-1)[0] if np.ndim(value) else value
    return value.decode() if isinstance(value, bytes) else str(value)


def _molecule_charge(group) -> float:
    """Total charge of a SPICE molecule group, in this order of preference:
    sum of a ``formal_charges`` dataset, a ``charge``/``total_charge`` attribute
    or dataset, the formal charges written in ``smiles``."""
    if "formal_charges" in group:
        return float(np.sum(group["formal_charges"][()]))
    for key in ("charge", "total_charge"):
        if key in group.attrs:
            return float(np.asarray(group.attrs[key]).reshape(-1)[0])
        if key in group:
            return float(np.asarray(group[key][()]).reshape(-1)[0])
    if "smiles" in group:
        return float(smiles_charge(_text(group["smiles"][()])))
    raise ValueError(
        f"SPICE group {group.name!r} has no formal_charges, charge attribute or smiles to give its "
        f"total charge; datasets present: {sorted(group)}"
    )


def _unit(dataset, default: str) -> str:
    unit = dataset.attrs.get("units", default)
    return unit.decode() if isinstance(unit, bytes) else str(unit)


def is_spice_file(handle) -> bool:
    """True when the open ``h5py.File`` has SPICE's per-molecule layout."""
    for name in handle:
        group = handle[name]
        return hasattr(group, "keys") and "conformations" in group and "atomic_numbers" in group
    return False


class SPICEDataset(RecordDataset):
    """Conformers from a SPICE release HDF5 file, with total charge per molecule.

    Parameters
    ----------
    path : str or PathLike
        SPICE ``.hdf5`` (one group per molecule).
    energy_key, gradient_key : str
        Datasets holding the energy (hartree) and its gradient (hartree/bohr);
        ``gradient_key=None`` reads no forces.
    molecules : list of str, optional
        Group names to read (all by default).
    subsets : list of str, optional
        Keep only molecules whose ``subset`` string contains one of these
        (e.g. ``["PubChem", "DES370K"]``).
    transform : callable, optional
        PyG transform applied on access.
    dtype : torch.dtype or str, optional
        Floating dtype of positions and forces (energies are float64).
    charges_key, dipole_key : str, optional
        Datasets of reference partial charges ([n, N] or [n, N, 1], e; e.g.
        ``"mbis_charges"``) and dipoles ([n, 3], e·bohr unless its ``units``
        say otherwise; e.g. ``"scf_dipole"``), read as the ``charges`` [N]
        and ``dipole`` [1, 3] (e·Å) labels. Off by default; when given, every
        molecule read must have them (SPICE 1.1.4 has MBIS charges for most
        molecules but not all). SPICE does not state the origin of its dipoles;
        equinnp's predicted dipole is about the centre of mass, which matters
        for ions only.

    Conformers whose energy or gradient is not finite are skipped with a warning.

    Shapes
    ------
    Each record: ``z`` [N], ``pos`` [N, 3], ``charge`` [1], ``energy`` [1], ``forces`` [N, 3],
    optionally ``charges`` [N] and ``dipole`` [1, 3].
    """

    def __init__(
        self,
        path,
        energy_key: str = "dft_total_energy",
        gradient_key: Optional[str] = "dft_total_gradient",
        molecules: Optional[Sequence[str]] = None,
        subsets: Optional[Sequence[str]] = None,
        transform=None,
        dtype=None,
        charges_key: Optional[str] = None,
        dipole_key: Optional[str] = None,
    ) -> None:
        import h5py

        dtype = self.resolve_dtype(dtype)
        self.path = os.fspath(path)
        records: List[Data] = []
        skipped = total = 0
        with h5py.File(self.path, "r") as handle:
            names = list(handle) if molecules is None else list(molecules)
            for name in names:
                if name not in handle:
                    raise ValueError(f"molecule {name!r} is not in {self.path!r} ({len(handle)} groups)")
                group = handle[name]
                if subsets is not None:
                    subset = _text(group["subset"][()]) if "subset" in group else ""
                    if not any(s in subset for s in subsets):
                        continue
                where = f"SPICE molecule {name!r} of {self.path!r}"
                for key in ("conformations", "atomic_numbers"):
                    if key not in group:
                        raise ValueError(f"{where} has no {key!r} dataset (not the SPICE layout); "
                                         f"datasets present: {sorted(group)}")
                if energy_key not in group:
                    raise missing_key_error(energy_key, "energy", where, group.keys(), can_skip=False)
                if gradient_key is not None and gradient_key not in group:
                    raise missing_key_error(gradient_key, "gradient", where, group.keys())
                angstrom = length_factor(_unit(group["conformations"], "bohr"))
                pos = group["conformations"][()].astype(np.float64) * angstrom  # [n, N, 3] Å
                energy = group[energy_key][()].astype(np.float64) * energy_factor(
                    _unit(group[energy_key], "hartree")
                )  # [n] eV
                forces = None
                if gradient_key is not None:
                    gradient = group[gradient_key]
                    energy_unit, _, length_unit = _unit(gradient, "hartree/bohr").partition("/")
                    forces = -gradient[()].astype(np.float64) * (
                        energy_factor(energy_unit) / length_factor(length_unit or "bohr")
                    )  # [n, N, 3] eV/Å
                for key, what in ((charges_key, "charges"), (dipole_key, "dipole")):
                    if key is not None and key not in group:
                        raise ValueError(f"{where} has no {key!r} dataset ({what}_key); datasets present: {sorted(group)}. "
                                         f"Read other molecules (molecules=...) or set {what}_key=None")
                charges = None if charges_key is None else group[charges_key][()].astype(np.float64).reshape(len(pos), -1)  # [n, N] e
                dipoles = None
                if dipole_key is not None:
                    dipole_unit = _unit(group[dipole_key], "e*bohr").replace("elementary_charge", "e").replace(" ", "")
                    dipoles = group[dipole_key][()].astype(np.float64).reshape(len(pos), 3) * length_factor(dipole_unit.split("*")[-1])  # [n, 3] e·Å
                z = group["atomic_numbers"][()]
                charge = _molecule_charge(group)
                keep = finite_rows(energy, forces)
                total += len(keep)
                skipped += int((~keep).sum())
                for k in np.nonzero(keep)[0]:
                    record = make_record(
                        z,
                        pos[k],
                        charge=charge,
                        energy=energy[k],
                        forces=None if forces is None else forces[k],
                        dtype=dtype,
                    )
                    if charges is not None:
                        record.charges = torch.as_tensor(charges[k], dtype=record.pos.dtype)  # [N]
                    if dipoles is not None:
                        record.dipole = torch.as_tensor(dipoles[k], dtype=record.pos.dtype).reshape(1, 3)  # [1, 3]
                    records.append(record)
        warn_skipped(skipped, total, f"{energy_key} or {gradient_key} is not finite", self.path)
        super().__init__(records, transform)

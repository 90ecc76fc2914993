"""Atoms → ``torch_geometric.data.Data`` records.

Every structure in equinnp is a PyG ``Data`` with these attributes (units are
converted to Å and eV before a record is made):

==========  ==============  =====  ==============================================
key         shape           dtype  meaning
==========  ==============  =====  ==============================================
z           [N]             long   atomic numbers
pos         [N, 3]          float  positions (Å)
cell        [1, 3, 3]       float  lattice vectors as rows (Å); periodic only
pbc         [1, 3]          bool   periodic directions; periodic only
charge      [1]             float  total charge (e), when known
spin        [1]             float  spin multiplicity 2S+1, when known
energy      [1]             float  total energy label (eV)
forces      [N, 3]          float  force labels (eV/Å)
stress      [1, 3, 3]       float  stress label (eV/Å³, ASE sign convention)
==========  ==============  =====  ==============================================

The leading 1 on per-system tensors makes a PyG ``Batch`` stack them into
``[B, ...]``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch_geometric.data import Data

from equinnp.validation import check_atomic_numbers, check_cells, check_positions

__all__ = ["from_arrays", "from_ase", "validate_structure"]

MIN_DISTANCE = 0.1  # Å; two atoms closer than this are an input error


def _as_tensor(value, dtype, name: str) -> torch.Tensor:
    try:
        return torch.as_tensor(np.asarray(value), dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} could not be read as a {dtype} array: {error}") from None


def validate_structure(z: torch.Tensor, pos: torch.Tensor, cell=None, pbc=None) -> None:
    """Raise ``ValueError`` naming the problem for malformed atoms (``equinnp.validation``'s rules).

    Checks shapes, atomic numbers in 1..118, finite positions, and for periodic
    directions a finite cell that is not degenerate.
    """
    check_atomic_numbers(z)
    check_positions(pos, z.shape[0])
    if cell is not None:
        if cell.shape[-2:] != (3, 3):
            raise ValueError(f"cell must have shape [3, 3], got {tuple(cell.shape)}")
        periodic = torch.ones(1, 3, dtype=torch.bool) if pbc is None else torch.as_tensor(pbc).reshape(1, 3).bool()
        check_cells(cell.reshape(1, 3, 3), periodic)


def from_arrays(
    z,
    pos,
    cell=None,
    pbc=None,
    *,
    charge: Optional[float] = None,
    spin: Optional[float] = None,
    energy: Optional[float] = None,
    forces=None,
    stress=None,
    dtype: Optional[torch.dtype] = None,
) -> Data:
    """Build a ``Data`` record from arrays (Å, eV).

    Parameters
    ----------
    z : array of int, shape [N]
        Atomic numbers.
    pos : array, shape [N, 3]
        Positions in Å.
    cell : array, shape [3, 3], optional
        Lattice vectors as rows (Å). Given together with ``pbc`` for periodic systems.
    pbc : bool or array of 3 bool, optional
        Periodic directions. Defaults to all True when a cell is given.
    charge, spin : float, optional
        Total charge (e) and spin multiplicity.
    energy : float, optional
        Energy label (eV).
    forces : array, shape [N, 3], optional
        Force labels (eV/Å).
    stress : array, shape [3, 3] or Voigt [6], optional
        Stress label (eV/Å³, ASE convention: positive under tension).
    """
    dtype = dtype or torch.get_default_dtype()
    z = _as_tensor(z, torch.long, "atomic numbers")
    pos = _as_tensor(pos, dtype, "positions")
    cell_t = pbc_t = None
    if cell is not None:
        cell_t = _as_tensor(cell, dtype, "cell")
        if cell_t.numel() == 3:  # orthorhombic lengths
            cell_t = torch.diag(cell_t.reshape(3))
        pbc_t = torch.ones(3, dtype=torch.bool) if pbc is None else _as_tensor(pbc, torch.bool, "pbc")
        if pbc_t.numel() == 1:
            pbc_t = pbc_t.reshape(1).expand(3).clone()
        if pbc_t.shape != (3,):
            raise ValueError(f"pbc must be a bool or 3 bools, got shape {tuple(pbc_t.shape)}")
    elif pbc is not None and bool(np.any(pbc)):
        raise ValueError(f"pbc={pbc} needs a cell")
    validate_structure(z, pos, cell_t, pbc_t)

    data = Data(z=z, pos=pos)
    if cell_t is not None:  # kept with pbc all False too, so open and periodic records batch together
        data.cell = cell_t.reshape(1, 3, 3)
        data.pbc = pbc_t.reshape(1, 3)
    if charge is not None:
        data.charge = torch.tensor([float(charge)], dtype=dtype)
    if spin is not None:
        data.spin = torch.tensor([float(spin)], dtype=dtype)
    if energy is not None:
        data.energy = torch.tensor([float(energy)], dtype=dtype)
    if forces is not None:
        forces = _as_tensor(forces, dtype, "forces")
        if forces.shape != pos.shape:
            raise ValueError(f"forces must have shape {tuple(pos.shape)}, got {tuple(forces.shape)}")
        data.forces = forces
    if stress is not None:
        stress = _as_tensor(stress, dtype, "stress")
        if stress.numel() == 6:
            stress = voigt_to_matrix(stress)
        if stress.numel() != 9:
            raise ValueError(f"stress must be [3, 3] or Voigt [6], got shape {tuple(stress.shape)}")
        data.stress = stress.reshape(1, 3, 3)
    return data


def voigt_to_matrix(voigt: torch.Tensor) -> torch.Tensor:
    """ASE Voigt order (xx, yy, zz, yz, xz, xy) → symmetric [3, 3]."""
    xx, yy, zz, yz, xz, xy = voigt.reshape(6)
    return torch.stack(
        [torch.stack([xx, xy, xz]), torch.stack([xy, yy, yz]), torch.stack([xz, yz, zz])]
    )


def from_ase(atoms, *, charge=None, spin=None, dtype: Optional[torch.dtype] = None) -> Data:
    """One ``ase.Atoms`` → ``Data``, with labels from its calculator's results.

    ``energy``, ``forces`` and ``stress`` are taken from ``atoms.calc.results``
    when a calculator is attached (ASE units are already eV and Å). The total
    charge and spin come from the arguments, else from ``atoms.info["charge"]``
    and ``atoms.info["spin"]`` when present.
    """
    results = getattr(atoms.calc, "results", {}) if atoms.calc is not None else {}
    periodic = bool(np.any(atoms.pbc))
    if charge is None:
        charge = atoms.info.get("charge")
    if spin is None:
        spin = atoms.info.get("spin")
    return from_arrays(
        atoms.get_atomic_numbers(),
        atoms.get_positions(),
        cell=np.asarray(atoms.get_cell()) if periodic else None,
        pbc=atoms.pbc if periodic else None,
        charge=charge,
        spin=spin,
        energy=results.get("energy", results.get("free_energy")),
        forces=results.get("forces"),
        stress=results.get("stress"),
        dtype=dtype,
    )

"""An OpenMM ``Topology`` and positions from ``ase.Atoms``.

Writing an ``ase.Atoms`` to PDB and reading it back with ``openmm.app.PDBFile``
loses atoms: ASE names every atom by its element, and OpenMM's PDB reader drops
atoms whose names repeat within a residue (ethanol comes back with 3 of its 9
atoms). :func:`openmm_topology` builds the topology directly: one chain, one
residue, one atom per ASE atom in the same order, named by element and
index (``C0``, ``H3``, ...), and the cell as the periodic box when the atoms are
periodic in all three directions (OpenMM's reduced form: a along x, b in the xy
plane; other cells are refused with the ASE call that rotates them).
"""

from __future__ import annotations

import numpy as np

from equinnp.calculators.openmm_units import ANGSTROM_PER_NM

__all__ = ["openmm_topology"]


def openmm_topology(atoms, residue_name: str = "MOL"):
    """``(topology, positions)`` of ``atoms`` for OpenMM.

    Parameters
    ----------
    atoms : ase.Atoms
        N atoms; periodic in all three directions or in none.
    residue_name : str
        Name of the single residue.

    Returns
    -------
    topology : openmm.app.Topology
        N atoms in one residue; box vectors (nm) = ``atoms.cell`` / 10 when periodic.
    positions : openmm.unit.Quantity
        [N, 3] positions in nm, for ``Context.setPositions``.
    """
    from openmm import Vec3, app, unit

    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise ValueError(f"openmm_topology: OpenMM boxes are periodic in all three directions; atoms.pbc is {pbc.tolist()}")
    topology = app.Topology()
    residue = topology.addResidue(residue_name, topology.addChain())
    for index, number in enumerate(atoms.numbers):
        element = app.Element.getByAtomicNumber(int(number))
        topology.addAtom(f"{element.symbol}{index}", element, residue)
    if pbc.all():
        cell = np.asarray(atoms.cell) / ANGSTROM_PER_NM
        if abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) > 1e-12 * np.abs(cell).max():
            raise ValueError("openmm_topology: OpenMM needs the cell in reduced form (a along x, b in the xy plane); "
                             f"got cell rows {np.asarray(atoms.cell).round(4).tolist()} Å. Rotate the atoms first: "
                             "atoms.set_cell(atoms.cell.standard_form()[0], scale_atoms=True)")
        topology.setPeriodicBoxVectors([Vec3(*row) for row in cell] * unit.nanometer)
    positions = [Vec3(*row) for row in np.asarray(atoms.positions) / ANGSTROM_PER_NM] * unit.nanometer
    return topology, positions

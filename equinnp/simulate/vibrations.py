"""Harmonic vibrations from the model's Hessian (``Potential.hessian``): frequencies in cm⁻¹ and normal modes.

:math:`\\tilde H = M^{-1/2} H M^{-1/2}` (masses in amu) is diagonalized by
ASE's ``VibrationsData``; an eigenvalue :math:`\\lambda` gives the frequency
:math:`\\hbar\\sqrt{\\lambda}` (imaginary for :math:`\\lambda < 0`, written as a
negative number here). A molecule at a minimum has six near-zero modes
(translations and rotations; five when linear), a periodic cell three.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["vibrations", "rigid_body_modes"]


def rigid_body_modes(atoms) -> int:
    """Modes that are translations and rotations: 3 for a periodic cell, 5 for a linear molecule, 6 otherwise (0, 3 for 1 atom)."""
    if any(atoms.pbc):
        return 3
    if len(atoms) == 1:
        return 3
    centered = atoms.positions - atoms.positions.mean(axis=0)
    singular = np.linalg.svd(centered, compute_uv=False)
    return 5 if singular[1] < 1e-3 * max(singular[0], 1e-12) else 6


def vibrations(atoms, calculator, *, modes_file: Optional[str] = None) -> dict:
    """Hessian, frequencies and normal modes of ``atoms`` with ``calculator`` (an ``EquinnpCalculator``).

    Returns ``hessian`` [3N, 3N] (eV/Å²), ``frequencies`` [3N] (cm⁻¹, sorted
    by |value|; imaginary ones negative), ``rigid`` (how many of the lowest
    are translations and rotations), ``fmax`` (eV/Å: a large value means the
    structure is not at a minimum and the rigid modes are not zero), and
    writes the normal modes to ``modes_file`` in Jmol's xyz format if given.
    """
    from ase.vibrations import VibrationsData

    hessian = calculator.get_hessian(atoms)  # [3N, 3N]
    hessian = 0.5 * (hessian + hessian.T)
    vib = VibrationsData.from_2d(atoms, hessian)
    frequencies = vib.get_frequencies()  # cm^-1, complex likewise
    signed = np.where(np.abs(frequencies.imag) > np.abs(frequencies.real), -np.abs(frequencies.imag), frequencies.real)
    order = np.argsort(np.abs(signed))
    atoms = atoms.copy()
    atoms.calc = calculator
    forces = atoms.get_forces()
    if modes_file is not None:
        vib.write_jmol(modes_file)
    return {"hessian": hessian, "frequencies": signed[order], "rigid": rigid_body_modes(atoms),
            "fmax": float(np.sqrt((forces**2).sum(axis=1).max())), "vibrations": vib}

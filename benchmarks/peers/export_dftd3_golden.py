"""Export DFT-D3(BJ) reference numbers computed by simple-dftd3 (the ``dftd3`` package).

Run with the dftd3 peer environment (``benchmarks/peers/setup_envs.sh dftd3``)::

    .peers/dftd3/bin/python benchmarks/peers/export_dftd3_golden.py

Evaluates simple-dftd3 1.7.0 (``dftd3.interface.DispersionModel``) with
rational damping, two-body only (s9 = 0, set explicitly: an explicit
``RationalDampingParam`` defaults to s9 = 1) and the real-space cutoffs
set explicitly to 60 bohr (two-body) and 40 bohr (coordination number), on:

- ethanol and aspirin (the first frame of each) of ``tests/data/rmd17_frames.npz``
  with ωB97M-D3(BJ) parameters given explicitly (s8 0.3908, a1 0.5660, a2 3.1280);
- the same two molecules with PBE0 parameters loaded by simple-dftd3 from its
  own table (``RationalDampingParam(method="pbe0", atm=False)``), so that the
  functional lookup is checked too;
- the first periodic carbon cell of ``tests/data/carbon_reduced_5.xyz`` with the
  ωB97M parameters (energy, gradient and virial).

With the three-body (Axilrod-Teller-Muto) term on (``s9 = 1``, simple-dftd3's
``alp = 14``; keys ``*_atm_*``): ethanol and aspirin with the ωB97M parameters
and the three-body cutoff of 40 bohr (simple-dftd3's default); the carbon cell
with a three-body cutoff of 15 bohr (``ATM_CELL_CUTOFF``: 40 bohr would give
~10⁸ triples in this 30 Å³ cell).

Writes ``tests/data/dftd3_golden.npz`` (eV, eV/Å; ``strain_derivative`` is
dE/dε in eV, the virial converted to equinnp's stress convention
σ = V⁻¹ dE/dε; its sign is checked against finite differences of the energy
under strain here before writing).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import ase.io
import numpy as np
from dftd3.interface import DispersionModel, RationalDampingParam

REPO = Path(__file__).resolve().parents[2]
FRAMES = REPO / "tests" / "data" / "rmd17_frames.npz"
CARBON = REPO / "tests" / "data" / "carbon_reduced_5.xyz"
OUT = REPO / "tests" / "data" / "dftd3_golden.npz"

BOHR = 0.52917721067  # Å
HARTREE = 27.211386019495706  # eV
WB97M = dict(s6=1.0, s8=0.3908, a1=0.5660, a2=3.1280, s9=0.0)
WB97M_ATM = dict(WB97M, s9=1.0, alp=14.0)
ATM_CUTOFF = 40.0  # bohr, simple-dftd3's default three-body cutoff
ATM_CELL_CUTOFF = 15.0  # bohr, for the periodic cell


def evaluate(numbers, positions, param, lattice=None, atm_cutoff=ATM_CUTOFF):
    """Energy (eV), forces (eV/Å) and dE/dε (eV) of one structure (Å)."""
    periodic = None if lattice is None else np.array([True, True, True])
    model = DispersionModel(numbers, positions / BOHR, None if lattice is None else lattice / BOHR, periodic)
    model.set_realspace_cutoff(60.0, atm_cutoff, 40.0)  # two-body, three-body, coordination number (bohr)
    result = model.get_dispersion(param, grad=True)
    energy = result["energy"] * HARTREE
    forces = -result["gradient"] * HARTREE / BOHR
    return energy, forces, result["virial"] * HARTREE, model


def strained_energy(numbers, positions, lattice, param, strain, atm_cutoff=ATM_CUTOFF):
    deformation = np.eye(3) + strain
    return evaluate(numbers, positions @ deformation, param, lattice @ deformation, atm_cutoff)[0]


def cell_with_virial(z, pos, lattice, param, atm_cutoff=ATM_CUTOFF):
    """Energy, forces and dE/dε of a periodic cell; the virial's sign fixed by finite differences of the energy."""
    energy, forces, virial, _ = evaluate(z, pos, param, lattice, atm_cutoff)
    h = 1e-5
    numeric = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = h
            numeric[a, b] = (strained_energy(z, pos, lattice, param, e, atm_cutoff)
                             - strained_energy(z, pos, lattice, param, -e, atm_cutoff)) / (2 * h)
    numeric = 0.5 * (numeric + numeric.T)
    sign = 1.0 if np.abs(numeric - virial).max() < np.abs(numeric + virial).max() else -1.0
    derivative = sign * virial
    assert np.abs(derivative - numeric).max() < 1e-6 * max(1.0, np.abs(numeric).max()), (derivative, numeric)
    return energy, forces, derivative, sign


def main():
    frames = np.load(FRAMES)
    out = {}
    molecules = [("ethanol", frames["ethanol_z"], frames["ethanol_pos"][0]), ("aspirin", frames["aspirin_z"], frames["aspirin_pos"][0])]
    for name, z, pos in molecules:
        for label, param in (("wb97m", RationalDampingParam(**WB97M)), ("pbe0", RationalDampingParam(method="pbe0", atm=False))):
            energy, forces, _, _ = evaluate(z, pos, param)
            out[f"{name}_{label}_energy"] = energy
            out[f"{name}_{label}_forces"] = forces
        out[f"{name}_z"], out[f"{name}_pos"] = z, pos
    carbon = ase.io.read(CARBON, index=0)
    z, pos, lattice = carbon.numbers, carbon.positions, np.asarray(carbon.cell)
    energy, forces, derivative, sign = cell_with_virial(z, pos, lattice, RationalDampingParam(**WB97M))
    out.update(carbon_z=z, carbon_pos=pos, carbon_cell=lattice, carbon_energy=energy, carbon_forces=forces,
               carbon_strain_derivative=derivative, virial_sign=sign)
    # the three-body term on
    for name, z_mol, pos_mol in molecules:
        energy, forces, _, _ = evaluate(z_mol, pos_mol, RationalDampingParam(**WB97M_ATM))
        out[f"{name}_atm_energy"], out[f"{name}_atm_forces"] = energy, forces
    energy, forces, derivative, _ = cell_with_virial(z, pos, lattice, RationalDampingParam(**WB97M_ATM), ATM_CELL_CUTOFF)
    out.update(carbon_atm_energy=energy, carbon_atm_forces=forces, carbon_atm_strain_derivative=derivative,
               atm_cutoff_bohr=ATM_CUTOFF, atm_cell_cutoff_bohr=ATM_CELL_CUTOFF)
    out["versions"] = np.array(f"dftd3 {importlib.metadata.version('dftd3')}, numpy {np.__version__}")
    np.savez(OUT, **out)
    print(f"wrote {OUT}: " + ", ".join(f"{k}={float(v):.10g}" for k, v in out.items() if k.endswith("energy")))


if __name__ == "__main__":
    main()

"""Data shipped with equinnp: rMD17 ethanol, official split 01, a slice of an Ag3 ion database and a SPICE subset.

``rmd17_ethanol_train_01.npz`` and ``rmd17_ethanol_test_01.npz`` (1000 frames each,
PBE/def2-SVP; energies in kcal/mol, forces in kcal/mol/Å, positions in Å) are from
the revised MD17 dataset of Christensen & von Lilienfeld, "On the role of gradients
for machine learning of molecular energies and forces", Mach. Learn.: Sci. Technol.
1, 045018 (2020), released under CC0 (``LICENSE.rmd17``).

``ag3_charged_440.db`` (ASE database) holds every 5th row of SchNetPack's
``tests/electronic_embedding/ase_ag3_2200.db`` (commit ``384f778``; MIT,
``LICENSE.schnetpack``): 220 Ag3 configurations with total charge -1 and 220
with +1, ``row.data`` keys ``energy`` (eV), ``forces`` (eV/Å), ``total_charge``,
``spin_multiplicity`` (0 for all rows: SchNetPack's convention there is not
2S+1; equinnp's ``spin`` is the multiplicity, so do not read it as ``spin``) and
``dipole_moment`` (e·Å). Level of theory not stated upstream. Made by
``tests/data/make_dataset_fixtures.py``; used by ``configs/ag3_charged.yaml``.

``spice_1.1.4_n2.hdf5`` is modelforge's SPICE 1.1.4 test file
(``modelforge/tests/data/SPICE-1.1.4_n2.hdf5``, commit ``3d37cb7``; MIT,
``LICENSE.modelforge``; upstream SPICE is CC0) with the datasets equinnp reads
(``atomic_numbers``, ``conformations`` in bohr, ``dft_total_energy`` in hartree,
``dft_total_gradient`` in hartree/bohr, ``mbis_charges``, ``scf_dipole``,
``smiles``, ``subset``; values verbatim): 50 conformers of a protonated amine
(C8H18N+, PubChem set) and 5 of acetylene with Na+ (DES370K supplement), both
with total charge +1, ωB97M-D3(BJ)/def2-TZVPPD. Made by
``tests/data/make_dataset_fixtures.py``; used by ``configs/spice_charged.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["BUNDLED_DIR", "ETHANOL_TRAIN", "ETHANOL_TEST", "ethanol_atoms"]

BUNDLED_DIR = Path(__file__).resolve().parent
ETHANOL_TRAIN = BUNDLED_DIR / "rmd17_ethanol_train_01.npz"
ETHANOL_TEST = BUNDLED_DIR / "rmd17_ethanol_test_01.npz"


def ethanol_atoms(frame: int = 0):
    """One bundled rMD17 ethanol frame (test split 01) as ``ase.Atoms`` without labels."""
    import ase

    data = np.load(ETHANOL_TEST)
    return ase.Atoms(numbers=data["nuclear_charges"], positions=data["coords"][frame])

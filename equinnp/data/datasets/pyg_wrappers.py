"""``torch_geometric.datasets.QM9`` and ``MD17`` adapted to equinnp's records and units.

Both keep PyG's own download code and raw-file layout (``root/raw/...``); only
the records they yield differ: ``z``, ``pos`` (Å), ``energy`` [1] (eV,
float64) and, for MD17, ``forces`` (eV/Å).

QM9: R. Ramakrishnan et al., "Quantum chemistry structures and properties of
134 kilo molecules", Sci. Data 1, 140022 (2014); B3LYP/6-31G(2df,p).
MD17: S. Chmiela et al., Sci. Adv. 3, e1603015 (2017); revised MD17:
A. S. Christensen and O. A. von Lilienfeld, Mach. Learn.: Sci. Technol. 1,
045018 (2020).
"""

from __future__ import annotations

import os.path as osp
from typing import Optional

import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.datasets import MD17

from equinnp.data.atoms import validate_structure
from equinnp.data.datasets.base import resolve_dtype
from equinnp.data.datasets.rmd17 import read_md17_npz

__all__ = ["MD17Dataset", "QM9Dataset", "QM9_TARGETS"]

# Columns of PyG's processed ``QM9.y`` [n, 19] that are energies. PyG converts
# them from hartree to eV while processing (``torch_geometric.datasets.qm9.conversion``),
# both when it parses gdb9.sdf.csv with rdkit and in its pre-processed download.
QM9_TARGETS = {
    "U0": 7,
    "U": 8,
    "H": 9,
    "G": 10,
    "U0_atom": 12,
    "U_atom": 13,
    "H_atom": 14,
    "G_atom": 15,
}


class QM9Dataset(InMemoryDataset):
    """QM9 molecules with one energy target as ``energy`` (eV), via ``torch_geometric.datasets.QM9``.

    PyG downloads and processes QM9 into ``root`` (with rdkit from the raw
    ``gdb9.sdf``, ``gdb9.sdf.csv`` and ``uncharacterized.txt``; without rdkit
    from its pre-processed ``qm9_v3.pt``). The target column is already in eV
    there. PyG stores it as float32, so energies of 1e3 to 2e4 eV carry a
    rounding of up to ~1 meV; for exact labels read the raw files with :class:`ASEDataset`.

    Parameters
    ----------
    root : str
        PyG dataset root (``root/raw``, ``root/processed``).
    target : str
        ``"U0"`` (internal energy at 0 K; default), ``"U"``, ``"H"``, ``"G"``
        (at 298.15 K), or their atomization versions ``"U0_atom"``, ...
    transform : callable, optional
        PyG transform applied on access.
    dtype : torch.dtype or str, optional
        Floating dtype of positions (energies are float64).
    force_reload : bool
        Passed to PyG: re-process the raw files.

    Shapes
    ------
    Each record: ``z`` [N], ``pos`` [N, 3], ``energy`` [1].
    """

    def __init__(self, root: str, target: str = "U0", transform=None, dtype=None, force_reload: bool = False):
        from torch_geometric.datasets import QM9

        if target not in QM9_TARGETS:
            raise ValueError(f"unknown QM9 target {target!r}; choose one of {sorted(QM9_TARGETS)}")
        dtype = resolve_dtype(dtype)
        pyg = QM9(root, force_reload=force_reload)
        super().__init__(None, transform)
        source, slices = pyg._data, pyg.slices
        z = source.z.long()  # [N_total]
        pos = source.pos.to(dtype)  # [N_total, 3]
        validate_structure(z, pos)
        energy = source.y[:, QM9_TARGETS[target]].to(torch.float64)  # [n] eV
        self.target = target
        self._data = Data(z=z, pos=pos, energy=energy)
        self.slices = {
            "z": slices["z"],
            "pos": slices["pos"],
            "energy": torch.arange(energy.numel() + 1),
        }


class MD17Dataset(MD17):
    """MD17 / revised MD17 / CCSD(T) MD17 through ``torch_geometric.datasets.MD17``, in eV and eV/Å.

    PyG's download, file names and raw layout are kept (the revised molecules
    come from the ``rmd17.tar.bz2`` archive extracted to
    ``root/raw/rmd17/npz_data/rmd17_<mol>.npz``). Processing differs from PyG's:
    the raw npz is read in float64 and converted from kcal/mol and kcal/mol/Å
    with ``ase.units`` (PyG stores float32 kcal/mol, whose rounding at
    ~1e5 kcal/mol is ~0.3 meV), and the records use equinnp's keys
    (``forces``, not PyG's ``force``). The processed file goes to
    ``root/<name>/processed_equinnp`` so a plain PyG ``MD17`` can share ``root``.

    Parameters
    ----------
    root : str
    name : str
        PyG's trajectory name, e.g. ``"revised ethanol"``, ``"aspirin"``,
        ``"ethanol CCSD(T)"`` (see ``MD17.file_names``).
    train : bool, optional
        Train or test split, for the CCSD(T) trajectories only (PyG's rule).
    transform : callable, optional
    dtype : torch.dtype or str, optional
        Floating dtype of positions and forces (energies are float64).
    force_reload : bool

    Shapes
    ------
    Each record: ``z`` [N], ``pos`` [N, 3], ``energy`` [1], ``forces`` [N, 3].
    """

    def __init__(
        self,
        root: str,
        name: str,
        train: Optional[bool] = None,
        transform=None,
        dtype=None,
        force_reload: bool = False,
    ) -> None:
        if name not in self.file_names:
            raise ValueError(f"unknown MD17 trajectory {name!r}; choose one of {sorted(self.file_names)}")
        dtype = resolve_dtype(dtype)
        super().__init__(root, name, train=train, transform=transform, force_reload=force_reload)
        self._data.pos = self._data.pos.to(dtype)
        self._data.forces = self._data.forces.to(dtype)

    @property
    def processed_dir(self) -> str:
        return osp.join(self.root, self.name, "processed_equinnp")

    def process(self) -> None:
        for raw_path, processed_path in zip(self.raw_paths, self.processed_paths):
            self.save(read_md17_npz(raw_path, dtype=torch.float64), processed_path)

"""Datasets of labelled structures as PyG ``InMemoryDataset`` objects (Å, eV, eV/Å).

==================  ===========================================  =====================
class               files                                        units on disk
==================  ===========================================  =====================
RMD17Dataset        rMD17 / sGDML MD17 ``.npz``                  kcal/mol, Å
ASEDataset          extxyz, traj, ... (``ase.io.read``), ``.db``  ``energy_unit``, ``length_unit``
SPICEDataset        SPICE release ``.hdf5``                      hartree, bohr
ANIDataset          ANI-1x / ANI-1ccx / ANI-2x ``.h5``           hartree, Å
QM9Dataset          ``torch_geometric.datasets.QM9`` root        eV (PyG converts)
MD17Dataset         ``torch_geometric.datasets.MD17`` root       kcal/mol, Å
==================  ===========================================  =====================

:func:`load_dataset` picks the class from a file's suffix (and an HDF5 file's layout).
"""

from __future__ import annotations

import inspect
import os

from equinnp.data.datasets.ani import ANIDataset, ani_layout, levels_of_theory
from equinnp.data.datasets.ase_dataset import ASEDataset
from equinnp.data.datasets.base import RecordDataset
from equinnp.data.datasets.pyg_wrappers import QM9_TARGETS, MD17Dataset, QM9Dataset
from equinnp.data.datasets.rmd17 import RMD17Dataset
from equinnp.data.datasets.spice import SPICEDataset, is_spice_file

__all__ = [
    "ANIDataset",
    "ASEDataset",
    "MD17Dataset",
    "QM9Dataset",
    "QM9_TARGETS",
    "RMD17Dataset",
    "RecordDataset",
    "SPICEDataset",
    "levels_of_theory",
    "load_dataset",
]

NPZ_SUFFIXES = (".npz",)
ASE_SUFFIXES = (".xyz", ".extxyz", ".db", ".traj")
HDF5_SUFFIXES = (".h5", ".hdf5")


def _hdf5_class(path: str):
    import h5py

    with h5py.File(path, "r") as handle:
        if is_spice_file(handle):
            return SPICEDataset
        if ani_layout(handle) is not None:
            return ANIDataset
        first = next(iter(handle), None)
        found = sorted(handle[first]) if first is not None and hasattr(handle[first], "keys") else []
    raise ValueError(
        f"{path!r}: unknown HDF5 layout (first group {first!r} holds {found}); expected SPICE "
        "(conformations, atomic_numbers, dft_total_energy) or ANI (coordinates with atomic_numbers "
        "or species)"
    )


def load_dataset(path, **keys):
    """Open a dataset file with the class its suffix names.

    ``.npz`` → :class:`RMD17Dataset`; ``.xyz``, ``.extxyz``, ``.db``, ``.traj``
    → :class:`ASEDataset`; ``.h5``, ``.hdf5`` → :class:`SPICEDataset` or
    :class:`ANIDataset`, chosen from the groups' contents. ``keys`` go to the
    class (``energy_key``, ``forces_key``, ``energy_unit``, ``transform``,
    ``dtype``, ...).

    >>> train = load_dataset("rmd17_ethanol_train_01.npz", dtype="float64")
    >>> ds = load_dataset("carbon.xyz", forces_key="force")
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"dataset file {path!r} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in NPZ_SUFFIXES:
        cls = RMD17Dataset
    elif suffix in ASE_SUFFIXES:
        cls = ASEDataset
    elif suffix in HDF5_SUFFIXES:
        cls = _hdf5_class(path)
    else:
        raise ValueError(
            f"cannot tell the format of {path!r} from its suffix {suffix!r}; known: "
            f"{sorted(NPZ_SUFFIXES + ASE_SUFFIXES + HDF5_SUFFIXES)} (or build a dataset class directly, "
            "e.g. ASEDataset(path, format=...))"
        )
    valid = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "path")]
    for key in keys:
        if key not in valid:
            from equinnp.suggest import unknown_key_error

            raise unknown_key_error(key, valid, f"option for {cls.__name__} ({path})")
    return cls(path, **keys)

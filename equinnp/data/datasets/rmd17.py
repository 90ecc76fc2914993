"""rMD17 (and original MD17) ``.npz`` files → standard records (Å, eV, eV/Å).

Revised MD17: A. S. Christensen and O. A. von Lilienfeld, "On the role of
gradients for machine learning of molecular energies and forces", Mach. Learn.:
Sci. Technol. 1, 045018 (2020). PBE/def2-SVP; energies in kcal/mol, forces in
kcal/mol/Å, positions in Å.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch_geometric.data import Data

from equinnp.data.datasets.base import (
    RecordDataset,
    make_record,
    energy_factor,
    index_list,
)
from equinnp.data.splits import read_index_file

__all__ = ["RMD17Dataset", "read_md17_npz"]

# (atomic numbers, positions, energies, forces) key names of the two npz layouts
LAYOUTS = {
    "rmd17": ("nuclear_charges", "coords", "energies", "forces"),  # revised MD17 (Christensen 2020)
    "sgdml": ("z", "R", "E", "F"),  # original MD17 / sGDML npz (Chmiela 2017)
}
KCAL_PER_MOL = energy_factor("kcal/mol")  # eV


def read_md17_npz(path, indices=None, dtype: Optional[torch.dtype] = None) -> List[Data]:
    """Read an rMD17 or sGDML ``.npz`` (kcal/mol, kcal/mol/Å, Å) into eV/Å records.

    Parameters
    ----------
    path : str or PathLike
    indices : int array, slice or ASE index string, optional
        Frames to keep (all by default), in the given order.
    dtype : torch.dtype, optional
    """
    with np.load(path) as raw:
        layout = next((keys for keys in LAYOUTS.values() if all(k in raw.files for k in keys)), None)
        if layout is None:
            raise ValueError(
                f"{os.fspath(path)!r} is neither an rMD17 npz (keys {list(LAYOUTS['rmd17'])}) nor an "
                f"sGDML MD17 npz (keys {list(LAYOUTS['sgdml'])}); keys present: {sorted(raw.files)}"
            )
        z_key, pos_key, energy_key, forces_key = layout
        z = raw[z_key]
        coords = raw[pos_key]  # [n, N, 3] Å
        energies = raw[energy_key].reshape(len(coords))  # [n] kcal/mol
        forces = raw[forces_key]  # [n, N, 3] kcal/mol/Å
    rows = index_list(slice(None) if indices is None else indices, len(coords))
    return [
        make_record(
            z,
            coords[k],
            energy=energies[k] * KCAL_PER_MOL,
            forces=forces[k] * KCAL_PER_MOL,
            dtype=dtype,
        )
        for k in rows
    ]


class RMD17Dataset(RecordDataset):
    """Revised MD17 molecular-dynamics frames from ``.npz`` files.

    Reads the keys ``nuclear_charges`` [N], ``coords`` [n, N, 3] (Å),
    ``energies`` [n] (kcal/mol) and ``forces`` [n, N, 3] (kcal/mol/Å) and
    converts them with ``ase.units.kcal / ase.units.mol`` to eV and eV/Å.
    Original MD17 files in the sGDML layout (``z``, ``R``, ``E``, ``F``; same
    units) are read too.

    The ``rmd17_<mol>_train_0k.npz`` / ``rmd17_<mol>_test_0k.npz`` files
    (andersx/rmd17-npz) already hold the official split k. For the original
    release layout, one ``rmd17_<mol>.npz`` with all 100 000 frames and
    ``splits/index_train_0k.csv`` / ``index_test_0k.csv``, use
    :meth:`from_split`. Train and test of one split are disjoint; different
    splits k share frames, so never train on split j and test on split k.

    Parameters
    ----------
    path_or_paths : path or list of paths
        One or several npz files; their frames are concatenated in order.
    transform : callable, optional
        PyG transform applied on access (e.g. ``RadiusGraph(cutoff)``).
    dtype : torch.dtype or str, optional
        Floating dtype of positions and forces (energies are float64).
    indices : array of int, optional
        Frames to keep (only with a single file).

    Shapes
    ------
    Each record: ``z`` [N], ``pos`` [N, 3], ``energy`` [1], ``forces`` [N, 3].
    """

    def __init__(
        self,
        path_or_paths: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
        transform=None,
        dtype=None,
        indices=None,
    ) -> None:
        if isinstance(path_or_paths, (str, os.PathLike)):
            paths = [path_or_paths]
        else:
            paths = list(path_or_paths)
        if not paths:
            raise ValueError("RMD17Dataset needs at least one npz path")
        if indices is not None and len(paths) != 1:
            raise ValueError(f"indices select frames of one file, but {len(paths)} files were given")
        dtype = self.resolve_dtype(dtype)
        records = []
        for path in paths:
            records.extend(read_md17_npz(path, indices, dtype))
        self.paths = [os.fspath(p) for p in paths]
        super().__init__(records, transform)

    @classmethod
    def from_split(cls, npz, index_file, transform=None, dtype=None) -> "RMD17Dataset":
        """The frames of one rMD17 npz listed in an index file (original release layout).

        Parameters
        ----------
        npz : path
            ``rmd17_<mol>.npz`` with all frames.
        index_file : path or array of int
            ``splits/index_train_0k.csv`` or ``index_test_0k.csv`` (0-based
            frame numbers, one per line), or the indices themselves.
        """
        indices = read_index_file(index_file) if isinstance(index_file, (str, os.PathLike)) else index_file
        indices = np.asarray(indices)
        if np.unique(indices).size != indices.size:
            raise ValueError(f"index file {index_file!r} lists some frames more than once")
        return cls(npz, transform=transform, dtype=dtype, indices=indices)

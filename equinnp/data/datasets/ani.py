"""ANI-1x / ANI-1ccx / ANI-2x HDF5 release files → standard records (Å, eV, eV/Å).

ANI-1x and ANI-1ccx: J. S. Smith et al., "The ANI-1ccx and ANI-1x data sets,
coupled-cluster and density functional theory properties for molecules",
Sci. Data 7, 134 (2020). ANI-2x: C. Devereux et al., J. Chem. Theory Comput.
16, 4192 (2020).

Two layouts are read:

* ANI-1x release: one group per formula with ``atomic_numbers`` [N],
  ``coordinates`` [n, N, 3] (Å) and one dataset per level of theory and
  property, ``<theory>.energy`` [n] (hartree) and ``<theory>.forces``
  [n, N, 3] (hartree/Å), e.g. ``wb97x_dz.energy``, ``wb97x_tz.forces``,
  ``ccsd(t)_cbs.energy``. Labels missing for a conformer are NaN.
* ANI-2x release: one group per atom count with ``species`` [n, N],
  ``coordinates`` [n, N, 3] (Å), ``energies`` [n] (hartree) and ``forces``
  [n, N, 3] (hartree/Å); the level of theory (wB97X/6-31G(d)) is that of the file.
"""

from __future__ import annotations

import os
from typing import List, Optional

import numpy as np
from torch_geometric.data import Data

from equinnp.data.datasets.base import (
    RecordDataset,
    make_record,
    energy_factor,
    finite_rows,
    missing_key_error,
    warn_skipped,
)

__all__ = ["ANIDataset", "ani_layout", "levels_of_theory"]

AUTO = "auto"
_DEFAULT_ENERGY = {"ani1x": "wb97x_dz.energy", "ani2x": "energies"}


def ani_layout(handle) -> Optional[str]:
    """``"ani1x"``, ``"ani2x"`` or None for an open ``h5py.File``."""
    for name in handle:
        group = handle[name]
        if not hasattr(group, "keys") or "coordinates" not in group:
            return None
        if "atomic_numbers" in group:
            return "ani1x"
        if "species" in group:
            return "ani2x"
        return None
    return None


def levels_of_theory(path) -> List[str]:
    """Energy datasets present in an ANI file (the choices for ``energy_key``)."""
    import h5py

    with h5py.File(path, "r") as handle:
        first = handle[next(iter(handle))]
        return sorted(k for k in first if k.endswith("energy") or k == "energies")


class ANIDataset(RecordDataset):
    """Conformers of an ANI-1x / ANI-1ccx / ANI-2x release file at one level of theory.

    Parameters
    ----------
    path : str or PathLike
        ANI ``.h5`` / ``.hdf5`` file.
    energy_key : str
        Energy dataset, i.e. the level of theory: ``"wb97x_dz.energy"``
        (ωB97x/6-31G(d), ANI-1x), ``"wb97x_tz.energy"``, ``"ccsd(t)_cbs.energy"``
        (ANI-1ccx), ``"energies"`` (ANI-2x). ``"auto"`` picks
        ``wb97x_dz.energy`` for ANI-1x files and ``energies`` for ANI-2x ones.
    forces_key : str or None
        Force dataset. ``"auto"``: the forces of the same level of theory when
        the file has them (``wb97x_dz.forces``, ``forces``), otherwise none
        (there are no CCSD(T) forces). ``None`` reads no forces; another name is
        required.
    energy_unit : str
        Unit of energies in the file (``"hartree"``); forces are in energy_unit/Å.
    transform : callable, optional
    dtype : torch.dtype or str, optional
        Floating dtype of positions and forces (energies are float64).

    Conformers whose requested energy or forces are NaN (not computed at that
    level of theory) are skipped, and a warning says how many.

    Shapes
    ------
    Each record: ``z`` [N], ``pos`` [N, 3], ``energy`` [1], ``forces`` [N, 3].
    """

    def __init__(
        self,
        path,
        energy_key: str = AUTO,
        forces_key: Optional[str] = AUTO,
        energy_unit: str = "hartree",
        transform=None,
        dtype=None,
    ) -> None:
        import h5py

        dtype = self.resolve_dtype(dtype)
        self.path = os.fspath(path)
        scale = energy_factor(energy_unit)  # eV per file unit; lengths are Å
        records: List[Data] = []
        skipped = total = 0
        with h5py.File(self.path, "r") as handle:
            layout = ani_layout(handle)
            if layout is None:
                raise ValueError(
                    f"{self.path!r} is not an ANI-1x (atomic_numbers, coordinates, <theory>.energy) or "
                    f"ANI-2x (species, coordinates, energies) file; top-level groups: {list(handle)[:5]}"
                )
            if energy_key == AUTO:
                energy_key = _DEFAULT_ENERGY[layout]
            for name, group in handle.items():
                if energy_key not in group:
                    raise missing_key_error(
                        energy_key, "energy", f"group {name!r} of {self.path!r}", group.keys(), can_skip=False
                    )
                group_forces = self._forces_key(energy_key, forces_key, group, name)
                coords = group["coordinates"][()].astype(np.float64)  # [n, N, 3] Å
                energy = group[energy_key][()].astype(np.float64) * scale  # [n] eV
                forces = None if group_forces is None else group[group_forces][()].astype(np.float64) * scale
                if layout == "ani1x":
                    z_all = group["atomic_numbers"][()]  # [N], shared by the group's conformers
                    species = None
                else:
                    species = group["species"][()]  # [n, N]
                keep = finite_rows(energy, forces)
                total += len(keep)
                skipped += int((~keep).sum())
                for k in np.nonzero(keep)[0]:
                    record = make_record(
                        z_all if species is None else species[k],
                        coords[k],
                        energy=energy[k],
                        forces=None if forces is None else forces[k],
                        dtype=dtype,
                    )
                    records.append(record)
        self.energy_key = energy_key
        reason = f"their {energy_key}" + (f" or {forces_key}" if forces_key not in (None, AUTO) else "")
        warn_skipped(skipped, total, reason + " label is NaN", self.path)
        super().__init__(records, transform)

    def _forces_key(self, energy_key: str, forces_key: Optional[str], group, name: str) -> Optional[str]:
        if forces_key is None:
            return None
        if forces_key == AUTO:
            if energy_key == "energies":
                candidate = "forces"
            else:
                candidate = energy_key.rsplit(".", 1)[0] + ".forces"
            return candidate if candidate in group else None
        if forces_key not in group:
            raise missing_key_error(forces_key, "forces", f"group {name!r} of {self.path!r}", group.keys())
        return forces_key

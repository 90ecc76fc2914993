"""Rebuild the dataset-loader fixtures in this folder from /work/shared/data.

Run from the repository root: ``python tests/data/make_dataset_fixtures.py [SHARED_DATA]``.
Every fixture is a verbatim slice (same keys, units and dtypes) of a public file;
see README.md in this folder for sources and licenses.
"""

import os
import shutil
import sqlite3
import sys

import ase.db
import ase.io
import h5py
import numpy as np

SHARED = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
HERE = os.path.dirname(os.path.abspath(__file__))


def out(name):
    return os.path.join(HERE, name)


def ag3_bundled_slice():
    """Every 5th row of the Ag3 database (220 with charge -1, 220 with +1) for ``equinnp/configs/ag3_charged.yaml``."""
    target = os.path.join(HERE, "..", "..", "equinnp", "data", "bundled", "ag3_charged_440.db")
    if os.path.exists(target):
        os.remove(target)
    source = ase.db.connect(os.path.join(SHARED, "schnetpack", "ase_ag3_2200.db"))
    with ase.db.connect(target) as db:
        for row_id in range(1, 2201, 5):
            row = source.get(id=row_id)
            db.write(row.toatoms(), data=dict(row.data))
    ase.db.connect(target).metadata = source.metadata
    with sqlite3.connect(target) as connection:
        connection.execute("VACUUM")


def rmd17_slices():
    for split, count in (("train", 8), ("test", 4)):
        raw = np.load(os.path.join(SHARED, "rmd17", f"rmd17_ethanol_{split}_01.npz"))
        arrays = {k: raw[k] if k == "nuclear_charges" else raw[k][:count] for k in raw.files}
        np.savez(out(f"rmd17_ethanol_{split}_01_first{count}.npz"), **arrays)


def spice_slice():
    keep = ["atomic_numbers", "conformations", "dft_total_energy", "dft_total_gradient",
            "formation_energy", "mbis_charges", "smiles", "subset"]
    counts = {"103147721": 4, "C#C.[Na+]": 3}
    with h5py.File(os.path.join(SHARED, "modelforge", "SPICE-1.1.4_n2.hdf5")) as src, \
            h5py.File(out("spice_1.1.4_slice.hdf5"), "w") as dst:
        for name, count in counts.items():
            group = dst.create_group(name)
            for key in keep:
                if key not in src[name]:
                    continue
                data = src[name][key]
                per_conformer = key not in ("atomic_numbers", "smiles", "subset")
                values = data[:count] if per_conformer else data[()]
                group.create_dataset(key, data=values)
                group[key].attrs.update(dict(data.attrs))


def spice_bundled():
    """Both molecules, all 55 conformers, of the SPICE 1.1.4 subset for ``equinnp/configs/spice_charged.yaml``
    (the datasets the reader uses; verbatim values, units and dtypes)."""
    keep = ["atomic_numbers", "conformations", "dft_total_energy", "dft_total_gradient",
            "mbis_charges", "scf_dipole", "smiles", "subset"]
    target = os.path.join(HERE, "..", "..", "equinnp", "data", "bundled", "spice_1.1.4_n2.hdf5")
    with h5py.File(os.path.join(SHARED, "modelforge", "SPICE-1.1.4_n2.hdf5")) as src, h5py.File(target, "w") as dst:
        for name in src:
            group = dst.create_group(name)
            for key in keep:
                if key in src[name]:
                    group.create_dataset(key, data=src[name][key][()])
                    group[key].attrs.update(dict(src[name][key].attrs))
    shutil.copyfile(os.path.join(SHARED, "modelforge", "LICENSE"),
                    os.path.join(HERE, "..", "..", "equinnp", "data", "bundled", "LICENSE.modelforge"))


def ani_slices():
    shutil.copyfile(os.path.join(SHARED, "modelforge", "ani1_n5.hdf5"), out("ani1x_n5.hdf5"))
    with h5py.File(os.path.join(SHARED, "modelforge", "ani2x_minimal.hdf5")) as src:
        g = src["002"]
        species, coords = g["species"][()], g["coordinates"][()]
        distance = np.linalg.norm(coords[:, 1] - coords[:, 0], axis=1)
        co = np.where((np.sort(species, axis=1) == [6, 8]).all(axis=1))[0]
        co = co[np.argsort(distance[co])][200:212]  # 12 CO molecules with neighboring bond lengths
        hf = np.where((np.sort(species, axis=1) == [1, 9]).all(axis=1))[0][:4]
        rows = np.concatenate([co, hf])
        with h5py.File(out("ani2x_slice.hdf5"), "w") as dst:
            group = dst.create_group("002")
            for key in ("species", "coordinates", "energies", "forces"):
                group.create_dataset(key, data=g[key][()][rows])
            dst.attrs["source_rows"] = rows


def copy_xyz_frames(source, target, count):
    """Copy the first ``count`` frames of an (ext)xyz file line by line (no re-formatting)."""
    with open(source) as f:
        lines = f.read().splitlines(keepends=True)
    start = 0
    for _ in range(count):
        start += int(lines[start]) + 2
    with open(target, "w") as f:
        f.writelines(lines[:start])


def ase_slices():
    shutil.copyfile(os.path.join(SHARED, "schnetpack", "test_ethanol.db"), out("test_ethanol.db"))
    copy_xyz_frames(os.path.join(SHARED, "metatrain", "carbon_reduced_100.xyz"), out("carbon_reduced_5.xyz"), 5)
    copy_xyz_frames(os.path.join(SHARED, "metatrain", "qm9_reduced_100.xyz"), out("qm9_reduced_5.xyz"), 5)
    target = out("ag3_charges_4.db")
    if os.path.exists(target):
        os.remove(target)
    source = ase.db.connect(os.path.join(SHARED, "schnetpack", "ase_ag3_2200.db"))
    with ase.db.connect(target) as db:
        for row_id in (1, 2, 1101, 1102):
            row = source.get(id=row_id)
            db.write(row.toatoms(), data=dict(row.data))
    ase.db.connect(target).metadata = source.metadata
    with sqlite3.connect(target) as connection:
        connection.execute("VACUUM")
    ag3_bundled_slice()
    os.makedirs(out("qm9_raw"), exist_ok=True)
    for k in range(1, 6):
        name = f"dsgdb9nsd_{k:06d}.xyz"
        shutil.copyfile(os.path.join(SHARED, "modelforge", "qm9_first10", name), out(os.path.join("qm9_raw", name)))


if __name__ == "__main__":
    rmd17_slices()
    spice_slice()
    spice_bundled()
    ani_slices()
    ase_slices()

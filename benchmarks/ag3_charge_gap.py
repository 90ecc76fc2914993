"""Energy gap E(Ag3+) - E(Ag3-) at the same geometry: a model trained with total charge as input vs the labels.

SchNetPack's Ag3 database (``../shared/data/schnetpack/ase_ag3_2200.db``) holds every
geometry twice, once with total charge +1 and once with -1. The bundled training
slice of ``configs/ag3_charged.yaml`` is every 5th row; the pairs compared here are
the geometries none of whose two rows is in that slice (held out).

    equinnp train ag3_charged --set output_dir=runs/ag3_charged
    python benchmarks/ag3_charge_gap.py runs/ag3_charged/model.pt [--db PATH]

Writes ``benchmarks/results/ag3_charge_gap.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import equinnp
from equinnp.data.datasets.ase_dataset import ASEDataset

HERE = Path(__file__).resolve().parent
DEFAULT_DB = HERE.parents[0] / ".." / "shared" / "data" / "schnetpack" / "ase_ag3_2200.db"
TRAINING_ROWS = set(range(1, 2201, 5))  # ids of the bundled slice (tests/data/make_dataset_fixtures.py)


def geometry_key(record) -> tuple:
    return tuple(np.round(record.pos.numpy().ravel(), 8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--db", default=str(DEFAULT_DB))
    parser.add_argument("--out", default=str(HERE / "results" / "ag3_charge_gap.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    pot = equinnp.load_potential(args.model).double().eval()
    records = ASEDataset(args.db, charge_key="total_charge", spin_key=None, dipole_key=None, dtype=torch.float64)
    rows = {}
    for index in range(len(records)):
        record = records[index]
        rows.setdefault(geometry_key(record), {})[float(record.charge)] = (index + 1, record)  # ase.db ids start at 1
    pairs = [(v[1.0], v[-1.0]) for v in rows.values() if 1.0 in v and -1.0 in v]
    held_out = [(c, a) for c, a in pairs if c[0] not in TRAINING_ROWS and a[0] not in TRAINING_ROWS]
    reference, predicted = [], []
    for (_, cation), (_, anion) in held_out:
        reference.append(float(cation.energy) - float(anion.energy))
        energies = []
        for charge in (1.0, -1.0):
            probe = anion.clone()
            probe.charge = torch.tensor([charge], dtype=torch.float64)
            energies.append(float(pot(probe, compute_forces=False).energy.detach()))
        predicted.append(energies[0] - energies[1])
    reference, predicted = np.array(reference), np.array(predicted)
    error = predicted - reference
    lines = [
        "# Ag3: E(+1) - E(-1) at the same geometry",
        "",
        f"Model `{args.model}`; database `{Path(args.db).name}` ({len(pairs)} geometries with both charges, "
        f"{len(held_out)} with neither row in the bundled training slice). Command: "
        f"`python benchmarks/ag3_charge_gap.py {args.model}`.",
        "",
        "| quantity | reference (labels) | model | error |",
        "| --- | --- | --- | --- |",
        f"| mean gap E(+1) - E(-1), eV | {reference.mean():.3f} | {predicted.mean():.3f} | {error.mean():+.3f} |",
        f"| gap range, eV | {reference.min():.3f} .. {reference.max():.3f} | {predicted.min():.3f} .. {predicted.max():.3f} | |",
        f"| MAE of the gap, meV | | | {np.abs(error).mean() * 1e3:.1f} |",
        f"| RMSE of the gap, meV | | | {np.sqrt((error ** 2).mean()) * 1e3:.1f} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

"""The systems of the MD benchmarks (``md_speed.py``, ``md_stability.py``, ``inference_threads.py``) as ``ase.Atoms``.

- ethanol: rMD17 ethanol frame 0 (bundled with equinnp), 9 atoms;
- a periodic water box: ``harness.water_cluster``'s jittered grid of randomly
  oriented molecules (3.1 Å spacing, 0.0336 molecules/Å³, about liquid water's
  0.0334) in a cubic cell of ``per_side`` x 3.1 Å: 3·7³ = 1,029 atoms; 3·3³ =
  81 and 3·5³ = 375 for the thread measurement.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ase

HERE = Path(__file__).resolve().parent
SPACING = 3.1


def ethanol() -> ase.Atoms:
    from equinnp.data.bundled import ethanol_atoms

    return ethanol_atoms()


def water_box(per_side: int = 7, seed: int = 0) -> ase.Atoms:
    """``3 * per_side**3`` atoms of water in a periodic cube of side ``per_side * 3.1`` Å."""
    sys.path.insert(0, str(HERE))
    from harness import water_cluster

    cluster = water_cluster(per_side, SPACING, seed)
    side = per_side * SPACING
    atoms = ase.Atoms(numbers=cluster.z.numpy(), positions=cluster.pos.numpy(), cell=[side] * 3, pbc=True)
    atoms.wrap()
    return atoms

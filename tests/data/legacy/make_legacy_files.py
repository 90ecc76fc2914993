"""Write one tiny saved potential per architecture with equinnp 0.1.0, and its outputs.

Run once with the release whose file format is to stay loadable
(``git checkout <release> && python tests/data/legacy/make_legacy_files.py``);
the files are test fixtures of backward compatibility: a later equinnp must load
each ``<name>_<version>.pt`` and reproduce ``outputs_<version>.pt`` exactly.
"""

from pathlib import Path

import numpy as np
import torch

import equinnp
from equinnp.data import from_arrays

HERE = Path(__file__).resolve().parent
FRAMES = HERE.parent / "rmd17_frames.npz"


def main() -> None:
    version = equinnp.__version__
    frames = np.load(FRAMES)
    structures = [from_arrays(frames["ethanol_z"], frames["ethanol_pos"][0], dtype=torch.float64),
                  from_arrays(frames["aspirin_z"], frames["aspirin_pos"][0], dtype=torch.float64)]
    outputs = {"equinnp_version": version}
    for name, cls in sorted(equinnp.ARCHITECTURES.items()):
        for dtype in ("float32", "float64"):
            torch.manual_seed(0)
            pot = equinnp.build_potential(name, cutoff=4.0, elements=[1, 6, 8], dtype=dtype,
                                          scale=1.3, shift=[0.1, -0.2, 0.05],
                                          reference_energies={1: -13.60569, 6: -1029.48899998, 8: -2041.8396}, **cls.tiny)
            if hasattr(pot.model, "set_avg_num_neighbors"):
                pot.model.set_avg_num_neighbors(6.5)
            with torch.no_grad():
                for p in pot.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            pot.eval()
            path = HERE / f"{name}_{dtype}_{version}.pt"
            pot.save(path)
            results = []
            for data in structures:
                out = pot(data.clone())
                results.append({"energy": out.energy.detach(), "forces": out.forces.detach()})
            outputs[f"{name}_{dtype}"] = results
    torch.save(outputs, HERE / f"outputs_{version}.pt")
    print("wrote", sorted(p.name for p in HERE.glob("*.pt")))


if __name__ == "__main__":
    main()

"""ASE calculator around a ``Potential``."""

from __future__ import annotations

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from equinnp.data import from_ase

__all__ = ["EquinnpCalculator"]


class EquinnpCalculator(Calculator):
    """Energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å³, Voigt) from a ``Potential``.

    Parameters
    ----------
    potential : Potential or path
        A potential, or the path of one saved with ``Potential.save``.
    device : str
        Where to evaluate.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, potential, device: str = "cpu", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(potential, torch.nn.Module):
            from equinnp.build import load_potential

            potential = load_potential(potential)
        self.potential = potential.to(device).eval()
        self.device = device

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        data = from_ase(self.atoms, dtype=self.potential.dtype).to(self.device)
        periodic = bool(np.any(self.atoms.pbc))
        out = self.potential(data, compute_forces=True, compute_stress=periodic)
        self.results["energy"] = float(out.energy[0].detach())
        self.results["free_energy"] = self.results["energy"]
        self.results["energies"] = out.atomic_energies.detach().cpu().numpy()
        self.results["forces"] = out.forces.detach().cpu().double().numpy()
        if periodic:
            s = out.stress[0].detach().cpu().double().numpy()
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])

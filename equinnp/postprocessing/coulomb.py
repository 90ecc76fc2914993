r"""Electrostatic energy of the predicted partial charges: the ``coulomb`` energy term.

.. math::
    E = E_\mathrm{full} + \sum_{i<j,\; r_{ij} < r_s} k_e\, q_i q_j\, \Delta(r_{ij})

- :math:`E_\mathrm{full}` is the plain :math:`k_e \sum_{i<j} q_i q_j / r_{ij}`:
  over all pairs of each open system (``method="direct"`` or ``"ewald"``), by
  Ewald summation in periodic cells (``"ewald"``, ``equinnp.postprocessing.ewald``,
  with the neutralising background of charged cells), or by the damped shifted
  force sum for every system (``"dsf"``, an approximation; see below);
- :math:`\Delta` is the short-range change (``shielding``):
  ``"physnet"``: :math:`\chi(r) - 1/r` (PhysNet's shielded form, smoothly switched
  to plain 1/r at the switch radius :math:`r_s`, by default half the
  PhysNet cutoff of 10 Å); ``"aimnet2"``: :math:`-f_\mathrm{exp}(r)/r`
  (AIMNet2's full minus enveloped short range, :math:`r_s` = 4.6 Å);
  ``"none"``: 0.

:math:`k_e` = 14.399645351950548 eV·Å/e² (``COULOMB_CONSTANT``). The charges
are those after the charge-conservation transform (float64). Each pair's energy
is split equally between its two atoms.

Damped shifted force (``"dsf"``): Fennell & Gezelter's pair sum with α = 0.2 Å⁻¹
and a 15 Å cutoff (aimnet's defaults) is not the Ewald energy; aimnet quotes
convergence to about 0.1 kcal/mol (4 meV) for molecular systems. The test suite
measures its difference from Ewald on a rock-salt cell (``tests/test_coulomb.py``)
and ``docs/physics.md`` states it.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from equinnp.nn.scatter import scatter_sum
from equinnp.postprocessing.base import EnergyTerm
from equinnp.postprocessing.coulomb_kernels import (
    aimnet2_short_range,
    damped_shifted_force,
    dsf_self_energy,
    physnet_shielding,
)
from equinnp.postprocessing.ewald import COULOMB_CONSTANT, ewald_energy, ewald_parameters

__all__ = ["Coulomb"]

SHIELDINGS = ("physnet", "aimnet2", "none")
METHODS = ("direct", "ewald", "dsf")
DEFAULT_SWITCH = {"physnet": 5.0, "aimnet2": 4.6, "none": None}


def _all_pairs(batch: Tensor, atoms: Tensor):
    """Unordered pairs (a < b) of the atoms ``atoms`` [M] that belong to the same system → ([P], [P])."""
    if atoms.numel() < 2:
        empty = atoms.new_zeros(0)
        return empty, empty
    a, b = torch.triu_indices(atoms.numel(), atoms.numel(), 1, device=atoms.device)  # [M(M-1)/2]
    a, b = atoms[a], atoms[b]
    same = batch[a] == batch[b]
    return a[same], b[same]


class Coulomb(EnergyTerm):
    """Coulomb energy of the partial charges (module docstring for the equations).

    Parameters
    ----------
    elements : sequence of int
        The model's elements (unused; every stage takes them).
    shielding : str
        ``"physnet"``, ``"aimnet2"`` or ``"none"``.
    switch_radius : float, optional
        :math:`r_s` (Å) of the short-range change: PhysNet's switch radius (paper:
        half the 10 Å cutoff, 5 Å), AIMNet2's envelope cutoff (4.6 Å). Default by
        ``shielding``.
    method : str
        ``"direct"`` (open systems, all pairs; periodic ones are refused),
        ``"ewald"`` (open systems direct, periodic cells by Ewald; fully periodic
        cells only), ``"dsf"`` (damped shifted force pairs within ``dsf_cutoff``).
    ewald_cutoff : float
        Real-space cutoff of the Ewald sum (Å); the potential searches pairs up to it.
    ewald_accuracy : float
        ε of :func:`equinnp.postprocessing.ewald.ewald_parameters`.
    dsf_alpha, dsf_cutoff : float
        Damping (Å⁻¹) and cutoff (Å) of the damped shifted force sum (aimnet: 0.2, 15).

    Shapes: ``forward(graph, atomic)`` with ``atomic.charges`` [N] → [N] float64 (eV).
    """

    name = "coulomb"

    def __init__(self, elements=None, shielding: str = "none", switch_radius: Optional[float] = None,
                 method: str = "direct", ewald_cutoff: float = 10.0, ewald_accuracy: float = 1e-8,
                 dsf_alpha: float = 0.2, dsf_cutoff: float = 15.0):
        super().__init__()
        if shielding not in SHIELDINGS:
            raise ValueError(f"coulomb: shielding must be one of {SHIELDINGS}, got {shielding!r}")
        if method not in METHODS:
            raise ValueError(f"coulomb: method must be one of {METHODS}, got {method!r}")
        switch_radius = DEFAULT_SWITCH[shielding] if switch_radius is None else float(switch_radius)
        if shielding != "none" and not switch_radius > 0:
            raise ValueError(f"coulomb: switch_radius must be positive, got {switch_radius}")
        for label, value in (("ewald_cutoff", ewald_cutoff), ("dsf_alpha", dsf_alpha), ("dsf_cutoff", dsf_cutoff)):
            if not value > 0:
                raise ValueError(f"coulomb: {label} must be positive, got {value}")
        self.shielding = shielding
        self.switch_radius = switch_radius if shielding != "none" else None
        self.method = method
        self.ewald_cutoff = float(ewald_cutoff)
        self.ewald_accuracy = float(ewald_accuracy)
        self.alpha, self.k_cutoff = ewald_parameters(self.ewald_cutoff, self.ewald_accuracy)
        self.dsf_alpha = float(dsf_alpha)
        self.dsf_cutoff = float(dsf_cutoff)
        radii = [r for r in (self.switch_radius, {"ewald": self.ewald_cutoff, "dsf": self.dsf_cutoff}.get(method)) if r]
        self.cutoff = max(radii) if radii else None

    def config(self) -> dict:
        return {"shielding": self.shielding, "switch_radius": self.switch_radius, "method": self.method,
                "ewald_cutoff": self.ewald_cutoff, "ewald_accuracy": self.ewald_accuracy,
                "dsf_alpha": self.dsf_alpha, "dsf_cutoff": self.dsf_cutoff}

    # ------------------------------------------------------------------ parts
    def _pairs_to_atoms(self, graph, charges: Tensor, kernel: Tensor, keep: Tensor) -> Tensor:
        """½ k_e q_i q_j kernel(r) of every kept directed edge, given to its centre atom → [N]."""
        j, i = graph.edge_index[0][keep], graph.edge_index[1][keep]
        pair = 0.5 * COULOMB_CONSTANT * charges[i] * charges[j] * kernel  # [P]
        return scatter_sum(pair, i, charges.shape[0])  # [N]

    def _direct(self, graph, charges: Tensor, atoms: Tensor) -> Tensor:
        a, b = _all_pairs(graph.batch, atoms)  # [P], [P]
        pos = graph.pos.double()
        r = torch.linalg.vector_norm(pos[b] - pos[a], dim=-1)  # [P]
        half = 0.5 * COULOMB_CONSTANT * charges[a] * charges[b] / r  # [P]
        return scatter_sum(half, a, charges.shape[0]) + scatter_sum(half, b, charges.shape[0])  # [N]

    def _ewald(self, graph, charges: Tensor, lengths: Tensor, periodic: Tensor) -> Tensor:
        energies = torch.zeros_like(charges)
        if not bool((graph.pbc[periodic]).all()):
            bad = graph.pbc[periodic & ~graph.pbc.all(dim=1)][0].tolist()
            raise ValueError(f"coulomb: Ewald summation needs cells periodic in all three directions, got pbc={bad}; "
                             "use method='dsf' for slabs and wires")
        for b in torch.nonzero(periodic).flatten().tolist():
            atoms = torch.nonzero(graph.batch == b).flatten()  # [n] contiguous in a PyG batch
            first = int(atoms[0])
            keep = (graph.batch[graph.edge_index[1]] == b) & (lengths <= self.ewald_cutoff)  # [E]
            local = graph.edge_index[:, keep] - first  # [2, E_b]
            system = ewald_energy(charges[atoms], graph.pos[atoms], graph.cell[b], local, lengths[keep], self.alpha, self.k_cutoff)
            energies = energies.index_add(0, atoms, system)  # [N]
        return energies

    # ---------------------------------------------------------------- forward
    def forward(self, graph, atomic) -> Tensor:
        if atomic.charges is None:
            raise ValueError("the coulomb energy term needs partial charges: build the model with charge_head=True "
                             "(SchNet, PaiNN) and add a charge-conservation transform (uniform_charges or weighted_charges)")
        charges = atomic.charges.double()  # [N]
        lengths = torch.linalg.vector_norm(graph.edge_vec.double(), dim=-1)  # [E]
        periodic_systems = (graph.pbc.any(dim=1) if graph.pbc is not None
                            else torch.zeros(graph.num_graphs, dtype=torch.bool, device=charges.device))  # [B]
        if self.method == "dsf":
            keep = lengths < self.dsf_cutoff
            energies = self._pairs_to_atoms(graph, charges, damped_shifted_force(lengths[keep], self.dsf_alpha, self.dsf_cutoff), keep)
            energies = energies + COULOMB_CONSTANT * dsf_self_energy(charges, self.dsf_alpha, self.dsf_cutoff)
        else:
            if self.method == "direct" and bool(periodic_systems.any()):
                raise ValueError("coulomb: method='direct' sums the pairs of open systems only, but the batch has a periodic "
                                 "system: use method='ewald' (or 'dsf')")
            open_atoms = torch.nonzero(~periodic_systems[graph.batch]).flatten()  # [M]
            energies = self._direct(graph, charges, open_atoms)
            if bool(periodic_systems.any()):
                energies = energies + self._ewald(graph, charges, lengths, periodic_systems)
        if self.shielding != "none":
            keep = lengths < self.switch_radius
            if self.shielding == "physnet":
                kernel = physnet_shielding(lengths[keep], self.switch_radius)
            else:
                kernel = -aimnet2_short_range(lengths[keep], self.switch_radius)
            energies = energies + self._pairs_to_atoms(graph, charges, kernel, keep)
        return energies  # [N] float64

    def extra_repr(self) -> str:
        return f"shielding={self.shielding!r}, switch_radius={self.switch_radius}, method={self.method!r}"

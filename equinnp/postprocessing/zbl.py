r"""Ziegler-Biersack-Littmark (ZBL) screened nuclear repulsion: the ``zbl`` energy term.

.. math::
    E = \sum_{i<j} \frac{k_e Z_i Z_j}{r_{ij}}\, \phi\!\Big(\frac{r_{ij}}{a_{ij}}\Big)\, S_{ij}(r_{ij}), \qquad
    a_{ij} = \frac{0.46850\ \text{Å}}{Z_i^{0.23} + Z_j^{0.23}}, \qquad
    \phi(x) = \sum_{k=1}^4 c_k e^{-d_k x}

The constant set is the "universal" screening function as LAMMPS
(``pair_style zbl``) and TorchANI (``potentials/zbl.py``) use it:
c = (0.18175, 0.50986, 0.28022, 0.02817), d = (3.19980, 0.94229, 0.40290,
0.20162), screening length 0.8853 a₀ = 0.46850 Å; the c sum to 1, so
:math:`E \to k_e Z_i Z_j / r` as r → 0 (the bare nuclear repulsion). The other
set in use (0.1818, 0.5099, 0.2802, 0.02817; 3.2, 0.9423, 0.4029, 0.2016;
0.8854 a₀: TorchMD-Net, modelforge) sums to 1.00007.

Switch-off: :math:`S_{ij}(r) = 1 - s\big((r - r^\mathrm{on}_{ij})/(r^\mathrm{off}_{ij} - r^\mathrm{on}_{ij})\big)`
with PhysNet's C² smootherstep s, :math:`r^\mathrm{off}_{ij} = f_\mathrm{off}(R_i + R_j)`
and :math:`r^\mathrm{on}_{ij} = f_\mathrm{on}\, r^\mathrm{off}_{ij}`, where R are
the covalent radii of ``ase.data.covalent_radii`` (Cordero et al. 2008). With
the defaults (:math:`f_\mathrm{off} = 1`, :math:`f_\mathrm{on} = 0.5`) the
repulsion is unchanged below half the sum of covalent radii and zero, with
its first two derivatives, from the covalent bond length on (as nutmeg and
modelforge switch it off at :math:`R_i + R_j`, there with a cosine).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from equinnp.nn.scatter import scatter_sum
from equinnp.postprocessing.base import EnergyTerm
from equinnp.postprocessing.coulomb_kernels import smootherstep
from equinnp.postprocessing.ewald import COULOMB_CONSTANT
from equinnp.postprocessing.float64 import keep_float64

__all__ = ["ZBLRepulsion", "ZBL_COEFFICIENTS", "ZBL_EXPONENTS", "ZBL_SCREENING_LENGTH"]

ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)
ZBL_SCREENING_LENGTH = 0.46850  # Å, 0.8853 bohr


class ZBLRepulsion(EnergyTerm):
    """ZBL repulsion switched off near the covalent bond length (module docstring for the equations).

    Parameters
    ----------
    elements : sequence of int
        The model's elements: their covalent radii fix the switch radii and the term's cutoff.
    switch_off : float
        :math:`f_\\mathrm{off}`: the repulsion is zero beyond ``switch_off`` × (R_i + R_j).
    switch_on : float
        :math:`f_\\mathrm{on}` in [0, 1): the switch starts at ``switch_on`` × the switch-off radius.

    Shapes: ``forward(graph, atomic)`` → [N] float64 (eV).
    """

    name = "zbl"
    _apply = keep_float64

    def __init__(self, elements: Sequence[int], switch_off: float = 1.0, switch_on: float = 0.5):
        super().__init__()
        from ase.data import covalent_radii

        if not switch_off > 0:
            raise ValueError(f"zbl: switch_off must be positive, got {switch_off}")
        if not 0 <= switch_on < 1:
            raise ValueError(f"zbl: switch_on must be in [0, 1), got {switch_on}")
        self.elements = [int(e) for e in elements]
        self.switch_off = float(switch_off)
        self.switch_on = float(switch_on)
        radii = torch.as_tensor(covalent_radii, dtype=torch.float64)[torch.tensor(self.elements)]  # [K]
        self.register_buffer("radii", radii, persistent=False)
        self.cutoff = float(2.0 * radii.max()) * self.switch_off

    def config(self) -> dict:
        return {"switch_off": self.switch_off, "switch_on": self.switch_on}

    def pair_energy(self, r: Tensor, z_i: Tensor, z_j: Tensor, radius_i: Tensor, radius_j: Tensor) -> Tensor:
        """ZBL energy (eV) of pairs at distance ``r`` [P] (Å) with atomic numbers and covalent radii [P]."""
        zi, zj = z_i.double(), z_j.double()
        screening = ZBL_SCREENING_LENGTH / (zi.pow(0.23) + zj.pow(0.23))  # [P]
        x = r / screening
        phi = sum(c * torch.exp(-d * x) for c, d in zip(ZBL_COEFFICIENTS, ZBL_EXPONENTS))  # [P]
        off = self.switch_off * (radius_i + radius_j)  # [P]
        on = self.switch_on * off
        switch = 1.0 - smootherstep((r - on) / (off - on))  # [P]
        return COULOMB_CONSTANT * zi * zj / r * phi * switch

    def forward(self, graph, atomic) -> Tensor:
        j, i = graph.edge_index[0], graph.edge_index[1]
        r = torch.linalg.vector_norm(graph.edge_vec.double(), dim=-1)  # [E]
        radii = self.radii.to(r.device)[graph.species]  # [N]
        pair = self.pair_energy(r, graph.z[i], graph.z[j], radii[i], radii[j])  # [E], each pair twice
        return scatter_sum(0.5 * pair, i, graph.z.shape[0])  # [N]

    def extra_repr(self) -> str:
        return f"switch_off={self.switch_off:g}, switch_on={self.switch_on:g}, cutoff={self.cutoff:.3g}"

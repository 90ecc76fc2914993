r"""The three-body (Axilrod-Teller-Muto) term of DFT-D3, on the triples of a neighbor list.

Grimme, Antony, Ehrlich, Krieg, J. Chem. Phys. 132, 154104 (2010), eqs. 10-12, in
the form of simple-dftd3 (zero damping of the three-body term also with BJ
damping of the two-body term). In atomic units, for every triangle of atoms
A, B, C (periodic images included) whose three sides are within the cutoff:

.. math::
    E^{(3)} = \sum_{ABC} s_9\, \sqrt{C_6^{AB} C_6^{AC} C_6^{BC}}\;
        \frac{3 \cos\theta_a \cos\theta_b \cos\theta_c + 1}{(r_{AB}\, r_{AC}\, r_{BC})^3}\;
        f_\mathrm{damp}, \qquad
    f_\mathrm{damp} = \frac{1}{1 + 6\,\big(\bar R_0 / \bar r\big)^{\alpha}}

with :math:`\bar r = (r_{AB} r_{AC} r_{BC})^{1/3}` and
:math:`\bar R_0 = s_{r,9} (R_0^{AB} R_0^{AC} R_0^{BC})^{1/3}` geometric means,
:math:`s_{r,9} = 4/3`, :math:`R_0^{AB}` the pairwise D3 cutoff radii (Grimme's
``r0ab`` table) and :math:`\alpha` = ``alp`` + 2 = 16 (Grimme 2010's three-body
exponent; simple-dftd3 1.7.0 takes ``alp`` = 14 and raises the ratio of the
products of the three radii and sides to (``alp`` + 2)/3, the same thing). The
angular factor is written with squared sides,

.. math::
    3\cos\theta_a\cos\theta_b\cos\theta_c
      = \frac{3}{8}\,\frac{(r_{AB}^2 + r_{BC}^2 - r_{AC}^2)(r_{AB}^2 - r_{BC}^2 + r_{AC}^2)(-r_{AB}^2 + r_{BC}^2 + r_{AC}^2)}{r_{AB}^2\, r_{AC}^2\, r_{BC}^2}.

The C6 are those of the two-body term (coordination-number dependent), so the
three-body term also depends on the coordination numbers. For an equilateral
triangle the term is positive (repulsive).

Counting: each triangle is seen from each of its three vertices i (in the
home cell), once for each order of its two other vertices j, k (edges
``j → i`` and ``k → i`` of the neighbor list, distinct sites); each sighting adds
a sixth of the triangle's energy to atom i, so each vertex gets a third, as in
simple-dftd3.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["EdgePairs", "edge_pairs_at_centres", "atm_energy"]

RS9 = 4.0 / 3.0  # scaling of the cutoff radii in the three-body damping (Grimme 2010; simple-dftd3)


class EdgePairs(NamedTuple):
    """Ordered pairs of distinct edges with the same centre atom: ``first`` [T], ``second`` [T] (edge indices)."""

    first: Tensor
    second: Tensor


def edge_pairs_at_centres(centre: Tensor, num_nodes: int) -> EdgePairs:
    """Every ordered pair (e1, e2), e1 ≠ e2, of edges with the same centre atom ``centre[e]``.

    Parameters
    ----------
    centre : Tensor, [E] long
        Centre atom of each edge (``edge_index[1]``).
    num_nodes : int

    Returns T = Σ_i d_i (d_i − 1) pairs, d_i the number of edges of atom i.
    """
    order = torch.argsort(centre, stable=True)  # [E] edges grouped by centre
    degree = torch.bincount(centre, minlength=num_nodes)  # [N]
    start = torch.cumsum(degree, 0) - degree  # [N] first position of each centre's block
    sorted_centre = centre[order]  # [E]
    repeats = degree[sorted_centre]  # [E] block size of each edge's centre
    position = torch.repeat_interleave(torch.arange(order.numel(), device=centre.device), repeats)  # [Σ d²]
    block_start = torch.repeat_interleave(start[sorted_centre], repeats)  # [Σ d²]
    offset = torch.arange(position.numel(), device=centre.device) - torch.repeat_interleave(
        torch.cumsum(repeats, 0) - repeats, repeats
    )  # [Σ d²] index within the block
    partner = block_start + offset  # [Σ d²]
    distinct = partner != position
    return EdgePairs(order[position[distinct]], order[partner[distinct]])


def atm_energy(v_ij: Tensor, v_ik: Tensor, c6_ij: Tensor, c6_ik: Tensor, c6_jk: Tensor, r0_ij: Tensor, r0_ik: Tensor,
               r0_jk: Tensor, s9: float, alp: float) -> Tensor:
    """Energy (hartree) [T] of each triangle (i, j, k) from the sides ``v_ij``, ``v_ik`` [T, 3] (bohr).

    ``c6_*`` [T] (hartree bohr⁶) are the pair C6, ``r0_*`` [T] (bohr) the pairwise
    cutoff radii before the 4/3 scaling; ``v_jk = v_ik − v_ij``; ``alp`` as
    simple-dftd3's (14 gives the exponent 16 on the geometric means).
    """
    r2_ij = v_ij.square().sum(-1)  # [T]
    r2_ik = v_ik.square().sum(-1)
    r2_jk = (v_ik - v_ij).square().sum(-1)
    r2 = r2_ij * r2_ik * r2_jk  # (r_ij r_ik r_jk)^2
    r1 = torch.sqrt(r2)
    r3 = r2 * r1
    r5 = r3 * r2
    angular = 0.375 * (r2_ij + r2_jk - r2_ik) * (r2_ij - r2_jk + r2_ik) * (-r2_ij + r2_jk + r2_ik) / r5 + 1.0 / r3
    r0 = RS9**3 * r0_ij * r0_ik * r0_jk  # product of the three scaled radii
    damping = 1.0 / (1.0 + 6.0 * (r0 / r1) ** ((alp + 2.0) / 3.0))
    c9 = s9 * torch.sqrt(torch.abs(c6_ij * c6_ik * c6_jk))
    return c9 * angular * damping

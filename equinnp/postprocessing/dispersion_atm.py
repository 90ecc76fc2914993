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
home cell), once, as an unordered pair {j → i, k → i} of distinct edges of the
neighbor list; each sighting adds a third of the triangle's energy to atom i,
as in simple-dftd3. (Ordered pairs would see each triangle twice from each
vertex; a triangle seen from one vertex only would need a canonical vertex
among periodic images.)

Memory: the triangles are evaluated in chunks of about ``chunk_size`` edge
pairs (``chunks_of_edge_pairs``: consecutive runs of first edges, so a chunk
holds at most ``chunk_size`` + (largest degree − 1) pairs). Where gradients are
needed, each chunk is wrapped in ``torch.utils.checkpoint`` (non-reentrant):
the forward pass keeps only the chunk's energies, the backward pass recomputes
the chunk's triangles and frees them before the next chunk, so energy,
forces and stress in evaluation mode need O(E + chunk_size) memory instead of
O(T). Where the forces are differentiated again (``create_graph``: training on
forces, Hessians) the recomputed graphs are kept for the second derivative and
the memory grows with T as without chunks; the results are the same. The
number of pairs T = Σ_i d_i (d_i − 1) / 2 is known from the degrees before any
triangle is built (``EdgePairPlan.total``); it sets the time, not the memory,
so no size is refused: the chunks fit wherever the neighbor list does. Within
a chunk, pairs whose third side j-k is beyond the cutoff (switch exactly 0) are
dropped before the energies are evaluated.
"""

from __future__ import annotations

from typing import List, NamedTuple, Tuple

import torch
from torch import Tensor

__all__ = ["EdgePairs", "EdgePairPlan", "plan_edge_pairs", "chunks_of_edge_pairs", "edge_pairs_in_chunk", "atm_energy"]

RS9 = 4.0 / 3.0  # scaling of the cutoff radii in the three-body damping (Grimme 2010; simple-dftd3)


class EdgePairs(NamedTuple):
    """Unordered pairs of distinct edges with the same centre atom: ``first`` [T], ``second`` [T] (edge indices)."""

    first: Tensor
    second: Tensor


class EdgePairPlan(NamedTuple):
    """Edges grouped by centre and the pairs each edge opens.

    ``order`` [E]: edge indices sorted (stably) by centre; ``later`` [E]: for the
    edge at each sorted position, the number of edges after it in its centre's
    block (its pairs as the first edge); ``total``: T = Σ ``later`` = Σ_i d_i (d_i − 1) / 2.
    """

    order: Tensor
    later: Tensor
    total: int


def plan_edge_pairs(centre: Tensor, num_nodes: int) -> EdgePairPlan:
    """Group the edges by their centre atom ``centre`` [E] (``edge_index[1]``) and count their pairs."""
    order = torch.argsort(centre, stable=True)  # [E] edges grouped by centre
    degree = torch.bincount(centre, minlength=num_nodes)  # [N]
    block_end = torch.cumsum(degree, 0)[centre[order]]  # [E] one past the last position of each edge's block
    later = block_end - 1 - torch.arange(order.numel(), device=centre.device)  # [E]
    return EdgePairPlan(order, later, int(later.sum()))


def chunks_of_edge_pairs(plan: EdgePairPlan, chunk_size: int) -> List[Tuple[int, int]]:
    """Ranges ``[start, stop)`` of sorted positions whose pairs number about ``chunk_size`` each
    (at most ``chunk_size`` + max(``later``)); empty ranges and positions without pairs at the ends are dropped."""
    if plan.total == 0:
        return []
    if plan.total <= chunk_size:
        return [(0, plan.later.numel())]
    cumulative = torch.cumsum(plan.later, 0)  # [E]
    targets = torch.arange(chunk_size, plan.total, chunk_size, device=cumulative.device)  # [n_chunks - 1]
    inner = torch.searchsorted(cumulative, targets, right=True).tolist()  # first position past each target
    bounds = [0] + inner + [plan.later.numel()]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def edge_pairs_in_chunk(plan: EdgePairPlan, start: int, stop: int) -> EdgePairs:
    """The pairs (e1, e2) whose first edge e1 sits at a sorted position in ``[start, stop)``, e2 after it in its block."""
    later = plan.later[start:stop]  # [S]
    position = torch.repeat_interleave(torch.arange(start, stop, device=later.device), later)  # [T_c]
    run_start = torch.repeat_interleave(torch.cumsum(later, 0) - later, later)  # [T_c]
    partner = position + 1 + torch.arange(position.numel(), device=later.device) - run_start  # [T_c]
    return EdgePairs(plan.order[position], plan.order[partner])


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

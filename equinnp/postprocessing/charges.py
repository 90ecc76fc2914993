"""Partial charges that sum to the total charge, and the dipole they give.

Two transforms of the core network's raw charges :math:`\\tilde q_i` (one per
potential, registered as ``uniform_charges`` and ``weighted_charges``), and
:func:`dipole_moment`, which ``Potential`` applies to the final charges.
Both transforms work in float64 so that :math:`\\sum_i q_i = Q` holds to
rounding (1e-12 e) whatever the network's dtype.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from equinnp.nn.scatter import scatter_sum
from equinnp.postprocessing.base import AtomicTransform

__all__ = ["UniformChargeConservation", "WeightedChargeConservation", "dipole_moment"]


def _raw_charges(transform, atomic) -> Tensor:
    if atomic.charges is None:
        raise ValueError(
            f"the {transform.name!r} transform needs partial charges from the core network, which predicts none: "
            "build the model with charge_head=True (SchNet, PaiNN) or use an architecture whose outputs include 'charges'"
        )
    return atomic.charges.double()  # [N]


class UniformChargeConservation(AtomicTransform):
    r"""Uniform charge correction (PhysNet, Unke & Meuwly 2019, eq. 14).

    .. math:: q_i = \tilde q_i + \frac{1}{N_b}\Big(Q_b - \sum_{j \in b} \tilde q_j\Big)

    for atom i of system b with :math:`N_b` atoms and total charge
    :math:`Q_b` (``graph.charge``, 0 where the data gives none). Exact.

    Shapes: ``atomic.charges`` [N] → [N] float64.
    """

    name = "uniform_charges"

    def __init__(self, elements=None):
        super().__init__()

    def forward(self, atomic, graph):
        raw = _raw_charges(self, atomic)
        excess = graph.charge.double() - scatter_sum(raw, graph.batch, graph.num_graphs)  # [B]
        count = scatter_sum(torch.ones_like(raw), graph.batch, graph.num_graphs)  # [B]
        return atomic._replace(charges=raw + (excess / count)[graph.batch])  # [N]


class WeightedChargeConservation(AtomicTransform):
    r"""Weighted charge correction (AIMNet2's neural charge equilibration, Anstine et al. 2025).

    .. math::
        q_i = \tilde q_i + w_i \Big(Q_b - \sum_{j \in b} \tilde q_j\Big), \qquad
        w_i = \frac{f_i + \varepsilon / N_b}{\sum_{j \in b} f_j + \varepsilon}

    with :math:`f_i \ge 0` the network's ``charge_weights``. The weights of a
    system sum to exactly one, so the total charge is conserved to rounding for
    any :math:`f` (also all zero: then the correction is uniform). aimnet's
    ``nse`` divides :math:`f_i` by :math:`\sum f + \varepsilon` instead, which
    conserves the charge only up to :math:`\varepsilon/(\sum f + \varepsilon)`
    of the excess; the two differ by :math:`\varepsilon\,\Delta Q/(N_b(\sum f + \varepsilon))`
    per atom, below 1e-6 e for :math:`\sum f \gtrsim 1`.

    Parameters
    ----------
    epsilon : float
        :math:`\varepsilon` (aimnet: 1e-6).

    Shapes: ``atomic.charges``, ``atomic.charge_weights`` [N] → [N] float64.
    """

    name = "weighted_charges"

    def __init__(self, elements=None, epsilon: float = 1e-6):
        super().__init__()
        if not epsilon > 0:
            raise ValueError(f"weighted_charges: epsilon must be positive, got {epsilon}")
        self.epsilon = float(epsilon)

    def config(self) -> dict:
        return {"epsilon": self.epsilon}

    def forward(self, atomic, graph):
        raw = _raw_charges(self, atomic)
        if atomic.charge_weights is None:
            raise ValueError("the 'weighted_charges' transform needs charge_weights from the core network (its charge head); "
                             "use 'uniform_charges' for a model that predicts charges only")
        weights = atomic.charge_weights.double()  # [N]
        if bool((weights < 0).any()):
            raise ValueError(f"weighted_charges: charge weights must be non-negative, got minimum {weights.min().item():.3g}")
        count = scatter_sum(torch.ones_like(raw), graph.batch, graph.num_graphs)  # [B]
        weights = weights + (self.epsilon / count)[graph.batch]  # [N]
        share = weights / scatter_sum(weights, graph.batch, graph.num_graphs)[graph.batch]  # [N], sums to 1 per system
        excess = graph.charge.double() - scatter_sum(raw, graph.batch, graph.num_graphs)  # [B]
        return atomic._replace(charges=raw + share * excess[graph.batch])

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon:g}"


def dipole_moment(charges: Tensor, pos: Tensor, z: Tensor, batch: Tensor, num_graphs: int,
                  pbc: Optional[Tensor] = None) -> Tensor:
    r"""Dipole moment per system about its centre of mass (e·Å).

    .. math:: \boldsymbol\mu_b = \sum_{i \in b} q_i (\mathbf r_i - \mathbf R_b), \qquad
              \mathbf R_b = \frac{\sum_{i \in b} m_i \mathbf r_i}{\sum_{i \in b} m_i}

    The centre of mass (``ase.data.atomic_masses``) makes the dipole of a
    charged system independent of the origin of the coordinates, as aimnet's
    ``Dipole(center_coord=True)``; for a neutral system it is the plain
    :math:`\sum_i q_i \mathbf r_i`. The dipole of a periodic system is not
    defined (it depends on which image of each atom is taken): its row is NaN.

    Shapes: ``charges`` [N], ``pos`` [N, 3], ``z`` [N], ``batch`` [N], ``pbc`` [B, 3] or None → [B, 3] float64.
    """
    from ase.data import atomic_masses

    masses = torch.as_tensor(atomic_masses, dtype=torch.float64, device=pos.device)[z]  # [N]
    pos = pos.double()
    centre = scatter_sum(masses.unsqueeze(-1) * pos, batch, num_graphs) / scatter_sum(masses, batch, num_graphs).unsqueeze(-1)  # [B, 3]
    dipole = scatter_sum(charges.double().unsqueeze(-1) * (pos - centre[batch]), batch, num_graphs)  # [B, 3]
    if pbc is not None:
        periodic = pbc.reshape(-1, 3).any(dim=1)  # [B]
        dipole = torch.where(periodic.unsqueeze(-1), torch.full_like(dipole, float("nan")), dipole)
    return dipole

r"""Ewald summation of point-charge electrostatics in a periodic cell (conducting boundary).

For charges :math:`q_i` at :math:`\mathbf r_i` in a cell of volume V, with
splitting parameter α (Å⁻¹) and :math:`k_e` = 14.399645351950548 eV·Å/e²:

.. math::
    E = k_e \Big[\frac12 \sum_{i,j,\mathbf n}' q_i q_j \frac{\operatorname{erfc}(\alpha r_{ij,\mathbf n})}{r_{ij,\mathbf n}}
        + \frac{2\pi}{V} \sum_{\mathbf k \ne 0} \frac{e^{-k^2/4\alpha^2}}{k^2}
          \Big|\sum_j q_j e^{i\mathbf k\cdot\mathbf r_j}\Big|^2
        - \frac{\alpha}{\sqrt\pi} \sum_i q_i^2 - \frac{\pi Q^2}{2 V \alpha^2}\Big]

(the primed real-space sum skips i = j in the home cell; the reciprocal
sum runs over :math:`\mathbf k` and :math:`-\mathbf k`). The last term is the neutralising background of a cell with
net charge :math:`Q = \sum_i q_i`; it makes the energy independent of α for
charged cells too. The energy is split per atom as
:math:`E_i = \frac12 q_i \phi_i + \text{self}_i + \text{background}/N`.

Parameters from a real-space cutoff :math:`r_c` and an accuracy ε:
:math:`\alpha = \sqrt{-\ln \varepsilon}/r_c` (so that
:math:`\operatorname{erfc}(\alpha r_c) \approx \varepsilon`) and
:math:`k_c = 2\alpha\sqrt{-\ln\varepsilon}` (so that
:math:`e^{-k_c^2/4\alpha^2} = \varepsilon`). Both truncations then contribute
relative errors of order ε.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor

__all__ = ["COULOMB_CONSTANT", "ewald_parameters", "ewald_energy", "reciprocal_vectors"]

#: :math:`k_e = E_h a_0` (CODATA 2018 values as in aimnet's constants; PhysNet uses the same), eV·Å/e².
COULOMB_CONSTANT = 27.211386024367243 * 0.5291772105638411


def ewald_parameters(real_space_cutoff: float, accuracy: float) -> Tuple[float, float]:
    """``(alpha, k_cutoff)`` in Å⁻¹ for a real-space cutoff (Å) and a target accuracy ε (0 < ε < 1)."""
    if not 0 < accuracy < 1:
        raise ValueError(f"Ewald accuracy must be between 0 and 1, got {accuracy}")
    if not real_space_cutoff > 0:
        raise ValueError(f"Ewald real-space cutoff must be positive, got {real_space_cutoff}")
    root = math.sqrt(-math.log(accuracy))
    alpha = root / real_space_cutoff
    return alpha, 2.0 * alpha * root


def reciprocal_vectors(cell: Tensor, k_cutoff: float) -> Tensor:
    r"""All :math:`\mathbf k = \mathbf n B \ne 0` with :math:`|\mathbf k| \le k_c`, :math:`B = 2\pi A^{-\top}`.

    The integer range is chosen from the detached cell; the vectors
    themselves are differentiable in ``cell`` (for the stress).

    Shapes: ``cell`` [3, 3] (rows are lattice vectors) → [K, 3].
    """
    recip = 2.0 * math.pi * torch.linalg.inv(cell).transpose(0, 1)  # [3, 3], rows b_i with a_i . b_j = 2π δ_ij
    lengths = torch.linalg.vector_norm(cell.detach(), dim=1)  # [3]
    n_max = [int(math.ceil(k_cutoff * float(length) / (2.0 * math.pi))) for length in lengths]
    ranges = [torch.arange(-m, m + 1, device=cell.device, dtype=cell.dtype) for m in n_max]
    n = torch.cartesian_prod(*ranges)  # [M, 3]
    n = n[(n != 0).any(dim=1)]
    k = n @ recip  # [M, 3]
    return k[torch.linalg.vector_norm(k.detach(), dim=1) <= k_cutoff]  # [K, 3]


def ewald_energy(charges: Tensor, pos: Tensor, cell: Tensor, edge_index: Tensor, edge_length: Tensor,
                 alpha: float, k_cutoff: float) -> Tensor:
    """Per-atom Ewald energy (eV) of one periodic system.

    Parameters
    ----------
    charges : Tensor, [N] float64
    pos : Tensor, [N, 3]
        Positions (Å) of this system's atoms.
    cell : Tensor, [3, 3]
        Lattice vectors as rows (Å); periodic in all three directions.
    edge_index, edge_length : Tensor, [2, E] and [E]
        Every directed pair (j → i, with periodic images, self-images included)
        within the real-space cutoff, indices local to this system.
    alpha, k_cutoff : float
        From :func:`ewald_parameters`.

    Shapes: → [N] float64; their sum is the system's Ewald energy.
    """
    charges, pos, cell, edge_length = charges.double(), pos.double(), cell.double(), edge_length.double()
    n_atoms = charges.shape[0]
    j, i = edge_index[0], edge_index[1]
    pair = charges[i] * charges[j] * torch.erfc(alpha * edge_length) / edge_length  # [E]
    real = 0.5 * torch.zeros_like(charges).index_add_(0, i, pair)  # [N]

    volume = torch.linalg.det(cell).abs()
    k = reciprocal_vectors(cell, k_cutoff)  # [K, 3]
    k2 = (k * k).sum(-1)  # [K]
    green = torch.exp(-k2 / (4.0 * alpha**2)) / k2  # [K]
    phase = pos @ k.transpose(0, 1)  # [N, K]
    cos, sin = torch.cos(phase), torch.sin(phase)  # [N, K]
    structure_cos, structure_sin = charges @ cos, charges @ sin  # [K]
    # E_rec = (2π/V) Σ_k G |S(k)|², split per atom as q_i Re(e^{-ik.r_i} S(k))
    reciprocal = (2.0 * math.pi / volume) * charges * ((cos * structure_cos + sin * structure_sin) @ green)  # [N]

    self_energy = -(alpha / math.sqrt(math.pi)) * charges.square()  # [N]
    total = charges.sum()
    background = -(math.pi * total.square() / (2.0 * volume * alpha**2)) / n_atoms  # [] per atom
    return COULOMB_CONSTANT * (real + reciprocal + self_energy + background)  # [N]

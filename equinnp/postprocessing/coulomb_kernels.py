r"""Pair functions of the Coulomb term (distances in Å, results in Å⁻¹; multiply by :math:`k_e q_i q_j`).

- :func:`physnet_shielding`: PhysNet's :math:`\chi(r) - 1/r`, the change of the plain
  interaction inside the switch radius (Unke & Meuwly 2019, eq. 12);
- :func:`aimnet2_short_range`: AIMNet2's enveloped short-range part
  :math:`f_\mathrm{exp}(r)/r` that is subtracted from the full interaction
  (aimnet ``LRCoulomb`` with ``subtract_sr``);
- :func:`damped_shifted_force`: Fennell & Gezelter's (J. Chem. Phys. 124, 234104 (2006))
  damped shifted force pair function and its self term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["smootherstep", "physnet_shielding", "aimnet2_short_range", "damped_shifted_force", "dsf_self_energy"]


def smootherstep(y: Tensor) -> Tensor:
    r""":math:`s(y) = 6y^5 - 15y^4 + 10y^3` on [0, 1], 0 below, 1 above (C², PhysNet's switch)."""
    y = y.clamp(0.0, 1.0)
    return y**3 * (y * (6.0 * y - 15.0) + 10.0)


def physnet_shielding(r: Tensor, switch_radius: float) -> Tensor:
    r"""PhysNet's shielded minus plain interaction, :math:`\chi(r) - 1/r`.

    .. math::
        \chi(r) = \frac{1 - s(r/r_s)}{\sqrt{r^2 + 1}} + \frac{s(r/r_s)}{r}
        \quad\Rightarrow\quad
        \chi(r) - \frac1r = \big(1 - s(r/r_s)\big)\Big(\frac{1}{\sqrt{r^2+1}} - \frac1r\Big)

    with :math:`r_s` the switch radius (PhysNet: half the model's cutoff) and
    1 Å² of shielding. Zero with all derivatives up to the second for
    :math:`r \ge r_s`. :math:`\chi(0) = 1` Å⁻¹ is finite.

    Shapes: ``r`` [P] → [P].
    """
    safe = r.clamp(min=1e-12)
    return (1.0 - smootherstep(r / switch_radius)) * (torch.rsqrt(r * r + 1.0) - 1.0 / safe)


def aimnet2_short_range(r: Tensor, cutoff: float) -> Tensor:
    r"""AIMNet2's short-range part :math:`f_\mathrm{exp}(r)/r`, subtracted from the full interaction.

    .. math:: f_\mathrm{exp}(r) = \exp\!\Big(1 - \frac{1}{1 - (r/r_c)^2}\Big) \text{ for } r < r_c, \; 0 \text{ beyond}

    (aimnet: ``exp(-1/(1 - x²))/e⁻¹``, :math:`r_c` = 4.6 Å): 1 at r = 0, zero with
    every derivative at :math:`r_c`.

    Shapes: ``r`` [P] → [P].
    """
    x2 = (r / cutoff).square()
    inside = x2 < 1.0
    envelope = torch.where(inside, torch.exp(1.0 - 1.0 / (1.0 - torch.where(inside, x2, torch.zeros_like(x2)))), torch.zeros_like(x2))
    return envelope / r.clamp(min=1e-12)


def damped_shifted_force(r: Tensor, alpha: float, cutoff: float) -> Tensor:
    r"""Damped shifted force pair function (zero with its first derivative at :math:`r_c`).

    .. math::
        v(r) = \frac{\operatorname{erfc}(\alpha r)}{r} - \frac{\operatorname{erfc}(\alpha r_c)}{r_c}
        + (r - r_c)\Big(\frac{\operatorname{erfc}(\alpha r_c)}{r_c^2}
        + \frac{2\alpha}{\sqrt\pi}\frac{e^{-\alpha^2 r_c^2}}{r_c}\Big), \qquad r < r_c

    Shapes: ``r`` [P] → [P] (0 beyond the cutoff).
    """
    erfc_c = math.erfc(alpha * cutoff)
    slope = erfc_c / cutoff**2 + 2.0 * alpha / math.sqrt(math.pi) * math.exp(-((alpha * cutoff) ** 2)) / cutoff
    value = torch.erfc(alpha * r) / r.clamp(min=1e-12) - erfc_c / cutoff + (r - cutoff) * slope
    return torch.where(r < cutoff, value, torch.zeros_like(value))


def dsf_self_energy(charges: Tensor, alpha: float, cutoff: float) -> Tensor:
    r"""Self term of the damped shifted force sum, :math:`-\big(\frac{\operatorname{erfc}(\alpha r_c)}{2 r_c} + \frac{\alpha}{\sqrt\pi}\big) q_i^2` (Å⁻¹ e²).

    Shapes: ``charges`` [N] → [N].
    """
    return -(math.erfc(alpha * cutoff) / (2.0 * cutoff) + alpha / math.sqrt(math.pi)) * charges.square()

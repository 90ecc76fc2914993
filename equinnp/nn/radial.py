"""Radial basis functions of the interatomic distance.

Each basis maps distances ``r`` of shape [E] to features of shape [E, num_rbf].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GaussianRBF", "BesselRBF"]


class GaussianRBF(nn.Module):
    r"""Gaussians on an even grid (SchNet, Schütt et al. 2018, eq. 6).

    .. math:: e_k(r) = \exp\left(-\frac{(r - \mu_k)^2}{2\,\Delta^2}\right),
              \quad \mu_k = \mathrm{start} + k\Delta

    with ``num_rbf`` centers from ``start`` to ``stop`` and width equal to the
    grid spacing Δ (the parametrisation of PyG's ``GaussianSmearing``).

    Shapes: ``r`` [E] → [E, num_rbf].
    """

    def __init__(self, start: float = 0.0, stop: float = 5.0, num_rbf: int = 50):
        super().__init__()
        if num_rbf < 2:
            raise ValueError(f"GaussianRBF needs num_rbf >= 2, got {num_rbf}")
        offset = torch.linspace(start, stop, num_rbf, dtype=torch.float64)  # exact; cast with the model
        self.num_rbf = num_rbf
        self.coeff = -0.5 / (offset[1] - offset[0]).item() ** 2
        self.register_buffer("offset", offset)

    def forward(self, r: Tensor) -> Tensor:
        return torch.exp(self.coeff * (r.unsqueeze(-1) - self.offset) ** 2)  # [E, K]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_rbf={self.num_rbf}, stop={self.offset[-1].item():g})"


class BesselRBF(nn.Module):
    r"""Spherical Bessel functions of order zero (PaiNN, DimeNet, MACE).

    .. math:: e_n(r) = c\,\frac{\sin(n \pi r / r_c)}{r}, \quad n = 1..N

    with ``c = prefactor`` (1 in PaiNN; :math:`\sqrt{2/r_c}` in DimeNet and
    MACE, ``normalize=True``). At ``r = 0`` the division uses 1 instead of 0
    (the sine is 0 there), so no NaN reaches the gradient. With
    ``trainable=True`` the frequencies :math:`n\pi/r_c` are parameters (MACE).

    Shapes: ``r`` [E] → [E, num_rbf].
    """

    def __init__(self, num_rbf: int = 20, cutoff: float = 5.0, normalize: bool = False, trainable: bool = False):
        super().__init__()
        freqs = torch.arange(1, num_rbf + 1, dtype=torch.float64) * math.pi / cutoff  # exact; cast with the model
        if trainable:
            self.freqs = nn.Parameter(freqs)
        else:
            self.register_buffer("freqs", freqs)
        self.num_rbf = num_rbf
        self.cutoff = cutoff
        self.prefactor = math.sqrt(2.0 / cutoff) if normalize else 1.0

    def forward(self, r: Tensor) -> Tensor:
        safe_r = torch.where(r == 0, torch.ones_like(r), r)
        sine = torch.sin(r.unsqueeze(-1) * self.freqs)  # [E, N]
        return (sine if self.prefactor == 1.0 else self.prefactor * sine) / safe_r.unsqueeze(-1)  # [E, N]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_rbf={self.num_rbf}, cutoff={self.cutoff:g})"

r"""Exponential-normal radial basis (PhysNet, Unke & Meuwly 2019, eq. 7; TensorNet, TorchMD-Net)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from equinnp.nn.cutoff import CosineCutoff

__all__ = ["ExpNormalRBF"]


class ExpNormalRBF(nn.Module):
    r"""Gaussians in :math:`e^{-\alpha r}`, times the cosine cutoff.

    .. math::
        e_k(r) = f_c(r)\,\exp\!\left(-\beta_k \left(e^{-\alpha r} - \mu_k\right)^2\right),
        \qquad \alpha = 5 / r_c

    with the :math:`\mu_k` evenly spaced from :math:`e^{-r_c}` to 1 and
    :math:`\beta_k = \left(\tfrac{2}{K}(1 - e^{-r_c})\right)^{-2}` (PhysNet's
    initial values). The centers crowd at short range, where energies vary fastest.

    Parameters
    ----------
    num_rbf : int
        Number K of basis functions.
    cutoff : float
        :math:`r_c` (Å).
    trainable : bool
        Make :math:`\mu_k` and :math:`\beta_k` parameters.

    Shapes: ``r`` [E] → [E, K].
    """

    def __init__(self, num_rbf: int = 32, cutoff: float = 4.5, trainable: bool = False):
        super().__init__()
        if num_rbf < 1:
            raise ValueError(f"ExpNormalRBF needs num_rbf >= 1, got {num_rbf}")
        self.num_rbf = num_rbf
        self.cutoff = float(cutoff)
        self.alpha = 5.0 / self.cutoff
        self.cutoff_fn = CosineCutoff(cutoff)
        start = math.exp(-self.cutoff)
        means = torch.linspace(start, 1.0, num_rbf, dtype=torch.float64).to(torch.get_default_dtype())
        betas = torch.full((num_rbf,), (2.0 / num_rbf * (1.0 - start)) ** -2, dtype=torch.float64).to(means.dtype)
        if trainable:
            self.means = nn.Parameter(means)
            self.betas = nn.Parameter(betas)
        else:
            self.register_buffer("means", means)
            self.register_buffer("betas", betas)

    def forward(self, r: Tensor) -> Tensor:
        r = r.unsqueeze(-1)  # [E, 1]
        return self.cutoff_fn(r) * torch.exp(-self.betas * (torch.exp(-self.alpha * r) - self.means) ** 2)  # [E, K]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_rbf={self.num_rbf}, cutoff={self.cutoff:g})"

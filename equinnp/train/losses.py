"""Weighted energy, force and stress loss.

.. math::
    \\mathcal{L} = \\frac{\\lambda_E}{B} \\sum_b \\ell\\Big(\\frac{E_b - \\hat E_b}{N_b}\\Big)
                 + \\frac{\\lambda_F}{3N} \\sum_{i,\\alpha} \\ell\\big(F_{i\\alpha} - \\hat F_{i\\alpha}\\big)
                 + \\frac{\\lambda_\\sigma}{9B_\\sigma} \\sum_{b,\\alpha\\beta} \\ell\\big(\\sigma_{b\\alpha\\beta} - \\hat\\sigma_{b\\alpha\\beta}\\big)

with :math:`\\ell(x) = x^2` (MSE) or the Huber function, energies per atom
(eV/atom), forces in eV/Å and stress in eV/Å³ (as in MACE, Batatia et al.,
NeurIPS 2022, eq. 12, with per-atom energies). The stress term runs over the
periodic systems that carry a stress label.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["LossTerms", "WeightedLoss", "loss_weights_at"]


class LossTerms(NamedTuple):
    """The total loss and its unweighted parts (all scalars)."""

    total: Tensor
    energy: Tensor
    forces: Tensor
    stress: Tensor


def loss_weights_at(loss_config: dict, epoch: int) -> dict:
    """Loss weights (and learning rate, when a stage sets one) in effect at ``epoch`` (0-based).

    The base weights of ``loss_config`` are updated by every entry of
    ``loss_config["stages"]`` whose ``epoch`` is ``<= epoch``, in epoch order (e.g.
    MACE's switch to a large energy weight for the last epochs).
    """
    weights = {k: float(loss_config[k]) for k in ("energy_weight", "forces_weight", "stress_weight")}
    for stage in sorted(loss_config.get("stages", []), key=lambda s: s["epoch"]):
        if stage["epoch"] <= epoch:
            weights.update({k: float(v) for k, v in stage.items() if k != "epoch"})
    return weights


class WeightedLoss:
    """Energy (per atom), force and stress loss with configurable weights.

    Parameters
    ----------
    kind : {"mse", "huber"}
    huber_delta : float
        Transition point of the Huber function (in the unit of each term).

    Shapes: prediction ``energy`` [B] (float64), ``forces`` [N, 3], ``stress``
    [B, 3, 3]; targets ``batch.energy`` [B], ``batch.forces`` [N, 3],
    ``batch.stress`` [B, 3, 3]; ``batch.batch`` [N].
    """

    def __init__(self, kind: str = "mse", huber_delta: float = 0.01):
        if kind not in ("mse", "huber"):
            raise ValueError(f"loss type must be 'mse' or 'huber', got {kind!r}")
        self.kind = kind
        self.huber_delta = float(huber_delta)

    def _elementwise(self, error: Tensor) -> Tensor:
        if self.kind == "mse":
            return error.square()
        return F.huber_loss(error, torch.zeros_like(error), reduction="none", delta=self.huber_delta)

    def __call__(self, output, batch, energy_weight: float, forces_weight: float, stress_weight: float = 0.0) -> LossTerms:
        num_atoms = torch.bincount(batch.batch, minlength=batch.num_graphs)  # [B]
        # Energies are compared in float64: totals of ~1e5 eV lose meV in float32.
        energy_error = (output.energy - batch.energy.reshape(-1).double()) / num_atoms.double()  # [B]
        dtype = output.forces.dtype if output.forces is not None else torch.get_default_dtype()
        zero = torch.zeros((), dtype=dtype, device=energy_error.device)
        energy_term = self._elementwise(energy_error.to(dtype)).mean() if energy_weight > 0 else zero
        forces_term = zero
        if forces_weight > 0:
            if output.forces is None:
                raise ValueError("forces_weight > 0 but the forces were not computed")
            forces_term = self._elementwise(output.forces - batch.forces.to(dtype)).mean()
        stress_term = zero
        if stress_weight > 0 and output.stress is not None and getattr(batch, "stress", None) is not None:
            stress_term = self._stress_term(output.stress, batch, dtype)
        total = energy_weight * energy_term + forces_weight * forces_term + stress_weight * stress_term
        return LossTerms(total, energy_term.detach(), forces_term.detach(), stress_term.detach())

    def _stress_term(self, stress: Tensor, batch, dtype) -> Tensor:
        pbc = getattr(batch, "pbc", None)
        periodic = pbc.reshape(-1, 3).any(dim=1) if pbc is not None else torch.ones(stress.shape[0], dtype=torch.bool)
        target = batch.stress.reshape(-1, 3, 3).to(dtype)  # [B, 3, 3]
        if not periodic.any():
            return torch.zeros((), dtype=dtype, device=stress.device)
        return self._elementwise(stress[periodic].to(dtype) - target[periodic]).mean()


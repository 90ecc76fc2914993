"""``PotentialOutput``: what a potential returns, one field per predicted quantity."""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

from torch import Tensor

__all__ = ["PotentialOutput", "detached"]


class PotentialOutput(NamedTuple):
    """What ``Potential.forward`` returns.

    Attributes
    ----------
    energy : Tensor, [B] float64
        Total energy per system (eV).
    forces : Tensor, [N, 3], optional
        :math:`-\\partial E / \\partial \\mathbf{r}` (eV/Å); None when not requested.
    atomic_energies : Tensor, [N] float64
        Per-atom energies after scale, shift and reference energies (eV); they sum to ``energy``.
    stress : Tensor, [B, 3, 3], optional
        Stress (eV/Å³) of periodic systems: the strain derivative divided by the
        cell's volume (slabs and wires: of the cell as given, vacuum included; NaN
        when its open rows are zero); zero for open systems in a mixed batch.
    charges : Tensor, [N], optional
        Partial charges (e) for models that predict them.
    energy_terms : dict of str to Tensor [B] float64
        The energy of each postprocessing energy term (e.g. ``reference_energies``);
        with the network's part they sum to ``energy``.
    dipole : Tensor, [B, 3] float64, optional
        Dipole moment (e·Å) from the final charges about each system's centre of
        mass (``equinnp.postprocessing.charges.dipole_moment``), for models that
        predict charges; NaN rows for periodic systems, where it is not defined.
    hessian : Tensor, optional
        Second derivatives of the energy, when requested.
    member_energies : Tensor, [B, M] float64, optional
        Total energy (eV) of each member of an ensemble model (ANI-2x); ``energy`` is their mean.
    energy_std : Tensor, [B] float64, optional
        Spread of the ensemble: the sample standard deviation (M - 1 in the denominator)
        of ``member_energies`` per system (eV). None for models that are not ensembles.
    """

    energy: Tensor
    forces: Optional[Tensor]
    atomic_energies: Tensor
    stress: Optional[Tensor] = None
    charges: Optional[Tensor] = None
    energy_terms: Dict[str, Tensor] = {}
    dipole: Optional[Tensor] = None
    hessian: Optional[Tensor] = None
    member_energies: Optional[Tensor] = None
    energy_std: Optional[Tensor] = None


def detached(out: PotentialOutput) -> PotentialOutput:
    """``out`` with every tensor detached from the autograd graph."""

    def detach(value):
        if isinstance(value, dict):
            return {k: v.detach() for k, v in value.items()}
        return None if value is None else value.detach()

    return PotentialOutput(*(detach(v) for v in out))

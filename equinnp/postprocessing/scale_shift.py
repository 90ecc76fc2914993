"""Per-element scale and shift of the network's atomic energy."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from equinnp.postprocessing.base import AtomicTransform
from equinnp.postprocessing.float64 import keep_float64

__all__ = ["ElementScaleShift"]

Number = Union[float, Sequence[float]]


class ElementScaleShift(AtomicTransform):
    r"""Affine map of the network output per element.

    .. math:: E_i = \sigma_{Z_i}\, \epsilon_i + \mu_{Z_i}

    ``scale`` and ``shift`` are one number for every element or one per
    element (in the order of the model's ``elements``). They are buffers:
    fitted from data before training (``Potential.fit``), not learned. They
    stay float64 whatever the network's dtype (``.to(torch.float32)`` moves
    them between devices but keeps their dtype), and the map is evaluated in
    float64.

    Shapes: ``energy`` [N] (any float dtype), ``species`` [N] → [N] float64.
    """

    name = "scale_shift"
    fit_options = ("scale", "shift")

    def __init__(self, num_elements: int, scale: Optional[Number] = 1.0, shift: Optional[Number] = 0.0):
        super().__init__()
        self.num_elements = num_elements
        self.register_buffer("scale", self._per_element(1.0 if scale is None else scale, "scale"))
        self.register_buffer("shift", self._per_element(0.0 if shift is None else shift, "shift"))

    def _per_element(self, value: Number, name: str) -> Tensor:
        tensor = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
        if tensor.numel() == 1:
            tensor = tensor.expand(self.num_elements).clone()
        if tensor.numel() != self.num_elements:
            raise ValueError(f"{name} needs 1 or {self.num_elements} values (one per element), got {tensor.numel()}")
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{name} must be finite, got {tensor.tolist()}")
        return tensor

    def set(self, scale: Optional[Number] = None, shift: Optional[Number] = None) -> None:
        """Replace the scale and/or shift (e.g. after fitting them from a dataset)."""
        if scale is not None:
            self.scale.copy_(self._per_element(scale, "scale"))
        if shift is not None:
            self.shift.copy_(self._per_element(shift, "shift"))

    _apply = keep_float64

    @classmethod
    def from_config(cls, elements, **config) -> "ElementScaleShift":
        return cls(len(elements), **config)

    def fit(self, statistics, fitted: dict, scale=None, shift=None) -> dict:
        """``scale``: "rms_forces" (RMS of the force components, as MACE), "energy_std"
        (std of the per-atom energy residuals after the reference energies), a number,
        or None to keep; ``shift``: a number or per-element list, or None to keep."""
        out = {}
        if scale is not None:
            if scale == "rms_forces":
                value = statistics.rms_forces()
            elif scale == "energy_std":
                value = statistics.energy_residual_std(fitted.get("reference_energies", {}))
            elif isinstance(scale, str):
                raise ValueError(f"scale must be 'rms_forces', 'energy_std', a number or None, got {scale!r}")
            else:
                value = scale
            if not all(v > 0 for v in torch.as_tensor(value, dtype=torch.float64).reshape(-1).tolist()):
                raise ValueError(f"scale {value} is not positive (constant training labels?)")
            self.set(scale=value)
            out["scale"] = value
        if shift is not None:
            self.set(shift=shift)
            out["shift"] = shift
        return out

    def scale_energy(self, energy: Tensor, species: Tensor) -> Tensor:
        return energy.double() * self.scale[species] + self.shift[species]  # [N] float64

    def forward(self, atomic, graph):
        members = atomic.member_energies  # [N, M] or None: each ensemble member is mapped alike
        if members is not None:
            members = members.double() * self.scale[graph.species, None] + self.shift[graph.species, None]
        return atomic._replace(energy=self.scale_energy(atomic.energy, graph.species), member_energies=members)

    def extra_repr(self) -> str:
        return f"scale={self.scale.tolist()}, shift={self.shift.tolist()}"

"""Evaluation and tolerances of the contract (``equinnp.testing.contract``).

Energies are compared after subtracting their constant part
:math:`\\sum_i (E^{\\mathrm{ref}}_{Z_i} + \\mu_{Z_i})` (:func:`constant_energy`):
reference energies of -1000 eV per atom would otherwise turn a relative
tolerance into a loose absolute one on the part the network computes.

Tolerances follow the potential's dtype (:func:`tolerances`): ``FLOAT64`` and
``FLOAT32``. A comparison passes when ``max |actual - expected| <= rtol * scale
+ floor``, with ``scale`` the magnitude of the terms that were summed rather
than their possibly cancelling total:

- energies: :math:`\\sum_i (|\\epsilon_i| + |\\sigma_{Z_i}|)`, the learned atomic
  energies (energy minus constant part, atom by atom) plus the per-element
  scale of the network's output (its unit; 1 eV for potentials without one);
- forces: the largest ``|F|``, at least that energy scale per atom and Å
  (forces that vanish by symmetry are sums of cancelling terms of that size);
- stress: the largest ``|σ|``, at least the energy scale per cell volume.

``floor`` adds the rounding error of the float64 sum of the atomic energies
(``NOISE_ULPS`` units of roundoff of their absolute sum, constants included).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = [
    "RTOL",
    "NOISE_ULPS",
    "Tolerances",
    "FLOAT64",
    "FLOAT32",
    "tolerances",
    "atomic_constants",
    "constant_energy",
    "evaluate",
]


class Tolerances(NamedTuple):
    """Tolerances of the contract for one floating-point dtype.

    Every comparison also allows the rounding error of the energy sum,
    ``NOISE_ULPS`` units of roundoff of the summed absolute atomic energies
    (constant parts included, in float64) plus as many of the learned ones in
    the network's dtype; finite differences divide it by their step.

    Attributes
    ----------
    symmetry : float
        Relative tolerance of exact symmetries (rotation, translation,
        permutation, batching, additivity, wrapping, supercells).
    finite_difference : float
        Relative tolerance of forces and stress against finite differences.
    fd_order : int
        Order of the central finite-difference stencils: 2 (two points) or 4 (four points).
    fd_step : float
        Displacement (Å) of the force stencil.
    strain_order : int
        Order of the stress stencil.
    strain_step : float
        Strain of the stress stencil.
    continuity : float
        Relative size of the jump of energy or forces allowed at the cutoff.
    continuity_step : float
        Distance δ (Å) from the cutoff at which values are compared.
    floor : float
        Absolute floor (eV, eV/Å, eV/Å³) added to every tolerance.
    """

    symmetry: float
    finite_difference: float
    fd_order: int
    fd_step: float
    strain_order: int
    strain_step: float
    continuity: float
    continuity_step: float
    floor: float


#: float64: symmetries hold to rounding (1e-16 per operation; 1e-9 leaves room
#: for deep networks). Forces: the four-point stencil at h = 1e-3 Å has a
#: truncation error h⁴ E⁽⁵⁾/30 ~ 1e-10 and divides the ~1e-11 eV rounding of
#: totals of 1e5 eV (reference energies) by 1e-3 only. Stress: a strain moves
#: every pair at once, so some pair usually crosses the cutoff within the
#: stencil, where an envelope that is only C1 (cosine) adds an error of
#: O(h E''); the two-point stencil at a strain of 1e-5 keeps that below the
#: rounding floor, 1e-11 eV / 2e-5 (about 1e-5 relative). At the cutoff,
#: δ = 1e-6 Å leaves the jump estimate an error O(δ² F'') ~ 1e-12.
FLOAT64 = Tolerances(
    symmetry=1e-9,
    finite_difference=1e-6,
    fd_order=4,
    fd_step=1e-3,
    strain_order=2,
    strain_step=1e-5,
    continuity=1e-8,
    continuity_step=1e-6,
    floor=1e-12,
)

#: float32: a rounding error of 6e-8 per operation grows to a few 1e-6 relative
#: after a few layers, and positions carry an absolute error of ~1e-6 Å at
#: 10 Å from the origin. Energies are noisy at ~1e-6 eV, so two-point
#: differences at any step are dominated by noise or by truncation (1e-3
#: relative at best); the four-point stencil at h = 1e-2 Å has noise ~1e-4
#: eV/Å and truncation ~1e-7, and a relative 1e-2 still exposes forces that
#: miss a term (errors of order 1). At the cutoff, δ = 3e-4 Å is far above the
#: rounding of distances (5e-7 Å), and the jump estimate's own error, O(δ² F''),
#: stays near 1e-6 relative (a missing envelope gives 1e-3, a C0 one 1e-3 in the forces).
FLOAT32 = Tolerances(
    symmetry=1e-5,
    finite_difference=1e-2,
    fd_order=4,
    fd_step=1e-2,
    strain_order=4,
    strain_step=2.5e-3,
    continuity=1e-5,
    continuity_step=3e-4,
    floor=1e-7,
)

NOISE_ULPS = 10

RTOL = FLOAT64.symmetry


def _dtype(potential) -> torch.dtype:
    dtype = getattr(potential, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    parameter = next(iter(potential.parameters()), None)
    return torch.float64 if parameter is None else parameter.dtype


def tolerances(potential) -> Tolerances:
    """``FLOAT64`` or ``FLOAT32`` by the dtype of the potential's parameters (float64 if it has none)."""
    return FLOAT64 if _dtype(potential) == torch.float64 else FLOAT32


# ---------------------------------------------------------------- evaluation
def atomic_constants(potential, z: Tensor) -> Tensor:
    """Constant part of each atom's energy, :math:`E^{\\mathrm{ref}}_{Z_i} + \\mu_{Z_i}` [N] float64 (eV).

    Read from the potential's ``reference_energies.energies`` [K] and
    ``scale_shift.shift`` [K] indexed by ``species_of_z[z]``; a term the
    potential does not have counts as zero (so that any module returning a
    ``PotentialOutput`` can be checked).
    """
    constants = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    species_of_z = getattr(potential, "species_of_z", None)
    if species_of_z is None:
        return constants
    species = species_of_z.to(z.device)[z]
    for owner, name in (("reference_energies", "energies"), ("scale_shift", "shift")):
        values = getattr(getattr(potential, owner, None), name, None)
        if isinstance(values, Tensor):
            constants = constants + values.detach().to(device=z.device, dtype=torch.float64)[species]
    return constants


def _energy_units(potential, z: Tensor) -> Tensor:
    """Magnitude of each atom's learned energy terms [N] float64 (eV): ``|scale_shift.scale[Z_i]|``, else 1 eV.

    The network's output is multiplied by the scale, so its rounding error is a
    fraction of the scale even where the learned energy happens to be near zero.
    """
    species_of_z = getattr(potential, "species_of_z", None)
    scale = getattr(getattr(potential, "scale_shift", None), "scale", None)
    if species_of_z is None or not isinstance(scale, Tensor):
        return torch.ones(z.shape[0], dtype=torch.float64, device=z.device)
    return scale.detach().to(device=z.device, dtype=torch.float64).abs()[species_of_z.to(z.device)[z]]


def _batch_of(data) -> Tensor:
    batch = getattr(data, "batch", None)
    return torch.zeros_like(data.z) if batch is None else batch


def _num_graphs(data) -> int:
    return int(data.num_graphs) if getattr(data, "batch", None) is not None else 1


def constant_energy(potential, data) -> Tensor:
    """Constant part of each system's energy [B] float64 (eV): :func:`atomic_constants` summed per system."""
    constants = atomic_constants(potential, data.z)
    total = torch.zeros(_num_graphs(data), dtype=torch.float64, device=constants.device)
    return total.index_add_(0, _batch_of(data), constants)


def evaluate(potential, data, compute_stress=None, learned: bool = False):
    """Energy [B], forces [N, 3] and stress [B, 3, 3] (None for open systems) as detached float64 tensors.

    With ``learned`` the energy is the learned part: the total minus
    :func:`constant_energy`.
    """
    result = _evaluate(potential, data, compute_stress)
    energy = result.energy if learned else result.energy + constant_energy(potential, data)
    return energy, result.forces, result.stress


class _Result(NamedTuple):
    energy: Tensor  # [B] float64, learned part
    forces: Tensor  # [N, 3] float64
    stress: Optional[Tensor]  # [B, 3, 3] float64
    energy_scale: float  # max over systems of sum_i (|learned atomic energy| + |scale|) (eV)
    force_scale: float  # max |F|, at least energy_scale per atom per Å (eV/Å)
    stress_scale: float  # max |stress|, at least energy_scale / volume (eV/Å³)
    noise: float  # rounding error of the energy sum (eV)


def _evaluate(potential, data, compute_stress=None) -> _Result:
    out = potential(data, compute_forces=True, compute_stress=compute_stress)
    batch = _batch_of(data)
    energy = out.energy.detach().double() - constant_energy(potential, data)  # [B]
    forces = out.forces.detach().double()
    stress = None if out.stress is None else out.stress.detach().double()

    def per_system(values: Tensor) -> Tensor:  # [N] -> [B]
        return torch.zeros_like(energy).index_add_(0, batch, values)

    atomic = getattr(out, "atomic_energies", None)
    units = _energy_units(potential, data.z)
    if atomic is not None:
        atomic = atomic.detach().double()
        magnitude = per_system((atomic - atomic_constants(potential, data.z)).abs() + units)  # [B]
        total = per_system(atomic.abs())  # [B]
    else:
        magnitude = energy.abs() + per_system(units)
        total = (energy + constant_energy(potential, data)).abs()
    atoms = per_system(torch.ones_like(units)).clamp(min=1)  # [B]
    energy_scale = float(magnitude.max()) if magnitude.numel() else 0.0
    force_scale = float((magnitude / atoms).max()) if magnitude.numel() else 0.0
    if forces.numel():
        force_scale = max(force_scale, float(forces.abs().max()))
    stress_scale = 0.0
    if stress is not None:
        cell = data.cell.reshape(-1, 3, 3).double()
        volume = torch.linalg.det(cell).abs().clamp(min=1e-12)
        periodic = torch.as_tensor(getattr(data, "pbc", torch.ones(cell.shape[0], 3, dtype=torch.bool))).reshape(-1, 3).any(dim=1)
        per_volume = torch.where(periodic, magnitude / volume, torch.zeros_like(volume))
        stress_scale = max(float(stress.abs().max()), float(per_volume.max()))
    eps = torch.finfo(_dtype(potential)).eps
    noise = NOISE_ULPS * (torch.finfo(torch.float64).eps * float(total.max()) + eps * energy_scale) if total.numel() else 0.0
    return _Result(energy, forces, stress, energy_scale, force_scale, stress_scale, noise)


def _assert_close(actual, expected, what: str, rtol: float, floor: float, scale: Optional[float] = None):
    actual, expected = actual.double(), expected.double()
    if scale is None:
        scale = expected.abs().max().item() if expected.numel() else 0.0
    error = (actual - expected).abs().max().item() if expected.numel() else 0.0
    if not error <= rtol * scale + floor:
        raise AssertionError(f"{what}: max deviation {error:.3e} exceeds {rtol:g} x {scale:.3e} + {floor:.3g}")


def _energies_close(actual: Tensor, expected: Tensor, what: str, rtol: float, tol: Tolerances, scale: float, noise: float):
    """Energies within ``rtol * scale``, the floor and ``noise``, the rounding errors of the evaluations compared."""
    _assert_close(actual, expected, what, rtol, tol.floor + noise, scale)

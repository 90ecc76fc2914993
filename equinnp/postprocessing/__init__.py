"""Postprocessing of per-atom network outputs: scale/shift and additive energy terms."""

from equinnp.postprocessing.reference_energies import (
    AtomicReferenceEnergies,
    ReferenceEnergyFit,
    fit_reference_energies,
    reference_energy_fit,
)
from equinnp.postprocessing.scale_shift import ElementScaleShift

__all__ = ["AtomicReferenceEnergies", "ElementScaleShift", "ReferenceEnergyFit", "fit_reference_energies", "reference_energy_fit"]

"""Postprocessing of per-atom network outputs: scale/shift and additive energy terms."""

from equinnp.postprocessing.reference_energies import AtomicReferenceEnergies, fit_reference_energies
from equinnp.postprocessing.scale_shift import ElementScaleShift

__all__ = ["AtomicReferenceEnergies", "ElementScaleShift", "fit_reference_energies"]

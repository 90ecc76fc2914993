"""Postprocessing of per-atom network outputs: scale/shift, charge conservation and additive energy terms."""

from equinnp.postprocessing.charges import UniformChargeConservation, WeightedChargeConservation, dipole_moment
from equinnp.postprocessing.coulomb import Coulomb
from equinnp.postprocessing.dispersion import D3Dispersion
from equinnp.postprocessing.zbl import ZBLRepulsion
from equinnp.postprocessing.reference_energies import (
    AtomicReferenceEnergies,
    ReferenceEnergyFit,
    fit_reference_energies,
    reference_energy_fit,
)
from equinnp.postprocessing.scale_shift import ElementScaleShift

__all__ = ["Coulomb", "D3Dispersion", "UniformChargeConservation", "WeightedChargeConservation", "ZBLRepulsion", "dipole_moment", "AtomicReferenceEnergies", "ElementScaleShift", "ReferenceEnergyFit", "fit_reference_energies", "reference_energy_fit"]

"""Registries of postprocessing stages: name → class, as ``ARCHITECTURES`` is for core networks.

A saved potential names its stages; ``build_potential`` / ``load_potential``
rebuild them from here. A new transform or energy term is one class and one
entry below.
"""

from __future__ import annotations

from equinnp.postprocessing.charges import UniformChargeConservation, WeightedChargeConservation
from equinnp.postprocessing.coulomb import Coulomb
from equinnp.postprocessing.dispersion import D3Dispersion
from equinnp.postprocessing.reference_energies import AtomicReferenceEnergies
from equinnp.postprocessing.scale_shift import ElementScaleShift
from equinnp.postprocessing.zbl import ZBLRepulsion

__all__ = ["TRANSFORMS", "ENERGY_TERMS", "DEFAULT_TRANSFORMS", "DEFAULT_ENERGY_TERMS"]

TRANSFORMS = {cls.name: cls for cls in (ElementScaleShift, UniformChargeConservation, WeightedChargeConservation)}
ENERGY_TERMS = {cls.name: cls for cls in (AtomicReferenceEnergies, Coulomb, D3Dispersion, ZBLRepulsion)}

#: The pipeline of a potential whose config names none (and of every file saved by equinnp 0.1.0).
DEFAULT_TRANSFORMS = ({"name": "scale_shift"},)
DEFAULT_ENERGY_TERMS = ({"name": "reference_energies"},)

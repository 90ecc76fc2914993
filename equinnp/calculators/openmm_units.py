"""The unit conversions between OpenMM and equinnp, in one place.

OpenMM works in nm, kJ/mol and kJ/mol/nm (per mole of systems); equinnp in
Å, eV and eV/Å (per system). The factors are exact in the 2019 SI, where the
elementary charge and the Avogadro constant are defined numbers:

.. math::
    1\\,\\mathrm{eV} = e \\cdot 1\\,\\mathrm{V} \\cdot N_A
    = 1.602176634\\times10^{-19}\\,\\mathrm{J} \\times 6.02214076\\times10^{23}\\,\\mathrm{mol^{-1}}
    = 96.48533212\\ldots\\,\\mathrm{kJ/mol}

This is ``openmm.unit``'s own value (``(1 * unit.ev / unit.item).value_in_unit(
unit.kilojoule_per_mole)``). ASE 3.29 (CODATA 2014) puts 1 eV at 96.48533288
kJ/mol, 8e-9 relative away: energies that OpenMM reports equal the ASE
calculator's eV times ``KJ_PER_MOL_PER_EV``, not ASE's ``units.kJ / units.mol``.
"""

__all__ = ["ANGSTROM_PER_NM", "KJ_PER_MOL_PER_EV", "FORCE_TO_OPENMM"]

#: Å per nm (exact).
ANGSTROM_PER_NM = 10.0
_ELEMENTARY_CHARGE = 1.602176634e-19  # C, exact (2019 SI)
_AVOGADRO = 6.02214076e23  # 1/mol, exact (2019 SI)
#: kJ/mol per eV: 96.48533212331002.
KJ_PER_MOL_PER_EV = _ELEMENTARY_CHARGE * _AVOGADRO / 1000.0
#: (kJ/mol/nm) per (eV/Å): forces from equinnp's units to OpenMM's.
FORCE_TO_OPENMM = KJ_PER_MOL_PER_EV * ANGSTROM_PER_NM

"""Simulation-engine interfaces.

- ``EquinnpCalculator`` (``ase_calculator``): the ASE calculator;
- ``openmm_force.openmm_force``: an OpenMM ``PythonForce`` (needs the ``openmm`` extra);
- ``openmm_ml``: the ``"equinnp"`` entry of openmm-ml's ``MLPotential`` registry;
- ``openmm_units``: the nm/kJ/mol ↔ Å/eV factors.
"""

from equinnp.calculators.ase_calculator import EquinnpCalculator

__all__ = ["EquinnpCalculator"]

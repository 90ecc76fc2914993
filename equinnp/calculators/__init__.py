"""Simulation-engine interfaces."""

from equinnp.calculators.ase_calculator import EquinnpCalculator

__all__ = ["EquinnpCalculator"]

"""Hypothesis strategies and symmetry checks, for equinnp's tests and for users' own layers.

Needs ``hypothesis`` (``pip install equinnp[test]``).
"""

from equinnp.testing import contract, strategies
from equinnp.testing.contract import *  # noqa: F401,F403
from equinnp.testing.strategies import crystals, molecules, random_crystal, random_molecule, rotations

__all__ = ["contract", "strategies", "crystals", "molecules", "random_crystal", "random_molecule", "rotations"] + list(contract.__all__)

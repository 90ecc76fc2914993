"""Hypothesis strategies and the contract checks, for equinnp's tests and for users' own layers.

Needs ``hypothesis`` (``pip install equinnp[test]``).

>>> from equinnp.testing import check_rotation, molecules, rotations
"""

from equinnp.testing import contract, evaluation, strategies
from equinnp.testing.contract import *  # noqa: F401,F403
from equinnp.testing.strategies import *  # noqa: F401,F403

__all__ = ["contract", "evaluation", "strategies"] + list(strategies.__all__) + list(contract.__all__)

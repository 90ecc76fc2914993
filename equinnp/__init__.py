"""equinnp: neural network potentials on PyTorch Geometric and e3nn."""

from equinnp.version import __version__  # noqa: E402

from equinnp import calculators, data, neighbors  # noqa: E402
from equinnp.build import build_potential, load_potential  # noqa: E402
from equinnp.models import ARCHITECTURES  # noqa: E402
from equinnp.potential import Potential, PotentialOutput  # noqa: E402

__all__ = [
    "ARCHITECTURES",
    "Potential",
    "PotentialOutput",
    "build_potential",
    "load_potential",
    "calculators",
    "data",
    "neighbors",
    "__version__",
]

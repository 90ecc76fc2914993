"""equinnp: neural network potentials on PyTorch Geometric and e3nn.

The public names below are imported on first use, so that ``equinnp --help``
and ``equinnp --version`` answer without loading torch.
"""

import importlib

from equinnp.version import __version__

_NAMES = {
    "ARCHITECTURES": "equinnp.models",
    "Potential": "equinnp.potential",
    "PotentialOutput": "equinnp.potential_output",
    "build_potential": "equinnp.build",
    "load_potential": "equinnp.build",
    "load_pretrained": "equinnp.pretrained",
}
_SUBMODULES = ("calculators", "data", "neighbors")

__all__ = [
    "ARCHITECTURES",
    "Potential",
    "PotentialOutput",
    "build_potential",
    "load_potential",
    "load_pretrained",
    "calculators",
    "data",
    "neighbors",
    "__version__",
]


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"equinnp.{name}")
    else:
        raise AttributeError(f"module 'equinnp' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_SUBMODULES))

"""``torch.compile`` for inference: the core network compiled once with dynamic shapes.

Only ``potential.model`` (the core network) is compiled, in place
(``nn.Module.compile``: parameter names and saved files are unchanged); the
neighbor search and the derivatives stay eager, and autograd differentiates
through the compiled graph (AOTAutograd builds its backward). With
``dynamic=True`` the numbers of atoms and edges are symbolic, so that MD, whose
edge count changes from step to step, does not recompile every step. Needs
a C++ compiler on the CPU (inductor).
"""

from __future__ import annotations

__all__ = ["compile_potential"]


def compile_potential(potential, *, dynamic: bool = True, mode=None, backend: str = "inductor"):
    """Compile ``potential.model`` in place (``torch.compile`` with ``dynamic`` shapes); returns ``potential``."""
    potential.model.compile(dynamic=dynamic, mode=mode, backend=backend)
    return potential

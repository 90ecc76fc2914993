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

__all__ = ["compile_potential", "INDUCTOR_WRONG_FORCES"]

#: Architectures whose forces inductor gets wrong (torch 2.13, CPU): SAKE's energy equals eager's but its
#: forces deviate by 1e-2 to 3e-2 relative, in float64 too (``benchmarks/results/compiled_inference_dimenetpp_sake.md``;
#: the ``eager`` and ``aot_eager`` backends give eager's numbers). ``compile_potential`` refuses them with inductor.
#: Cause, an inductor scheduler bug (static shapes fail alike): the backward of SAKE's
#: ``displacement[j] - displacement[i]`` is a scatter (``index_put`` with accumulate) into a zero buffer;
#: when the C++ scheduler fuses the node that reads it with a differently shaped [N, 3] node (the velocity
#: gate), ``SchedulerNode.recompute_size_and_body`` re-reads the loop body and drops the node's
#: ``mutation_renames``, so the reader depends on the zeros instead of the scatter and runs first: one
#: layer's gradient through the position update is lost. It shows from 5 layers (SAKE's default is 6).
INDUCTOR_WRONG_FORCES = ("sake",)


def compile_potential(potential, *, dynamic: bool = True, mode=None, backend: str = "inductor"):
    """Compile ``potential.model`` in place (``torch.compile`` with ``dynamic`` shapes); returns ``potential``.

    Raises
    ------
    ValueError
        For an architecture in :data:`INDUCTOR_WRONG_FORCES` with the inductor backend.
    """
    architecture = getattr(potential, "architecture", None)
    if backend == "inductor" and architecture in INDUCTOR_WRONG_FORCES:
        raise ValueError(
            f"torch.compile with inductor gives wrong forces for {architecture} (up to 3e-2 relative off eager, "
            "float64 included): run it eager, or pass another backend (e.g. compile='aot_eager')"
        )
    potential.model.compile(dynamic=dynamic, mode=mode, backend=backend)
    return potential

"""equinnp in openmm-ml's registry: ``MLPotential("equinnp", model="model.pt")``.

equinnp declares this factory under openmm-ml's entry-point group
``openmmml.potentials`` (``pyproject.toml``), so that once equinnp is installed

.. code-block:: python

    from openmmml import MLPotential

    potential = MLPotential("equinnp", model="runs/demo/model.pt")     # or modelPath=, or a Potential
    system = potential.createSystem(topology, precision="double")      # the whole system
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms)  # ML/MM, mechanical embedding

build systems whose ML part is :func:`equinnp.calculators.openmm_force.openmm_force`.

Options of ``createSystem`` / ``createMixedSystem`` (keyword arguments, openmm-ml's names):
``charge`` (e) and ``multiplicity`` (2S+1) of the ML atoms; ``precision``
(``"single"``, ``"double"``, default: as saved); ``device`` (default: CUDA when
torch sees it, else the CPU, as openmm-ml's other potentials); ``skin`` (Å)
and ``threads`` (as ``EquinnpCalculator``).

``getMLLongRange`` tells openmm-ml's mechanical embedding whether the model's
interactions reach beyond its cutoff in periodic systems: True when it has a
``coulomb`` energy term summed over all pairs (``"direct"`` or ``"ewald"``),
False otherwise (the short-range network, ZBL, D3, damped shifted force).
"""

from __future__ import annotations

import copy
from typing import Iterable, Optional

from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

from equinnp.calculators.ase_calculator import _load
from equinnp.calculators.openmm_force import openmm_force

__all__ = ["EquinnpPotentialImplFactory", "EquinnpPotentialImpl", "PRECISIONS"]

PRECISIONS = {None: None, "single": "float32", "double": "float64"}
#: Options openmm-ml's embeddings pass on to ``addForces`` along with the potential's own.
EMBEDDING_OPTIONS = {"mlLongRange", "linkAtomDistances"}
OPTIONS = {"charge", "multiplicity", "precision", "device", "skin", "threads"}


class EquinnpPotentialImplFactory(MLPotentialImplFactory):
    """Makes an :class:`EquinnpPotentialImpl` from ``model=`` (or openmm-ml's usual ``modelPath=``)."""

    def createImpl(self, name: str, model=None, modelPath=None, **args) -> "EquinnpPotentialImpl":
        if args:
            raise TypeError(f"MLPotential({name!r}) takes model= (a path or a Potential) or modelPath=, "
                            f"not {sorted(args)}; system options go to createSystem / createMixedSystem")
        if (model is None) == (modelPath is None):
            raise ValueError(f"MLPotential({name!r}) needs the potential: model='model.pt' (or a Potential), "
                             f"or modelPath='model.pt'" + ("; not both" if model is not None else ""))
        return EquinnpPotentialImpl(name, model if model is not None else modelPath)


class EquinnpPotentialImpl(MLPotentialImpl):
    """Adds equinnp ``PythonForce``s to the systems openmm-ml creates. The potential is loaded once."""

    def __init__(self, name: str, model):
        self.name = name
        self.potential = _load(model)

    def addForces(self, topology, system, atoms: Optional[Iterable[int]], forceGroup: int, *, charge=None,
                  multiplicity=None, precision: Optional[str] = None, skin: float = 1.0, threads: Optional[int] = None,
                  **args) -> None:
        unknown = sorted(set(args) - EMBEDDING_OPTIONS - {"device"})
        if unknown:
            raise TypeError(f"unknown option(s) {unknown} for the {self.name!r} potential; it takes {sorted(OPTIONS)}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be 'single', 'double' or None (as saved), got {precision!r}")
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        device = str(self._getTorchDevice(args))
        # each force gets its own copy: casting to a dtype or device changes a module in place
        force = openmm_force(copy.deepcopy(self.potential), topology, None if atoms is None else list(atoms),
                             charge=charge, multiplicity=multiplicity, periodic=periodic, device=device,
                             dtype=PRECISIONS[precision], skin=skin, threads=threads, force_group=forceGroup)
        system.addForce(force)

    def getMLLongRange(self) -> bool:
        return any(getattr(term, "method", None) in ("direct", "ewald") for term in self.potential.energy_terms
                   if term.name == "coulomb")

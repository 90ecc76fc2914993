"""An OpenMM ``PythonForce`` computed by an equinnp potential.

``openmm_force(model, topology)`` returns an ``openmm.PythonForce`` (OpenMM >= 8.6)
whose energy and forces come from the potential: add it to a ``System`` and
simulate with any OpenMM integrator, barostat or platform. At every force call
OpenMM hands over a ``State`` with the positions (nm) of the force's particles
and, for periodic systems, the box vectors (nm); the force returns

.. math::
    E = K\\, E_\\mathrm{eq}(10\\,\\mathbf{x}), \\qquad
    \\mathbf{F}_i = 10\\,K\\, \\mathbf{F}_{\\mathrm{eq},i}(10\\,\\mathbf{x})

in kJ/mol and kJ/mol/nm, with :math:`K` = ``KJ_PER_MOL_PER_EV`` and 10 Å per nm
(``equinnp.calculators.openmm_units``). The evaluation is the ASE calculator's
(``EquinnpCalculator``): the same Verlet skin on the neighbor list (reused while
the box is unchanged and no atom moved by more than ``skin / 2``), the same
thread choice by system size, dtype and device, total charge and spin
multiplicity; so the numbers are those of the ASE path on the same atoms.

A subset of the topology's atoms (``atoms=``, for ML/MM) is passed to
``PythonForce.setParticles``: the potential then sees those atoms only, in the
order given, and the rest of the system feels no force from it.
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import Optional, Sequence

import numpy as np

from equinnp.calculators.ase_calculator import CHARGE_KEY, SPIN_KEY, EquinnpCalculator
from equinnp.calculators.openmm_units import ANGSTROM_PER_NM, FORCE_TO_OPENMM, KJ_PER_MOL_PER_EV

__all__ = ["openmm_force", "PotentialComputation", "topology_numbers"]


def topology_numbers(topology, atoms: Optional[Sequence[int]] = None) -> np.ndarray:
    """Atomic numbers [M] of ``atoms`` (indices into the topology; all atoms when None), in that order.

    Raises ``ValueError`` for indices out of range or repeated, and for atoms without an element
    (virtual sites such as TIP4P's M, or extra particles), naming the atom.
    """
    every = list(topology.atoms())
    if atoms is None:
        chosen = every
    else:
        try:
            indices = [operator.index(i) for i in atoms]
        except TypeError:
            raise ValueError(f"atoms must be integer indices into the topology, got {list(atoms)[:5]}") from None
        if len(indices) == 0:
            raise ValueError("atoms is empty: give the indices of the atoms the potential applies to (or None for all)")
        bad = [i for i in indices if not 0 <= i < len(every)]
        if bad:
            raise ValueError(f"atom indices {bad[:5]} are outside the topology's {len(every)} atoms (0..{len(every) - 1})")
        if len(set(indices)) != len(indices):
            repeated = sorted(i for i, count in Counter(indices).items() if count > 1)
            raise ValueError(f"atom indices {repeated[:5]} are given more than once")
        chosen = [every[i] for i in indices]
    missing = [atom for atom in chosen if atom.element is None]
    if missing:
        atom = missing[0]
        raise ValueError(f"topology atom {atom.index} ({atom.name} in residue {atom.residue.name} {atom.residue.id}) has no "
                         f"element (a virtual site or extra particle?): leave it out of the atoms the potential applies to")
    return np.array([atom.element.atomic_number for atom in chosen], dtype=np.int64)


def _check_elements(numbers: np.ndarray, indices: Sequence[int], potential) -> None:
    from ase.data import chemical_symbols

    known = set(potential.elements)
    unknown = [(i, int(z)) for i, z in zip(indices, numbers) if int(z) not in known]
    if unknown:
        kinds = sorted({z for _, z in unknown})
        names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in kinds)
        where = ", ".join(str(i) for i, _ in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ValueError(f"topology atoms {where} are {names}, which this {potential.architecture} model was not "
                         f"trained on (it knows {' '.join(chemical_symbols[z] for z in potential.elements)})")


def _box_description(box_nm: np.ndarray) -> str:
    return f"periodic box {np.round(box_nm, 6).tolist()} nm"


def _check_box(topology, potential) -> None:
    """Refuse, at construction, a topology box the neighbor search would refuse (far narrower than the cutoff)."""
    import torch
    from openmm import unit

    from equinnp.neighbors import radius_graph

    box = topology.getPeriodicBoxVectors()
    if box is None:
        return
    box_nm = np.array(box.value_in_unit(unit.nanometer), dtype=np.float64)  # [3, 3]
    try:  # one atom: the search's own check of the cell and its images, at no cost
        radius_graph(torch.zeros(1, 3, dtype=torch.float64), potential.search_cutoff,
                     cell=torch.as_tensor(box_nm * ANGSTROM_PER_NM).reshape(1, 3, 3), pbc=torch.ones(1, 3, dtype=torch.bool))
    except ValueError as error:
        raise ValueError(f"the topology's {_box_description(box_nm)}: {error}") from None


class PotentialComputation:
    """The function a ``PythonForce`` calls: ``State`` (nm) → (energy in kJ/mol, forces [M, 3] in kJ/mol/nm).

    Holds an ``EquinnpCalculator`` and the ``ase.Atoms`` it evaluates (atomic
    numbers, periodicity, ``info["charge"]`` and ``info["spin"]``); each call
    sets the atoms' positions (and cell) from the state in Å and returns the
    calculator's energy and forces in OpenMM's units. Pickled (by OpenMM's
    ``XmlSerializer``, ``copy.deepcopy`` of the force or system) as the
    potential and the options; the neighbor list is searched anew after.
    """

    def __init__(self, calculator: EquinnpCalculator, numbers, periodic: bool, charge=None, spin=None):
        import ase

        self.calculator = calculator
        self.periodic = bool(periodic)
        self.atoms = ase.Atoms(numbers=np.asarray(numbers), pbc=self.periodic)
        if charge is not None:
            self.atoms.info[CHARGE_KEY] = float(charge)
        if spin is not None:
            self.atoms.info[SPIN_KEY] = float(spin)
        self.atoms.calc = calculator

    def __call__(self, state):
        from openmm import unit

        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)  # [M, 3] nm
        self.atoms.set_positions(positions * ANGSTROM_PER_NM)
        if self.periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)  # [3, 3] nm, rows a b c
            self.atoms.set_cell(box * ANGSTROM_PER_NM)
        try:
            energy = self.atoms.get_potential_energy()  # eV
            forces = self.atoms.get_forces()  # [M, 3] eV/Å
        except ValueError as error:
            where = f"equinnp force on {len(self.atoms)} atoms"
            if self.periodic:
                where += f" in the {_box_description(box)}"
            raise ValueError(f"{where}: {error}") from error
        return energy * KJ_PER_MOL_PER_EV, forces * FORCE_TO_OPENMM

    def __getstate__(self):
        calc = self.calculator
        return {"potential": calc.potential, "device": calc.device, "skin": calc.skin, "threads": calc.threads,
                "numbers": self.atoms.numbers.copy(), "periodic": self.periodic,
                "charge": self.atoms.info.get(CHARGE_KEY), "spin": self.atoms.info.get(SPIN_KEY)}

    def __setstate__(self, state):
        calculator = EquinnpCalculator(state["potential"], device=state["device"], skin=state["skin"], threads=state["threads"])
        self.__init__(calculator, state["numbers"], state["periodic"], state["charge"], state["spin"])


def openmm_force(model, topology, atoms: Optional[Sequence[int]] = None, *, charge: Optional[float] = None,
                 multiplicity: Optional[float] = None, periodic: Optional[bool] = None, device: str = "cpu", dtype=None,
                 skin: float = 1.0, threads: Optional[int] = None, force_group: int = 0):
    """An ``openmm.PythonForce`` giving the equinnp potential's energy and forces on ``topology``'s atoms.

    Parameters
    ----------
    model : Potential or path
        A potential, a saved ``model.pt`` or a training checkpoint (as ``EquinnpCalculator``).
    topology : openmm.app.Topology
        The elements come from its atoms; its periodic box (if any) makes the force periodic.
    atoms : sequence of int, optional
        Indices of the atoms the potential applies to (the ML region of an ML/MM
        system), in the order the potential sees them; default all.
    charge : float, optional
        Total charge (e) of those atoms; required when the model needs it (``model.requires_charge``).
    multiplicity : float, optional
        Spin multiplicity 2S+1; required when the model needs it (``model.requires_spin``).
    periodic : bool, optional
        Whether the force uses periodic boundary conditions (default: whether the
        topology has box vectors). The box is then read from every ``State``, so
        barostats and ``Context.setPeriodicBoxVectors`` are honoured.
    device, dtype, skin, threads
        As ``EquinnpCalculator``: where and in which dtype the network runs, the
        Verlet skin (Å) and the torch CPU threads per call.
    force_group : int
        OpenMM force group of the returned force (0-31).

    Returns
    -------
    openmm.PythonForce
    """
    import openmm

    if not isinstance(force_group, int) or not 0 <= force_group <= 31:
        raise ValueError(f"force_group must be an integer 0..31, got {force_group!r}")
    atoms = None if atoms is None else list(atoms)  # read once: a generator would be spent by the first pass
    calculator = EquinnpCalculator(model, device=device, dtype=dtype, skin=skin, threads=threads)
    potential = calculator.potential
    numbers = topology_numbers(topology, atoms)
    _check_elements(numbers, range(topology.getNumAtoms()) if atoms is None else atoms, potential)
    for value, name, option in ((charge, "charge", "charge"), (multiplicity, "spin", "multiplicity")):
        if value is None and getattr(potential.model, f"requires_{name}"):
            raise ValueError(f"this {potential.architecture} model needs the total {name} of the atoms it applies to: "
                             f"pass {option}=...")
    if periodic is None:
        periodic = topology.getPeriodicBoxVectors() is not None
    if periodic:
        _check_box(topology, potential)
    computation = PotentialComputation(calculator, numbers, periodic, charge, multiplicity)
    force = openmm.PythonForce(computation)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    force.setForceGroup(force_group)
    if atoms is not None:
        force.setParticles([operator.index(i) for i in atoms])
    return force

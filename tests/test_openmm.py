"""OpenMM: the equinnp ``PythonForce`` and openmm-ml's ``MLPotential("equinnp", ...)`` against the ASE calculator.

Energies and forces come from OpenMM ``State``s (Reference platform: double
precision throughout) and are compared with ``EquinnpCalculator`` on the same
atoms in Å; the expected kJ/mol are the calculator's eV converted by
``openmm.unit`` (not by equinnp's constant), and positions enter OpenMM as
``openmm.unit`` quantities in Å. Ethanol in vacuum, a periodic box of 27
waters (box changes included) and a water in TIP3P water (ML/MM, mechanical
embedding).
"""

import copy

import ase
import ase.io
import numpy as np
import pytest
import torch

import openmm  # the "openmm" extra, part of the "test" extra: a missing install fails here, not skipped
from openmm import app, unit
from openmmml import MLPotential

import equinnp
from equinnp.calculators import EquinnpCalculator
from equinnp.calculators import openmm_force as openmm_force_module
from equinnp.calculators.openmm_force import PotentialComputation, openmm_force
from equinnp.calculators.openmm_topology import openmm_topology
from equinnp.data.bundled import ethanol_atoms

KJ_PER_MOL = unit.kilojoule_per_mole
EV = (1 * unit.ev / unit.item).value_in_unit(KJ_PER_MOL)  # kJ/mol per eV, by OpenMM's unit system
EV_PER_ANGSTROM = (1 * unit.ev / unit.item / unit.angstrom).value_in_unit(KJ_PER_MOL / unit.nanometer)
RTOL = 1e-10
WATER_SIDE = 9.3  # Å: 27 waters at 3.1 Å spacing (liquid density); the 4 Å cutoff is under half of it


class RecordedComputation(PotentialComputation):
    """A ``PotentialComputation`` that keeps a reference to itself, to read its calculator's neighbor searches."""

    made = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RecordedComputation.made.append(self)


def tiny(elements=(1, 6, 8)):
    """A random float64 SchNet with set constants (scale, shift, atomic reference energies), cutoff 4 Å."""
    torch.manual_seed(0)
    references = {1: -13.6, 6: -1030.0, 8: -2040.0}
    return equinnp.build_potential("schnet", cutoff=4.0, elements=list(elements), dtype="float64", scale=0.3, shift=0.05,
                                   reference_energies={z: references[z] for z in elements},
                                   **equinnp.ARCHITECTURES["schnet"].tiny).eval()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    assert "equinnp" in MLPotential._implFactories, (
        "openmm-ml found no 'equinnp' entry point: install equinnp (pip install -e .) so that its "
        "openmmml.potentials entry point is registered")
    path = tmp_path_factory.mktemp("openmm") / "model.pt"
    tiny().save(path)
    return str(path)


def molecule_topology(numbers, box=None):
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for k, z in enumerate(numbers):
        element = app.Element.getByAtomicNumber(int(z))
        topology.addAtom(f"{element.symbol}{k}", element, residue)
    if box is not None:
        topology.setPeriodicBoxVectors(np.asarray(box) * unit.angstrom)
    return topology


def water_box(seed=0):
    """27 randomly oriented, jittered waters on a 3.1 Å grid in a 9.3 Å cube, as ``ase.Atoms`` (O H H per molecule)."""
    rng = np.random.default_rng(seed)
    local = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.2400, 0.9266, 0.0]])  # Å, 104.52°
    positions = []
    for corner in np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        positions.extend(local @ rotation.T + 3.1 * corner + 0.8 + rng.uniform(-0.2, 0.2, 3))
    return ase.Atoms("OH2" * 27, positions=positions, cell=[WATER_SIDE] * 3, pbc=True)


def water_topology(atoms):
    """Residues HOH with atoms O, H1, H2 and their bonds (the names amber14/tip3p.xml matches), and the box."""
    topology = app.Topology()
    chain = topology.addChain()
    for first in range(0, len(atoms), 3):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", app.element.oxygen, residue)
        for name in ("H1", "H2"):
            topology.addBond(o, topology.addAtom(name, app.element.hydrogen, residue))
    topology.setPeriodicBoxVectors(atoms.cell.array * unit.angstrom)
    return topology


def system_with(force, topology):
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    if topology.getPeriodicBoxVectors() is not None:
        system.setDefaultPeriodicBoxVectors(*topology.getPeriodicBoxVectors())
    system.addForce(force)
    return system


def context(system, atoms, integrator=None):
    integrator = integrator or openmm.VerletIntegrator(0.5 * unit.femtosecond)
    ctx = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    if atoms.pbc.any():
        ctx.setPeriodicBoxVectors(*(atoms.cell.array * unit.angstrom))
    ctx.setPositions(atoms.get_positions() * unit.angstrom)
    return ctx


def openmm_results(ctx, groups=-1):
    state = ctx.getState(getEnergy=True, getForces=True, groups=groups)
    return (state.getPotentialEnergy().value_in_unit(KJ_PER_MOL),
            state.getForces(asNumpy=True).value_in_unit(KJ_PER_MOL / unit.nanometer))


def ase_results(atoms, potential):
    atoms = atoms.copy()
    atoms.calc = EquinnpCalculator(potential, skin=0.0)
    return atoms.get_potential_energy() * EV, atoms.get_forces() * EV_PER_ANGSTROM


def assert_equal_to_ase(ctx, atoms, potential, groups=-1):
    energy, forces = openmm_results(ctx, groups)
    expected_energy, expected_forces = ase_results(atoms, potential)
    assert abs(expected_energy) > 1e3 and np.abs(expected_forces).max() > 1.0  # not a trivially zero comparison
    assert energy == pytest.approx(expected_energy, rel=RTOL, abs=0)
    np.testing.assert_allclose(forces, expected_forces, rtol=RTOL, atol=RTOL * np.abs(expected_forces).max())


# ------------------------------------------------------------------ ethanol in vacuum
def test_ethanol_python_force_and_ml_potential_equal_the_ase_calculator(model_path):
    atoms = ethanol_atoms()
    potential = tiny()
    topology = molecule_topology(atoms.numbers)
    assert_equal_to_ase(context(system_with(openmm_force(model_path, topology), topology), atoms), atoms, potential)
    system = MLPotential("equinnp", model=model_path).createSystem(topology)  # openmm-ml's registry, from the entry point
    assert any(isinstance(f, openmm.PythonForce) for f in system.getForces())
    assert_equal_to_ase(context(system, atoms), atoms, potential)
    system = MLPotential("equinnp", modelPath=model_path).createSystem(topology, precision="double", skin=0.5, threads=1)
    assert_equal_to_ase(context(system, atoms), atoms, potential)
    system = MLPotential("equinnp", model=tiny()).createSystem(topology, device="cpu")  # a Potential object
    assert_equal_to_ase(context(system, atoms), atoms, potential)
    ml = MLPotential("equinnp", model=model_path)
    single = openmm_results(context(ml.createSystem(topology, precision="single"), atoms))[1]
    double = openmm_results(context(system, atoms))[1]
    deviation = np.abs(single - double).max() / np.abs(double).max()
    assert 1e-10 < deviation < 1e-5  # the network ran in float32
    assert_equal_to_ase(context(ml.createSystem(topology), atoms), atoms, potential)  # the single one left it float64


def test_topology_from_ase_atoms_keeps_every_atom_in_order(model_path, tmp_path):
    atoms = ethanol_atoms()
    topology, positions = openmm_topology(atoms)
    assert [a.element.atomic_number for a in topology.atoms()] == atoms.numbers.tolist()
    np.testing.assert_allclose(positions.value_in_unit(unit.angstrom), atoms.positions, rtol=0, atol=1e-12)
    assert topology.getPeriodicBoxVectors() is None
    system = MLPotential("equinnp", model=model_path).createSystem(topology)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.5 * unit.femtosecond), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(positions)
    assert_equal_to_ase(ctx, atoms, tiny())
    ase.io.write(tmp_path / "ethanol.pdb", atoms)  # the PDB round trip openmm_topology replaces loses atoms
    with pytest.warns(UserWarning, match="duplicate atom"):
        assert app.PDBFile(str(tmp_path / "ethanol.pdb")).topology.getNumAtoms() < len(atoms)

    water = water_box()
    topology, positions = openmm_topology(water)
    box = np.array(topology.getPeriodicBoxVectors().value_in_unit(unit.angstrom))
    np.testing.assert_allclose(box, water.cell.array, rtol=0, atol=1e-12)
    tilted = water.copy()
    tilted.set_cell([[WATER_SIDE, 0.5, 0], [0, WATER_SIDE, 0], [0, 0, WATER_SIDE]])
    with pytest.raises(ValueError, match="reduced form"):
        openmm_topology(tilted)
    slab = water.copy()
    slab.pbc = [True, True, False]
    with pytest.raises(ValueError, match="all three directions"):
        openmm_topology(slab)


def test_ethanol_dynamics_runs_and_nve_conserves_energy(model_path, monkeypatch):
    atoms = ethanol_atoms()
    topology = molecule_topology(atoms.numbers)
    monkeypatch.setattr(openmm_force_module, "PotentialComputation", RecordedComputation)
    RecordedComputation.made.clear()
    system = MLPotential("equinnp", model=model_path).createSystem(topology, removeCMMotion=False)
    (computation,) = RecordedComputation.made
    langevin = context(system, atoms, openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond))
    langevin.getIntegrator().setRandomNumberSeed(1)
    langevin.setVelocitiesToTemperature(300 * unit.kelvin, 1)
    langevin.getIntegrator().step(10)
    assert np.abs(langevin.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
                  - atoms.positions).max() > 1e-3  # it moved

    nve = context(system, atoms)
    nve.setVelocitiesToTemperature(300 * unit.kelvin, 2)
    totals = []
    for _ in range(20):
        nve.getIntegrator().step(10)
        state = nve.getState(getEnergy=True)
        totals.append((state.getPotentialEnergy() + state.getKineticEnergy()).value_in_unit(KJ_PER_MOL))
    kinetic = state.getKineticEnergy().value_in_unit(KJ_PER_MOL)
    assert kinetic > 1.0
    # 100 fs at 0.5 fs: |ΔE_tot| under 2e-5 eV/atom (measured 7.5e-6; with forces 1 % off the gradient: 2.4e-4)
    assert np.abs(np.array(totals) - totals[0]).max() < 2e-5 * EV * len(atoms)
    searches = computation.calculator.neighbor_searches  # 10 Langevin + 200 Verlet steps, each with its force call
    assert 1 <= searches < 20  # the Verlet skin reused the neighbor list most steps
    moved = atoms.copy()  # after 200 steps with the skin: still the ASE calculator's numbers
    moved.positions = nve.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    assert_equal_to_ase(nve, moved, tiny())


# ------------------------------------------------------------------ a periodic water box
def test_water_box_equals_ase_and_follows_box_changes(model_path):
    atoms = water_box()
    potential = tiny()
    topology = water_topology(atoms)
    system = MLPotential("equinnp", model=model_path).createSystem(topology)
    assert system.usesPeriodicBoundaryConditions()
    ctx = context(system, atoms)
    assert_equal_to_ase(ctx, atoms, potential)
    wrapped = atoms.copy()  # an atom moved by a box vector: the same energy
    wrapped.positions[4] += wrapped.cell[0]
    ctx.setPositions(wrapped.positions * unit.angstrom)
    assert_equal_to_ase(ctx, atoms, potential)

    scaled = atoms.copy()  # a box changed by hand, the atoms scaled with it
    scaled.set_cell(atoms.cell.array * 1.03, scale_atoms=True)
    ctx.setPeriodicBoxVectors(*(scaled.cell.array * unit.angstrom))
    ctx.setPositions(scaled.positions * unit.angstrom)
    assert_equal_to_ase(ctx, scaled, potential)

    triclinic = atoms.copy()  # a triclinic box (OpenMM's reduced form), the atoms where they were
    triclinic.set_cell([[WATER_SIDE, 0, 0], [1.0, WATER_SIDE, 0], [-0.8, 1.2, WATER_SIDE]])
    ctx.setPeriodicBoxVectors(*(triclinic.cell.array * unit.angstrom))
    ctx.setPositions(triclinic.positions * unit.angstrom)
    assert_equal_to_ase(ctx, triclinic, potential)
    assert openmm_results(ctx)[0] != pytest.approx(ase_results(atoms, potential)[0], rel=1e-6)  # the tilt counts

    system.addForce(openmm.MonteCarloBarostat(1000 * unit.bar, 300 * unit.kelvin, 1))  # a volume move every step
    npt = context(system, atoms, openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.5 * unit.femtosecond))
    npt.getIntegrator().setRandomNumberSeed(3)
    npt.setVelocitiesToTemperature(300 * unit.kelvin, 3)
    npt.getIntegrator().step(8)
    state = npt.getState(getPositions=True)
    box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
    assert abs(box[0, 0] - WATER_SIDE) > 1e-4  # the barostat changed the box
    now = ase.Atoms(atoms.numbers, positions=state.getPositions(asNumpy=True).value_in_unit(unit.angstrom), cell=box, pbc=True)
    assert_equal_to_ase(npt, now, potential)


def test_cpu_platform_gives_the_reference_platform_numbers(model_path):
    atoms = water_box(seed=1)
    topology = water_topology(atoms)
    system = MLPotential("equinnp", model=model_path).createSystem(topology)
    results = []
    for platform in ("Reference", "CPU"):
        ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
        ctx.setPositions(atoms.positions * unit.angstrom)
        results.append(openmm_results(ctx))
    assert results[1][0] == results[0][0]
    np.testing.assert_array_equal(results[1][1], results[0][1])  # double precision: the force's own numbers


def test_copied_system_pickles_the_force_and_gives_the_same_numbers(model_path):
    atoms = water_box(seed=1)
    topology = water_topology(atoms)
    system = copy.deepcopy(MLPotential("equinnp", model=model_path).createSystem(topology))  # XmlSerializer: pickle
    assert_equal_to_ase(context(system, atoms), atoms, tiny())


# ------------------------------------------------------------------ ML/MM
def test_mixed_system_ml_part_is_the_ase_energy_of_the_ml_atoms(model_path):
    atoms = water_box(seed=2)
    potential = tiny((1, 8))
    path = model_path.replace("model.pt", "water_model.pt")
    potential.save(path)
    topology = water_topology(atoms)
    forcefield = app.ForceField("amber14/tip3p.xml")
    mm_system = forcefield.createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=0.45 * unit.nanometer)
    ml_atoms = [17, 15, 16]  # water 5, hydrogens first: the potential sees them in this order
    mixed = MLPotential("equinnp", model=path).createMixedSystem(topology, mm_system, ml_atoms, forceGroup=1)
    assert mixed.getNumConstraints() == mm_system.getNumConstraints() - 3  # the ML water is flexible
    for force in mixed.getForces():
        if not isinstance(force, openmm.PythonForce):
            force.setForceGroup(0)
    ctx = context(mixed, atoms)
    energy, forces = openmm_results(ctx, groups={1})
    expected_energy, expected_forces = ase_results(atoms[ml_atoms], potential)
    assert energy == pytest.approx(expected_energy, rel=RTOL, abs=0)
    np.testing.assert_allclose(forces[ml_atoms], expected_forces, rtol=RTOL, atol=RTOL * np.abs(expected_forces).max())
    others = np.setdiff1d(np.arange(len(atoms)), ml_atoms)
    assert np.abs(forces[others]).max() == 0.0  # the ML force acts on the ML atoms only
    # the MM part: the water's internal MM energy is zero (TIP3P is rigid; its pairs are excluded), so the rest is all of MM
    mm_energy, _ = openmm_results(context(mm_system, atoms))
    assert openmm_results(ctx, groups={0})[0] == pytest.approx(mm_energy, rel=1e-9)


def test_interpolated_mixed_system_goes_from_mm_to_ml_mm(model_path):
    atoms = water_box(seed=2)
    path = model_path.replace("model.pt", "water_model_2.pt")
    tiny((1, 8)).save(path)
    topology = water_topology(atoms)
    mm_system = app.ForceField("amber14/tip3p.xml").createSystem(topology, nonbondedMethod=app.PME,
                                                                 nonbondedCutoff=0.45 * unit.nanometer)
    potential = MLPotential("equinnp", model=path)
    plain = openmm_results(context(potential.createMixedSystem(topology, mm_system, [3, 4, 5]), atoms))
    ctx = context(potential.createMixedSystem(topology, mm_system, [3, 4, 5], interpolate=True), atoms)  # copies the force
    ctx.setParameter("lambda_interpolate", 1.0)
    assert openmm_results(ctx)[0] == pytest.approx(plain[0], rel=1e-10)
    ctx.setParameter("lambda_interpolate", 0.0)
    assert openmm_results(ctx)[0] == pytest.approx(openmm_results(context(mm_system, atoms))[0], rel=1e-9)


def test_total_charge_and_multiplicity_reach_the_model(tmp_path):
    torch.manual_seed(0)
    potential = equinnp.build_potential("painn", cutoff=4.0, elements=[1, 6, 8], dtype="float64", scale=0.3,
                                        reference_energies={1: -13.6, 6: -1030.0, 8: -2040.0}, charge_embedding=True,
                                        spin_embedding=True,
                                        **equinnp.ARCHITECTURES["painn"].tiny).eval()
    potential.save(tmp_path / "charged.pt")
    atoms = ethanol_atoms()
    topology = molecule_topology(atoms.numbers)
    ml = MLPotential("equinnp", model=str(tmp_path / "charged.pt"))
    with pytest.raises(ValueError, match=r"needs the total charge .*: pass charge="):
        ml.createSystem(topology, multiplicity=2)
    with pytest.raises(ValueError, match=r"needs the total spin .*: pass multiplicity="):
        ml.createSystem(topology, charge=1)
    energies = {}
    for charge, multiplicity in ((1, 2), (-1, 2), (1, 4)):
        ctx = context(ml.createSystem(topology, charge=charge, multiplicity=multiplicity), atoms)
        charged = atoms.copy()
        charged.info.update(charge=charge, spin=multiplicity)
        assert_equal_to_ase(ctx, charged, potential)
        energies[charge, multiplicity] = openmm_results(ctx)[0]
    assert len(set(energies.values())) == 3  # each total changes the energy


def test_long_range_is_reported_for_a_coulomb_term_over_all_pairs():
    from equinnp.postprocessing import AtomicReferenceEnergies
    from equinnp.postprocessing.coulomb import Coulomb
    from equinnp.potential import Potential

    charged = equinnp.build_potential("painn", cutoff=4.0, elements=[1, 8], charge_head=True,
                                      **equinnp.ARCHITECTURES["painn"].tiny)
    long_range = {}
    for method in ("direct", "ewald", "dsf"):
        potential = Potential(charged.model, architecture="painn",
                              energy_terms=[AtomicReferenceEnergies([1, 8]), Coulomb(method=method)])
        long_range[method] = MLPotential("equinnp", model=potential)._impl.getMLLongRange()
    assert long_range == {"direct": True, "ewald": True, "dsf": False}
    assert MLPotential("equinnp", model=tiny())._impl.getMLLongRange() is False  # short-range: no mlLongRange= needed


# ------------------------------------------------------------------ bad input
def test_unknown_element_is_named_with_its_atom(model_path):
    topology = molecule_topology([6, 1, 1, 1, 17])
    with pytest.raises(ValueError, match=r"topology atoms 4 are Cl \(Z=17\), which this schnet model was not trained on"):
        openmm_force(model_path, topology)
    with pytest.raises(ValueError, match=r"Cl \(Z=17\)"):
        MLPotential("equinnp", model=model_path).createSystem(topology)
    openmm_force(model_path, topology, atoms=[0, 1, 2, 3])  # the ML region leaves the chlorine out: fine
    residue = next(topology.residues())
    topology.addAtom("EP", None, residue)  # an extra particle (a TIP4P-style site): no element
    with pytest.raises(ValueError, match=r"topology atom 5 \(EP in residue MOL 1\) has no element"):
        openmm_force(model_path, topology, atoms=[0, 1, 5])


def test_too_small_box_is_refused_naming_the_box(model_path):
    atoms = ethanol_atoms()
    topology = molecule_topology(atoms.numbers, box=np.eye(3) * 0.02)  # 0.02 Å: a box given in the wrong units
    with pytest.raises(ValueError, match=r"the topology's periodic box \[\[0.002, 0.0, 0.0\].*nm.*periodic images"):
        openmm_force(model_path, topology)
    with pytest.raises(ValueError, match=r"periodic box \[\[0.002, 0.0, 0.0\].*nm.*periodic images"):
        MLPotential("equinnp", model=model_path).createSystem(topology)
    topology.setPeriodicBoxVectors(np.eye(3) * 3.0 * unit.angstrom)  # narrower than the cutoff: fine (several images)
    ctx = context(system_with(openmm_force(model_path, topology), topology), atoms)
    ctx.setPeriodicBoxVectors(*(np.eye(3) * 0.02 * unit.angstrom))  # later shrunk in the context: refused when evaluated
    with pytest.raises(openmm.OpenMMException, match=r"periodic box \[\[0.002, 0.0, 0.0\].*nm.*periodic images"):
        ctx.getState(getEnergy=True)


def test_bad_options_are_refused(model_path):
    topology = molecule_topology(ethanol_atoms().numbers)
    with pytest.raises(ValueError, match="needs the potential"):
        MLPotential("equinnp")
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['multiplicty'\]"):
        MLPotential("equinnp", model=model_path).createSystem(topology, multiplicty=2)
    with pytest.raises(ValueError, match="precision must be"):
        MLPotential("equinnp", model=model_path).createSystem(topology, precision="half")
    with pytest.raises(ValueError, match=r"atom indices \[9\] are outside the topology's 9 atoms"):
        openmm_force(model_path, topology, atoms=[0, 9])
    with pytest.raises(ValueError, match=r"atom indices \[1\] are given more than once"):
        openmm_force(model_path, topology, atoms=[0, 1, 1])
    with pytest.raises(ValueError, match=r"atoms must be integer indices"):
        openmm_force(model_path, topology, atoms=[0, 1.5])


def test_pyproject_declares_the_registry_entry_and_the_extras():
    import importlib
    import tomllib
    from pathlib import Path

    from equinnp.calculators.openmm_ml import EquinnpPotentialImplFactory

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    module, name = project["entry-points"]["openmmml.potentials"]["equinnp"].split(":")
    assert getattr(importlib.import_module(module), name) is EquinnpPotentialImplFactory
    assert isinstance(MLPotential._implFactories["equinnp"], EquinnpPotentialImplFactory)  # found through the entry point
    extras = project["optional-dependencies"]
    assert {"openmm>=8.6", "openmmml>=1.8"} <= set(extras["openmm"]) & set(extras["test"])

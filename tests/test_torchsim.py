"""The TorchSim model: the ASE calculator's energies, forces and stress for a batch of molecules and
crystals in one ``SimState``; batched NVE and Langevin steps equal to each system alone and to ASE's
velocity Verlet; TorchSim's own interface check; charge and spin; bad input."""

import ase
import numpy as np
import pytest
import torch
import torch_sim as ts
from ase import units
from ase.build import bulk, molecule
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from torch_sim.models.interface import validate_model_outputs

import equinnp
from equinnp.calculators import EquinnpCalculator, EquinnpTorchSimModel
from equinnp.data.bundled import ethanol_atoms

ELEMENTS = [1, 6, 7, 8, 14]
CPU = torch.device("cpu")
REFERENCE = {1: -13.6, 6: -1030.0, 7: -1480.0, 8: -2040.0, 14: -7870.0}


def tiny(elements=ELEMENTS, dtype="float64", **kwargs):
    torch.manual_seed(0)
    reference = {z: REFERENCE.get(z, -100.0 * z) for z in elements}
    return equinnp.build_potential("painn", cutoff=4.0, elements=elements, dtype=dtype, scale=0.3,
                                   reference_energies=reference,
                                   **{**equinnp.ARCHITECTURES["painn"].tiny, **kwargs}).eval()


def molecules():
    """Three molecules of different sizes (9, 3 and 4 atoms), so that a wrong atom order shows."""
    return [ethanol_atoms(), molecule("H2O"), molecule("NH3")]


def silicon():
    """Rattled diamond silicon in a sheared cell (not symmetric: a transposed cell gives other results)."""
    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    shear = np.eye(3) + np.array([[0.0, 0.08, -0.05], [0.02, 0.0, 0.11], [0.07, -0.03, 0.0]])
    atoms.set_cell(atoms.cell.array @ shear, scale_atoms=True)
    atoms.rattle(0.08, seed=1)
    return atoms


def periodic_systems():
    """Molecules in periodic boxes (images beyond the cutoff) and the crystal: TorchSim 0.3 has one pbc for all."""
    boxed = []
    for atoms in molecules():
        atoms = atoms.copy()
        atoms.center(vacuum=5.0)
        atoms.pbc = True
        boxed.append(atoms)
    return [boxed[0], silicon(), boxed[1], boxed[2]]


def ase_results(potential, atoms_list):
    calc = EquinnpCalculator(potential)
    results = []
    for atoms in atoms_list:
        atoms = atoms.copy()
        atoms.calc = calc
        stress = atoms.get_stress(voigt=False) if atoms.pbc.any() else None
        results.append((atoms.get_potential_energy(), atoms.get_forces(), stress))
    return results


def assert_equals_ase(potential, atoms_list, output):
    forces = output["forces"].numpy()
    start = 0
    for k, (energy, ase_forces, stress) in enumerate(ase_results(potential, atoms_list)):
        n = len(ase_forces)
        assert abs(float(output["energy"][k]) - energy) <= 1e-10 * abs(energy)
        np.testing.assert_allclose(forces[start:start + n], ase_forces, rtol=1e-10, atol=1e-12)
        if stress is not None:
            assert np.abs(stress).max() > 1e-6  # a molecule in a box too: ~1e-5 eV/Å³
            np.testing.assert_allclose(output["stress"][k].numpy(), stress, rtol=1e-10, atol=1e-13)
        start += n
    assert start == forces.shape[0]


def test_batched_state_equals_the_ase_calculator():
    potential = tiny()
    model = EquinnpTorchSimModel(potential, device="cpu")
    assert model.dtype == torch.float64 and model.device == CPU and model.memory_scales_with == "n_atoms_x_density"
    crystals = periodic_systems()
    state = ts.io.atoms_to_state(crystals, CPU, torch.float64)
    before = state.positions.clone()
    output = model(state)
    assert torch.equal(state.positions, before)
    assert output["energy"].shape == (4,) and output["stress"].shape == (4, 3, 3)
    assert_equals_ase(potential, crystals, output)

    open_molecules = molecules()  # pbc False: no cell, stress zero
    output = model(ts.io.atoms_to_state(open_molecules, CPU, torch.float64))
    assert_equals_ase(potential, open_molecules, output)
    assert torch.equal(output["stress"], torch.zeros(3, 3, 3, dtype=torch.float64))
    assert model.neighbor_searches == 2


def test_passes_torch_sims_interface_check():
    model = EquinnpTorchSimModel(tiny(elements=[1, 6, 8, 14, 26]), device="cpu", compute_stress=False)
    validate_model_outputs(model, CPU, torch.float64)  # sets compute_stress itself
    assert model.compute_stress


def _momenta(atoms_list, seed=0):
    momenta = []
    for k, atoms in enumerate(atoms_list):
        MaxwellBoltzmannDistribution(atoms, temperature_K=600, rng=np.random.default_rng(seed + k))
        momenta.append(atoms.get_momenta())
    return momenta


def _run_nve(model, atoms_list, momenta, steps, dt):
    """TorchSim velocity Verlet from the given momenta; energies [steps, B] and the final state."""
    init, update = ts.nve(model=model, dt=torch.tensor(dt, dtype=torch.float64), kT=torch.tensor(0.0, dtype=torch.float64))
    state = init(ts.io.atoms_to_state(atoms_list, CPU, torch.float64))
    state.momenta = torch.tensor(np.concatenate(momenta), dtype=torch.float64)
    energies = []
    for _ in range(steps):
        state = update(state)
        energies.append(state.energy.clone())
    return torch.stack(energies), state


def test_batched_nve_equals_each_system_alone_and_ase_velocity_verlet():
    potential = tiny()
    systems = periodic_systems()
    momenta = _momenta(systems)
    steps, dt = 6, 1.0 * units.fs  # TorchSim's metal time unit is ASE's: sqrt(amu Å² / eV)
    batched_energies, batched = _run_nve(EquinnpTorchSimModel(potential, device="cpu"), systems, momenta, steps, dt)
    start = 0
    for k, atoms in enumerate(systems):
        n = len(atoms)
        alone_energies, alone = _run_nve(EquinnpTorchSimModel(potential, device="cpu"), [atoms], [momenta[k]], steps, dt)
        torch.testing.assert_close(batched_energies[:, k], alone_energies[:, 0], rtol=1e-12, atol=0)
        torch.testing.assert_close(batched.positions[start:start + n], alone.positions, rtol=0, atol=1e-11)
        torch.testing.assert_close(batched.momenta[start:start + n], alone.momenta, rtol=0, atol=1e-11)

        reference = atoms.copy()
        reference.set_momenta(momenta[k])
        reference.calc = EquinnpCalculator(potential)
        dynamics = VelocityVerlet(reference, dt)
        ase_energies = []
        for _ in range(steps):
            dynamics.run(1)
            ase_energies.append(reference.get_potential_energy())
        np.testing.assert_allclose(batched_energies[:, k].numpy(), ase_energies, rtol=1e-10)
        reference.wrap()  # TorchSim wraps periodic positions into the cell at every step
        np.testing.assert_allclose(batched.positions[start:start + n].numpy(), reference.positions, atol=1e-9)
        np.testing.assert_allclose(batched.momenta[start:start + n].numpy(), reference.get_momenta(), atol=1e-9)
        start += n
    assert np.abs(batched.positions.numpy() - ts.io.atoms_to_state(systems, CPU, torch.float64).positions.numpy()).max() > 0.01


def test_batched_langevin_equals_each_system_alone(monkeypatch):
    """BAOAB Langevin with the same noise per atom: TorchSim draws it with ``torch.randn_like`` for the whole state."""
    potential = tiny()
    systems = molecules()
    momenta = _momenta(systems)
    sizes = [len(a) for a in systems]
    generator = torch.Generator().manual_seed(5)
    steps = 4
    noise = [torch.randn(sum(sizes), 3, generator=generator, dtype=torch.float64) for _ in range(steps)]

    def run(atoms_list, momenta_list, rows):
        draws = iter(noise)
        monkeypatch.setattr(torch, "randn_like", lambda like, **_: next(draws)[rows].to(like.dtype))
        init, update = ts.nvt_langevin(model=EquinnpTorchSimModel(potential, device="cpu"),
                                       dt=torch.tensor(1.0 * units.fs, dtype=torch.float64),
                                       kT=torch.tensor(500 * units.kB, dtype=torch.float64),
                                       gamma=torch.tensor(0.05, dtype=torch.float64))
        state = init(ts.io.atoms_to_state(atoms_list, CPU, torch.float64))
        state.momenta = torch.tensor(np.concatenate(momenta_list), dtype=torch.float64)
        for _ in range(steps):
            state = update(state)
        assert next(draws, None) is None  # one draw per step, all used
        return state

    batched = run(systems, momenta, slice(None))
    start = 0
    for k, atoms in enumerate(systems):
        rows = slice(start, start + sizes[k])
        alone = run([atoms], [momenta[k]], rows)
        torch.testing.assert_close(batched.energy[k:k + 1], alone.energy, rtol=1e-12, atol=0)
        torch.testing.assert_close(batched.positions[rows], alone.positions, rtol=0, atol=1e-11)
        torch.testing.assert_close(batched.momenta[rows], alone.momenta, rtol=0, atol=1e-11)
        start += sizes[k]


def test_skin_gives_the_fresh_search_results_over_batched_md():
    potential = tiny()
    model = EquinnpTorchSimModel(potential, device="cpu", skin=0.5)
    fresh = EquinnpTorchSimModel(potential, device="cpu", skin=0.0)
    init, update = ts.nve(model=model, dt=torch.tensor(1.0 * units.fs, dtype=torch.float64),
                          kT=torch.tensor(400 * units.kB, dtype=torch.float64), seed=0)
    state = init(ts.io.atoms_to_state(periodic_systems(), CPU, torch.float64))
    steps = 30
    for _ in range(steps):
        state = update(state)
        again = fresh(state)
        # equal up to rounding: atoms TorchSim wrapped into the cell are moved back next to where they were searched
        torch.testing.assert_close(state.energy, again["energy"], rtol=1e-13, atol=0)
        torch.testing.assert_close(state.forces, again["forces"], rtol=0, atol=1e-12)
    assert 1 < model.neighbor_searches < steps // 2 and fresh.neighbor_searches == steps

    searches = model.neighbor_searches
    jumped = state.clone()
    jumped.positions[10] += jumped.cell[1, :, 2]  # an atom of the crystal moved by its third cell vector (a column)
    output, again = model(jumped), fresh(jumped)
    assert model.neighbor_searches == searches  # the last search still stands
    torch.testing.assert_close(output["energy"], again["energy"], rtol=1e-13, atol=0)
    torch.testing.assert_close(output["forces"], again["forces"], rtol=0, atol=1e-12)
    torch.testing.assert_close(output["stress"], again["stress"], rtol=0, atol=1e-13)


def test_integrate_in_float32_ends_where_the_ase_calculator_agrees(tmp_path):
    potential = tiny(dtype="float32")
    potential.save(tmp_path / "model.pt")
    model = EquinnpTorchSimModel(str(tmp_path / "model.pt"), device="cpu")  # as in docs/simulation.md
    assert model.dtype == torch.float32
    final = ts.integrate(system=periodic_systems(), model=model, integrator=ts.nvt_langevin, n_steps=5,
                         temperature=300, timestep=0.0005, seed=0)  # timestep in ps
    assert final.positions.dtype == torch.float32 and final.energy.dtype == torch.float32
    output = model(final)
    forces, start = output["forces"].numpy(), 0
    for k, (energy, ase_forces, stress) in enumerate(ase_results(potential, final.to_atoms())):
        n = len(ase_forces)
        assert float(output["energy"][k]) == pytest.approx(energy, rel=1e-6)
        np.testing.assert_allclose(forces[start:start + n], ase_forces, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(output["stress"][k].numpy(), stress, rtol=1e-4, atol=1e-6)
        start += n


def test_total_charge_and_spin_per_system():
    potential = tiny(charge_embedding=True, spin_embedding=True)
    systems = molecules()
    charges, spins = [0.0, 1.0, -1.0], [1.0, 2.0, 2.0]
    state = ts.io.atoms_to_state(systems, CPU, torch.float64)
    output = EquinnpTorchSimModel(potential, device="cpu", charge=charges, spin=spins)(state)
    labelled = []
    for atoms, charge, spin in zip(systems, charges, spins):
        atoms = atoms.copy()
        atoms.info.update(charge=charge, spin=spin)
        labelled.append(atoms)
    assert_equals_ase(potential, labelled, output)
    neutral = EquinnpTorchSimModel(potential, device="cpu", charge=0.0, spin=1.0)(state)["energy"]
    assert neutral[0] == output["energy"][0] and (neutral[1:] - output["energy"][1:]).abs().min() > 1e-6

    state.charge, state.spin = torch.tensor(charges), torch.tensor(spins)  # a state that carries them (newer TorchSim)
    torch.testing.assert_close(EquinnpTorchSimModel(potential, device="cpu")(state)["energy"], output["energy"], rtol=0, atol=0)

    with pytest.raises(ValueError, match="needs the total charge of every system"):
        EquinnpTorchSimModel(potential, device="cpu")(ts.io.atoms_to_state(systems, CPU, torch.float64))
    with pytest.raises(ValueError, match=r"charge=\.\.\.\) has 2 values for a state of 3 systems"):
        EquinnpTorchSimModel(potential, device="cpu", charge=[0, 1], spin=1)(state)
    with pytest.raises(ValueError, match="spin must be a number or a list"):
        EquinnpTorchSimModel(potential, device="cpu", spin=[[1.0]])


def test_bad_input_is_refused_with_the_problem_named():
    model = EquinnpTorchSimModel(tiny(), device="cpu")
    iron = bulk("Fe", "bcc", a=2.87, cubic=True)
    with pytest.raises(ValueError, match=r"system\(s\) \[1\] of the state contain Fe \(Z=26\), which this painn model "
                                         r"was not trained on \(it knows H C N O Si\)"):
        model(ts.io.atoms_to_state([silicon(), iron], CPU, torch.float64))
    with pytest.raises(ValueError, match="dtype must be 'float32' or 'float64', got 'float16'"):
        EquinnpTorchSimModel(tiny(), device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="skin must be a number >= 0"):
        EquinnpTorchSimModel(tiny(), device="cpu", skin=-1.0)
    state = ts.io.atoms_to_state([silicon()], CPU, torch.float64)
    squeezed = dict(positions=state.positions, cell=state.cell, pbc=torch.ones(2, 2, dtype=torch.bool),
                    atomic_numbers=state.atomic_numbers, system_idx=state.system_idx)
    with pytest.raises(ValueError, match=r"state.pbc has shape \(2, 2\) for 1 systems"):
        model(squeezed)
    fields = dict(squeezed, pbc=True)  # a dict of a state's fields is accepted, as by TorchSim's models
    torch.testing.assert_close(model(fields)["energy"], model(state)["energy"], rtol=0, atol=0)

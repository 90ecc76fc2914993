"""Potential: outputs, dtypes, postprocessing, save/load, ASE calculator."""

import ase.build
import numpy as np
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

import equinnp
from equinnp.calculators import EquinnpCalculator
from equinnp.data import from_ase
from equinnp.postprocessing import fit_reference_energies


@pytest.mark.parametrize("name", sorted(equinnp.ARCHITECTURES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_output_shapes_and_dtypes(name, dtype, rmd17_frames):
    pot = equinnp.build_potential(name, elements=[1, 6, 8], dtype=dtype, **equinnp.ARCHITECTURES[name].tiny)
    batch = next(iter(DataLoader(rmd17_frames, batch_size=4)))
    out = pot(batch)
    assert out.energy.shape == (4,) and out.energy.dtype == torch.float64
    assert out.forces.shape == (batch.num_nodes, 3) and out.forces.dtype == getattr(torch, dtype)
    assert out.atomic_energies.shape == (batch.num_nodes,)
    assert out.stress is None
    torch.testing.assert_close(out.energy[0], out.atomic_energies[batch.batch == 0].sum())


def test_reference_energies_and_scale_shift_enter_the_energy(rmd17_frames):
    data = rmd17_frames[0]
    base = equinnp.build_potential("schnet", elements=[1, 6, 8], dtype="float64", **equinnp.ARCHITECTURES["schnet"].tiny)
    e0 = base(data).energy
    e_net = base.model(base_graph(base, data)).energy.double()
    refs = {1: -0.5, 6: -37.8, 8: -75.0}
    base.reference_energies.set(refs)
    base.scale_shift.set(scale=2.0, shift=[0.1, 0.2, 0.3])
    counts = {z: int((data.z == z).sum()) for z in refs}
    expected = 2.0 * e_net.sum() + sum(counts[z] * (refs[z] + {1: 0.1, 6: 0.2, 8: 0.3}[z]) for z in refs)
    torch.testing.assert_close(base(data).energy[0], expected)
    assert not torch.allclose(e0, base(data).energy)


def base_graph(pot, data):
    from equinnp.models.base import Graph
    from equinnp.neighbors import radius_graph

    nl = radius_graph(data.pos, pot.cutoff)
    j, i = nl.edge_index
    vec = data.pos[j] - data.pos[i]
    return Graph(species=pot._species(data.z), z=data.z, pos=data.pos, edge_index=nl.edge_index, edge_vec=vec,
                 edge_length=vec.norm(dim=-1), batch=torch.zeros_like(data.z), num_graphs=1)


def test_fit_reference_energies_recovers_known_values():
    rng = np.random.default_rng(0)
    truth = {1: -13.6, 6: -1030.0, 8: -2040.0}
    records = []
    for _ in range(30):
        z = rng.choice([1, 6, 8], size=rng.integers(2, 9))
        data = equinnp.data.from_arrays(z, rng.uniform(0, 10, size=(len(z), 3)) + np.arange(len(z))[:, None] * 2,
                                        energy=sum(truth[int(a)] for a in z), dtype=torch.float64)
        records.append(data)
    fitted = fit_reference_energies(records, [1, 6, 8])
    for z in truth:
        assert fitted[z] == pytest.approx(truth[z], abs=1e-8)


@pytest.mark.parametrize("name", sorted(equinnp.ARCHITECTURES))
def test_save_and_load_round_trip(name, tmp_path, rmd17_frames):
    pot = equinnp.build_potential(name, elements=[1, 6, 8], reference_energies={1: -1.0, 6: -2.0, 8: -3.0},
                                  **equinnp.ARCHITECTURES[name].tiny)
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.1)
    path = tmp_path / "model.pt"
    pot.save(path)
    loaded = equinnp.load_potential(path)
    batch = Batch.from_data_list(rmd17_frames[:2])
    torch.testing.assert_close(loaded(batch).energy, pot(batch).energy)
    payload = torch.load(path, weights_only=False)
    meta = payload["metadata"]
    assert meta["cutoff"] == pot.cutoff and meta["elements"] == [1, 6, 8]
    assert meta["units"]["energy"] == "eV" and meta["reference_energies"] == {1: -1.0, 6: -2.0, 8: -3.0}
    assert meta["equinnp_version"] == equinnp.__version__
    for key, value in equinnp.ARCHITECTURES[name].tiny.items():
        assert payload["config"]["hyperparameters"][key] == value


def test_build_from_yaml_and_dict(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("model:\n  architecture: painn\n  hidden_channels: 8\n  num_interactions: 1\n  elements: [1, 8]\n")
    pot = equinnp.build_potential(path)
    assert pot.model.hidden_channels == 8 and pot.elements == [1, 8]
    assert equinnp.build_potential({"architecture": "schnet", "num_interactions": 1}).model.hyperparameters["num_interactions"] == 1


def test_ase_calculator_periodic_stress_matches_ase_numerical():
    atoms = ase.build.bulk("C", "diamond", a=3.57) * (1, 1, 2)
    atoms.rattle(0.05, seed=1)
    pot = equinnp.build_potential("painn", elements=[6], dtype="float64", cutoff=3.0, **equinnp.ARCHITECTURES["painn"].tiny)
    atoms.calc = EquinnpCalculator(pot)
    analytic = atoms.get_stress()
    numeric = atoms.calc.calculate_numerical_stress(atoms, d=1e-5)
    np.testing.assert_allclose(analytic, numeric, atol=1e-7)
    np.testing.assert_allclose(atoms.get_forces(), atoms.calc.calculate_numerical_forces(atoms, d=1e-5), atol=1e-7)


def test_from_ase_reads_calculator_labels():
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = ase.build.molecule("H2O")
    atoms.calc = SinglePointCalculator(atoms, energy=-14.2, forces=np.ones((3, 3)))
    atoms.info["charge"] = 0
    data = from_ase(atoms)
    assert data.energy.tolist() == pytest.approx([-14.2])
    assert data.forces.shape == (3, 3) and data.charge.shape == (1,)
    assert not hasattr(data, "cell")
    crystal = from_ase(ase.build.bulk("Si"))
    assert crystal.cell.shape == (1, 3, 3) and crystal.pbc.tolist() == [[True, True, True]]


def test_precomputed_edges_are_used_and_other_edge_index_ignored(rmd17_frames):
    from torch_geometric.data import Data

    from equinnp.neighbors import RadiusGraph

    pot = equinnp.build_potential("schnet", elements=[1, 6, 8], dtype="float64", cutoff=4.0, **equinnp.ARCHITECTURES["schnet"].tiny)
    plain = Data(z=rmd17_frames[0].z, pos=rmd17_frames[0].pos)
    reference = pot(plain).energy
    precomputed = RadiusGraph(6.0)(plain.clone())  # a larger cutoff: extra edges are dropped
    torch.testing.assert_close(pot(precomputed).energy, reference, rtol=1e-12, atol=0)
    bonds = plain.clone()
    bonds.edge_index = torch.tensor([[0, 1], [1, 0]])  # a bond graph, not a radius graph
    torch.testing.assert_close(pot(bonds).energy, reference, rtol=1e-12, atol=0)
    too_short = RadiusGraph(2.0)(plain.clone())  # fewer edges than the model's cutoff needs
    with pytest.raises(ValueError, match="precomputed with a cutoff of 2 Å, shorter than this model's 4 Å"):
        pot(too_short)

"""Potential.fit and the float64 constants it sets: reference energies, scale, shift, model constants."""

import warnings

import numpy as np
import pytest
import torch

import equinnp
from equinnp.data import DatasetStatistics, from_arrays
from equinnp.neighbors import brute_force_radius_graph
from equinnp.postprocessing import reference_energy_fit

C_REFERENCE = -1029.48899998  # eV; float32 would store -1029.48901367


def mixed_records(n=30, seed=0, truth=None):
    """Structures of varied composition whose energies are exactly sums of atomic energies."""
    truth = truth or {1: -13.6, 6: C_REFERENCE, 8: -2041.8396}
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        z = rng.choice(sorted(truth), size=rng.integers(2, 9))
        pos = rng.uniform(0, 6, size=(len(z), 3)) + np.arange(len(z))[:, None] * 1.5
        forces = rng.normal(size=(len(z), 3))
        records.append(from_arrays(z, pos, energy=sum(truth[int(a)] for a in z), forces=forces, dtype=torch.float64))
    return records, truth


@pytest.mark.parametrize("name", sorted(equinnp.ARCHITECTURES))
def test_constants_stay_float64_in_a_float32_potential(name, tmp_path):
    pot = equinnp.build_potential(name, elements=[1, 6, 8], dtype="float32", scale=1.1234567891, shift=[0.1, 0.2, 0.3],
                                  reference_energies={1: -13.6, 6: C_REFERENCE, 8: -2041.8396}, **equinnp.ARCHITECTURES[name].tiny)
    assert pot.dtype == torch.float32
    for buffer in (pot.reference_energies.energies, pot.scale_shift.scale, pot.scale_shift.shift):
        assert buffer.dtype == torch.float64
    assert pot.reference_energies.as_dict()[6] == C_REFERENCE
    assert pot.scale_shift.scale[0].item() == 1.1234567891
    pot.float().double().float()  # round trips through dtypes round nothing
    assert pot.reference_energies.as_dict()[6] == C_REFERENCE
    pot.save(tmp_path / "m.pt")
    assert equinnp.load_potential(tmp_path / "m.pt").reference_energies.as_dict()[6] == C_REFERENCE


def test_float32_potential_adds_exact_reference_energies():
    pot = equinnp.build_potential("schnet", elements=[6], dtype="float32", reference_energies={6: C_REFERENCE},
                                  **equinnp.ARCHITECTURES["schnet"].tiny)
    with torch.no_grad():
        for p in pot.parameters():
            p.zero_()  # network output 0: the energy is the reference energies alone
    atoms = from_arrays([6] * 50, np.arange(150).reshape(50, 3) * 10.0)
    assert pot(atoms).energy.item() == pytest.approx(50 * C_REFERENCE, abs=1e-9)  # float32 constants: 7e-4 eV off


def test_fit_sets_reference_energies_and_scale(rmd17_frames):
    records, truth = mixed_records()
    pot = equinnp.build_potential("schnet", elements=[1, 6, 8], dtype="float32", **equinnp.ARCHITECTURES["schnet"].tiny)
    fitted = pot.fit(records)
    for z, value in truth.items():
        assert fitted["reference_energies"][z] == pytest.approx(value, abs=1e-8)
        assert pot.reference_energies.as_dict()[z] == pytest.approx(value, abs=1e-8)
    rms = np.sqrt(np.mean(np.concatenate([r.forces.numpy().ravel() for r in records]) ** 2))
    assert fitted["scale"] == pytest.approx(rms, rel=1e-12)
    assert pot.fit_info["reference_energies"]["identifiable"] is True
    assert pot.fit_info["num_structures"] == len(records)
    pot.fit(records, reference_energies=None, scale=2.5, shift=[0.0, 0.1, 0.2])
    assert pot.scale_shift.scale.tolist() == [2.5] * 3 and pot.scale_shift.shift.tolist() == [0.0, 0.1, 0.2]
    with pytest.raises(ValueError, match="scale must be 'rms_forces', 'energy_std'"):
        pot.fit(records, scale="rms")


def test_fit_of_one_composition_warns_and_is_recorded(rmd17_frames, tmp_path):
    ethanol = [r for r in rmd17_frames if r.num_nodes == 9]
    pot = equinnp.build_potential("schnet", elements=[1, 6, 8], **equinnp.ARCHITECTURES["schnet"].tiny)
    with pytest.warns(UserWarning, match="not identifiable .* span only 1 of 3 elements"):
        pot.fit(ethanol)
    info = pot.fit_info["reference_energies"]
    assert info == {"method": "least_squares", "rank": 1, "num_elements": 3, "identifiable": False, "absent_elements": []}
    pot.save(tmp_path / "m.pt")
    assert torch.load(tmp_path / "m.pt", weights_only=True)["metadata"]["fit"]["reference_energies"]["identifiable"] is False
    assert equinnp.load_potential(tmp_path / "m.pt").fit_info == pot.fit_info


def test_identifiable_fit_does_not_warn():
    records, _ = mixed_records()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = reference_energy_fit(records, [1, 6, 7, 8])
    assert fit.identifiable and fit.absent == [7] and fit.energies[7] == 0.0


def test_average_neighbor_count_leaves_out_isolated_atoms(rmd17_frames):
    cutoff = 2.0
    edges = sum(brute_force_radius_graph(d.pos, cutoff).edge_index.shape[1] for d in rmd17_frames)
    centers = sum(int(torch.unique(brute_force_radius_graph(d.pos, cutoff).edge_index[1]).numel()) for d in rmd17_frames)
    lone = from_arrays([6], [[0.0, 0.0, 0.0]], dtype=torch.float64)
    assert DatasetStatistics(list(rmd17_frames) + [lone]).avg_num_neighbors(cutoff) == edges / centers
    crystal = from_arrays([6], [[0.0, 0.0, 0.0]], cell=np.eye(3) * 2.0, pbc=True, dtype=torch.float64)
    assert DatasetStatistics([crystal]).avg_num_neighbors(2.5) == 6.0  # simple cubic, a = 2 Å: 6 images at 2 Å
    assert DatasetStatistics([crystal]).avg_num_neighbors(3.0) == 18.0  # + 12 at 2√2 Å
    with pytest.raises(ValueError, match="no atom has a neighbor within 2 Å"):
        DatasetStatistics([lone]).avg_num_neighbors(2.0)


def test_statistics_errors_name_the_problem():
    with pytest.raises(ValueError, match="empty dataset"):
        DatasetStatistics([])
    no_forces = from_arrays([1, 1], [[0, 0, 0], [0, 0, 0.74]], energy=-1.0)
    with pytest.raises(ValueError, match="structure 0 has no force labels"):
        DatasetStatistics([no_forces]).rms_forces()
    with pytest.raises(ValueError, match="structure 0 has element 8, not in the model's elements"):
        DatasetStatistics([from_arrays([8], [[0, 0, 0]], energy=-1.0)]).composition([1, 6])


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_forces_under_no_grad_and_inference_mode(mode, rmd17_frames):
    pot = equinnp.build_potential("painn", elements=[1, 6, 8], dtype="float64", **equinnp.ARCHITECTURES["painn"].tiny).eval()
    data = rmd17_frames[0]
    expected = pot(data)
    context = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with context:
        fresh = from_arrays(data.z, data.pos, dtype=torch.float64)  # made inside the context
        out = pot(fresh)
    torch.testing.assert_close(out.forces, expected.forces, rtol=0, atol=0)
    assert not out.energy.requires_grad and not out.forces.requires_grad


def test_potential_fit_and_the_trainer_set_maces_average_neighbor_count(rmd17_frames):
    from equinnp.train.fitting import fit_postprocessing

    hyper = {k: v for k, v in equinnp.ARCHITECTURES["mace"].tiny.items() if k != "avg_num_neighbors"}
    expected = DatasetStatistics(rmd17_frames[:3]).avg_num_neighbors(5.0)
    pot = equinnp.build_potential("mace", elements=[1, 6, 8], **hyper)
    with pytest.warns(UserWarning, match="not identifiable"):
        fitted = pot.fit(rmd17_frames[:3])
    assert fitted["avg_num_neighbors"] == expected == pot.model.avg_num_neighbors.item()
    assert pot.fit_info["model"] == {"avg_num_neighbors": expected}
    pot(rmd17_frames[0])  # runs once fitted

    trained = equinnp.build_potential("mace", elements=[1, 6, 8], **hyper)
    with pytest.warns(UserWarning):
        fitted = fit_postprocessing(trained, rmd17_frames[:3], {"reference_energies": "fit", "scale": "rms_forces"}, {})
    assert fitted["avg_num_neighbors"] == expected
    given = equinnp.build_potential("mace", elements=[1, 6, 8], **{**hyper, "avg_num_neighbors": 3.0})
    with pytest.warns(UserWarning):
        fixed = fit_postprocessing(given, rmd17_frames[:3], {"reference_energies": "fit", "scale": "rms_forces"}, {"avg_num_neighbors": 3.0})
    assert "avg_num_neighbors" not in fixed and given.model.avg_num_neighbors.item() == 3.0

"""equinnp PaiNN gives SchNetPack's PaiNN numbers given the same weights.

``tests/data/painn_schnetpack_golden.pt`` holds a float64 SchNetPack 2.1.1 PaiNN
(16 features, 3 interactions, 20 Bessel functions, cosine cutoff 5 Å) with an
Atomwise sum head, its weights and its energies and forces on five real rMD17
frames. ``benchmarks/peers/export_painn_golden.py`` wrote it (versions inside the
file); ``benchmarks/peers/painn_parameter_map.md`` describes the weight layout.

SchNetPack embeds by atomic number (100 rows); equinnp by element index, so the
rows of the molecule's elements are copied. Everything else maps one to one.
"""

import os

import pytest
import torch
from torch_geometric.data import Batch

import equinnp
from equinnp.data import from_arrays

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "painn_schnetpack_golden.pt")
ELEMENTS = [1, 6, 8]


def painn_from_schnetpack(golden) -> equinnp.Potential:
    config = golden["config"]
    pot = equinnp.build_potential(
        "painn",
        elements=ELEMENTS,
        cutoff=config["cutoff"],
        hidden_channels=config["n_atom_basis"],
        num_interactions=config["n_interactions"],
        num_rbf=config["n_rbf"],
        epsilon=config["epsilon"],
        dtype="float64",
    )
    sd = golden["state_dict"]
    rep, head = "representation.", "output_modules.0.outnet."
    model = pot.model
    with torch.no_grad():
        model.embedding.weight.copy_(sd[rep + "embedding.weight"][ELEMENTS])
        model.filter_net.weight.copy_(sd[rep + "filter_net.weight"])
        model.filter_net.bias.copy_(sd[rep + "filter_net.bias"])
        torch.testing.assert_close(model.radial_basis.freqs, sd[rep + "radial_basis.freqs"], rtol=1e-15, atol=0)
        for t in range(config["n_interactions"]):
            for k, layer in ((0, 0), (1, 2)):  # SchNetPack Dense(activation) pairs ↔ Linear, SiLU, Linear
                prefix = f"{rep}interactions.{t}.interatomic_context_net.{k}."
                model.messages[t].context_net[layer].weight.copy_(sd[prefix + "weight"])
                model.messages[t].context_net[layer].bias.copy_(sd[prefix + "bias"])
                prefix = f"{rep}mixing.{t}.intraatomic_context_net.{k}."
                model.updates[t].context_net[layer].weight.copy_(sd[prefix + "weight"])
                model.updates[t].context_net[layer].bias.copy_(sd[prefix + "bias"])
            model.updates[t].vector_mix.weight.copy_(sd[f"{rep}mixing.{t}.mu_channel_mix.weight"])
        for k, layer in ((0, 0), (1, 2)):
            model.readout[layer].weight.copy_(sd[f"{head}{k}.weight"])
            model.readout[layer].bias.copy_(sd[f"{head}{k}.bias"])
    return pot.eval()


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


def test_energies_and_forces_match_schnetpack(golden):
    pot = painn_from_schnetpack(golden)
    frames = [from_arrays(z, pos, dtype=torch.float64) for z, pos in zip(golden["z"], golden["pos"])]
    out = pot(Batch.from_data_list(frames))
    torch.testing.assert_close(out.energy, golden["energy"], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.forces, torch.cat(list(golden["forces"])), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out.atomic_energies, torch.cat(list(golden["atomic_energy"])).reshape(-1), rtol=1e-10, atol=1e-12)


def test_parity_is_sensitive_to_the_chunk_order(golden):
    """Swapping the direction and neighbor-vector chunks of the filters must break parity."""
    pot = painn_from_schnetpack(golden)
    F = golden["config"]["n_atom_basis"]
    with torch.no_grad():
        w = pot.model.filter_net.weight
        block = w[: 3 * F].clone()
        w[F : 2 * F], w[2 * F : 3 * F] = block[2 * F : 3 * F], block[F : 2 * F]
    frame = from_arrays(golden["z"][0], golden["pos"][0], dtype=torch.float64)
    assert not torch.allclose(pot(frame, compute_forces=False).energy, golden["energy"][:1], rtol=1e-6)


def test_float32_matches_schnetpack_to_float32_round_off(golden):
    """The same weights in float32: energies within 2e-6 and forces within 2e-5 of the largest value."""
    pot = painn_from_schnetpack(golden).float()
    frames = [from_arrays(z, pos, dtype=torch.float64) for z, pos in zip(golden["z"], golden["pos"])]
    out = pot(Batch.from_data_list(frames))
    forces = torch.cat(list(golden["forces"]))
    assert (out.energy - golden["energy"]).abs().max() <= 2e-6 * golden["energy"].abs().max()
    assert (out.forces.double() - forces).abs().max() <= 2e-5 * forces.abs().max()

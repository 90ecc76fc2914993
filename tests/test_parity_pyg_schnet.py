"""equinnp SchNet gives torch_geometric's SchNet numbers given the same weights.

PyG's SchNet embeds by atomic number (100 rows); equinnp's by element index, so
row ``Z`` of PyG's embedding is set to equinnp's row for that element. PyG's
neighbor search needs torch-cluster, so our neighbor list is injected through
its ``interaction_graph`` argument.

Two differences are kept and undone in the twin, both float32 roundings of
constants in PyG: its ``ShiftedSoftplus`` stores ln 2 rounded to float32
(0.69314718246...) and its Gaussian centers come from a float32 ``linspace``;
equinnp computes both in float64 (ssp(0) = 0 exactly). Each rounding moves PyG's
float64 energies by ~1e-8 relative. The twin recomputes them with PyG's own
formulas in float64; nothing is copied from equinnp's model but the weights,
and PyG's float32 constants are compared with equinnp's to float32 round-off.
"""


import math

import pytest
import torch
from torch_geometric.data import Batch

import equinnp
from equinnp.neighbors import radius_graph
from equinnp.testing.parity import pyg_schnet_twin

HYPER = dict(hidden_channels=32, num_filters=24, num_interactions=3, num_gaussians=20, cutoff=5.0)
ELEMENTS = [1, 6, 8]


def pyg_twin(pot):
    """PyG's SchNet with equinnp's weights and neighbor list, and equinnp's exact constants."""

    def interaction_graph(pos, batch):
        edge_index = radius_graph(pos.detach(), HYPER["cutoff"], batch=batch).edge_index
        j, i = edge_index
        return edge_index, (pos[j] - pos[i]).norm(dim=-1)

    return pyg_schnet_twin(pot.model, interaction_graph, exact_constants=True)


@pytest.fixture(scope="module")
def schnet_pair():
    torch.manual_seed(0)
    pot = equinnp.build_potential("schnet", elements=ELEMENTS, dtype="float64", **HYPER).eval()
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return pot, pyg_twin(pot)


def test_energies_and_forces_match_pyg(schnet_pair, rmd17_frames):
    pot, twin = schnet_pair
    batch = Batch.from_data_list(rmd17_frames[:3])  # ethanol frames (H, C, O)
    ours = pot(batch)
    pos = batch.pos.clone().requires_grad_(True)
    energy = twin(batch.z, pos, batch.batch).squeeze(-1)
    forces = -torch.autograd.grad(energy.sum(), pos)[0]
    torch.testing.assert_close(ours.energy, energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours.forces, forces, rtol=1e-10, atol=1e-10)


def test_parity_fails_with_different_weights(schnet_pair, rmd17_frames):
    pot, twin = schnet_pair
    batch = Batch.from_data_list(rmd17_frames[:1])
    with torch.no_grad():
        twin.interactions[1].lin.bias.add_(1e-3)
    try:
        energy = twin(batch.z, batch.pos, batch.batch).squeeze(-1)
        assert not torch.allclose(pot(batch, compute_forces=False).energy, energy, rtol=1e-10, atol=1e-10)
    finally:
        with torch.no_grad():
            twin.interactions[1].lin.bias.sub_(1e-3)


def test_radial_constants_equal_pygs_to_float32_round_off(schnet_pair):
    from torch_geometric.nn.models import SchNet as PygSchNet

    pot, _ = schnet_pair
    native = PygSchNet(**{k: HYPER[k] for k in ("hidden_channels", "num_filters", "num_interactions", "num_gaussians", "cutoff")})
    ours = pot.model.distance_expansion
    torch.testing.assert_close(ours.offset, native.distance_expansion.offset.double(), rtol=0, atol=4e-7)
    assert ours.coeff == pytest.approx(native.distance_expansion.coeff, rel=1e-6)
    ssp = [m for m in native.modules() if type(m).__name__ == "ShiftedSoftplus"][0]
    assert ssp.shift == pytest.approx(math.log(2.0), rel=1e-7)


@pytest.mark.parametrize("change", ["width doubled", "centers on half the cutoff"])
def test_parity_fails_with_a_wrong_radial_basis(schnet_pair, rmd17_frames, change):
    """A twin built from a model with a wrong basis must not agree with it."""
    pot, _ = schnet_pair
    expansion = pot.model.distance_expansion
    saved = expansion.offset.clone(), expansion.coeff
    try:
        if change == "width doubled":
            expansion.coeff = saved[1] / 4.0
        else:
            expansion.offset.copy_(saved[0] / 2.0)
        twin = pyg_twin(pot)
        batch = Batch.from_data_list(rmd17_frames[:1])
        energy = twin(batch.z, batch.pos, batch.batch).squeeze(-1)
        assert not torch.allclose(pot(batch, compute_forces=False).energy, energy, rtol=1e-10, atol=1e-10)
    finally:
        expansion.offset.copy_(saved[0])
        expansion.coeff = saved[1]


def test_float32_matches_pyg_with_its_own_constants(schnet_pair, rmd17_frames):
    """In float32, PyG's own float32 constants: agreement to float32 round-off."""
    import copy

    pot, _ = schnet_pair
    pot32 = copy.deepcopy(pot).float()

    def interaction_graph(pos, batch):
        edge_index = radius_graph(pos.detach(), HYPER["cutoff"], batch=batch).edge_index
        j, i = edge_index
        return edge_index, (pos[j] - pos[i]).norm(dim=-1)

    twin = pyg_schnet_twin(pot32.model, interaction_graph)  # PyG's float32 ln 2 and Gaussian grid
    batch = Batch.from_data_list(rmd17_frames[:3])
    ours = pot32(batch)
    pos = batch.pos.float().clone().requires_grad_(True)
    energy = twin(batch.z, pos, batch.batch).squeeze(-1)
    forces = -torch.autograd.grad(energy.sum(), pos)[0]
    assert (ours.energy - energy.double()).abs().max() <= 2e-6 * energy.abs().max()
    assert (ours.forces - forces).abs().max() <= 2e-5 * forces.abs().max()

"""Precomputed edges are used only while they hold every pair within the model's cutoff."""

import pytest
import torch
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

import equinnp
from equinnp.data import from_arrays
from equinnp.neighbors import RadiusGraph
from equinnp.testing.strategies import random_crystal


@pytest.fixture(scope="module")
def pot():
    torch.manual_seed(0)
    return equinnp.build_potential("schnet", elements=[1, 6, 7, 8], dtype="float64", cutoff=4.0,
                                   **equinnp.ARCHITECTURES["schnet"].tiny).eval()


def plain(record):
    return Data(z=record.z, pos=record.pos.clone())


def moved(data, atom, by):
    new = data.clone()
    new.pos = data.pos.clone()
    new.pos[atom] += torch.as_tensor(by, dtype=data.pos.dtype)
    return new


def test_stale_edges_are_rebuilt_after_an_atom_moves(pot, rmd17_frames):
    data = plain(rmd17_frames[3])  # aspirin: pairs beyond the cutoff exist
    with_edges = RadiusGraph(pot.cutoff)(data.clone())
    distance = torch.cdist(data.pos, data.pos)
    a, b = [int(k) for k in ((distance > pot.cutoff) & (distance < pot.cutoff + 1.0)).nonzero()[0]]
    direction = (data.pos[b] - data.pos[a]) / distance[a, b]
    near = moved(with_edges, a, (distance[a, b] - pot.cutoff + 0.5) * direction)  # a and b now 3.5 Å apart
    stale = {tuple(e) for e in with_edges.edge_index.t().tolist()}
    current = {tuple(e) for e in equinnp.neighbors.radius_graph(near.pos, pot.cutoff).edge_index.t().tolist()}
    assert (b, a) in current - stale
    fresh = pot(plain(near))
    out = pot(near)
    torch.testing.assert_close(out.energy, fresh.energy, rtol=0, atol=0)
    torch.testing.assert_close(out.forces, fresh.forces, rtol=0, atol=0)


@pytest.mark.parametrize("skin", [0.0, 1.0])
def test_edges_with_a_skin_are_exact_while_atoms_move_less_than_half_of_it(pot, rmd17_frames, skin):
    data = RadiusGraph(pot.cutoff, skin=skin)(plain(rmd17_frames[3]))
    assert float(data.neighbor_cutoff) == pot.cutoff + skin
    for step in range(6):  # moves of 0.1 ... 0.6 Å: within skin/2 for the first ones only
        shifted = moved(data, step, [0.1 * (step + 1), -0.05, 0.02])
        expected = pot(plain(shifted))
        out = pot(shifted)
        torch.testing.assert_close(out.energy, expected.energy, rtol=1e-13, atol=0)
        torch.testing.assert_close(out.forces, expected.forces, rtol=1e-12, atol=1e-13)


def test_edges_are_reused_within_the_skin(pot, rmd17_frames, monkeypatch):
    import equinnp.potential as potential_module

    calls = []
    original = potential_module.radius_graph
    monkeypatch.setattr(potential_module, "radius_graph", lambda *a, **k: calls.append(1) or original(*a, **k))
    data = RadiusGraph(pot.cutoff, skin=1.0)(plain(rmd17_frames[0]))
    pot(moved(data, 2, [0.3, 0.2, 0.0]))  # 0.36 Å < 0.5 Å
    assert calls == []
    pot(moved(data, 2, [0.6, 0.0, 0.0]))  # 0.6 Å > 0.5 Å: searched again
    assert calls == [1]
    pot(RadiusGraph(pot.cutoff)(plain(rmd17_frames[0])))  # unmoved, no skin: reused
    assert calls == [1]


def test_edges_without_their_records_are_refused(pot, rmd17_frames):
    data = RadiusGraph(pot.cutoff)(plain(rmd17_frames[0]))
    no_cutoff = data.clone()
    del no_cutoff.neighbor_cutoff
    with pytest.raises(ValueError, match="no record of the cutoff"):
        pot(no_cutoff)
    no_positions = data.clone()
    del no_positions.neighbor_pos
    with pytest.raises(ValueError, match="no record of the positions"):
        pot(no_positions)
    short = RadiusGraph(2.0)(plain(rmd17_frames[0]))
    with pytest.raises(ValueError, match="precomputed with a cutoff of 2 Å, shorter than this model's 4 Å"):
        pot(short)


def test_a_bond_graph_is_not_taken_for_a_radius_graph(pot, rmd17_frames):
    data = plain(rmd17_frames[0])
    bonds = data.clone()
    bonds.edge_index = torch.tensor([[0, 1], [1, 0]])
    torch.testing.assert_close(pot(bonds).energy, pot(data).energy, rtol=0, atol=0)


def test_a_larger_search_radius_gives_the_same_numbers(pot, rmd17_frames):
    data = plain(rmd17_frames[0])
    torch.testing.assert_close(pot(RadiusGraph(6.0)(data.clone())).energy, pot(data).energy, rtol=1e-13, atol=0)


def test_periodic_edges_are_rebuilt_when_the_cell_changes(pot):
    crystal = random_crystal(5, [1, 6, 8], 4, length=5.0)
    data = RadiusGraph(pot.cutoff)(crystal.clone())
    strained = data.clone()
    strained.cell = data.cell * 0.8
    strained.pos = data.pos * 0.8
    expected = pot(Data(z=crystal.z, pos=strained.pos, cell=strained.cell, pbc=crystal.pbc))
    out = pot(strained)
    torch.testing.assert_close(out.energy, expected.energy, rtol=0, atol=0)
    torch.testing.assert_close(out.stress, expected.stress, rtol=0, atol=0)


def test_batched_precomputed_edges(pot, rmd17_frames):
    records = [RadiusGraph(pot.cutoff)(plain(r)) for r in rmd17_frames[:4]]
    records[1] = moved(records[1], 0, [1.0, 0.0, 0.0])  # one stale system makes the batch search again
    batch = next(iter(DataLoader(records, batch_size=4)))
    expected = torch.cat([pot(plain(r)).energy for r in records])
    torch.testing.assert_close(pot(batch).energy, expected, rtol=1e-13, atol=0)


def test_trainer_records_carry_their_cutoff_and_positions(rmd17_frames):
    from equinnp.train.data import prepare_records

    records = prepare_records(rmd17_frames[:2], 4.0, torch.float32)
    for record in records:
        assert float(record.neighbor_cutoff) == 4.0
        assert torch.equal(record.neighbor_pos, record.pos)
    pot = equinnp.build_potential("schnet", elements=[1, 6, 8], cutoff=5.0, **equinnp.ARCHITECTURES["schnet"].tiny)
    with pytest.raises(ValueError, match="shorter than this model's 5 Å"):
        pot(records[0])


def test_skin_must_be_non_negative():
    with pytest.raises(ValueError, match="skin must be a number >= 0"):
        RadiusGraph(4.0, skin=-1.0)
    data = from_arrays([1, 1], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]])
    assert RadiusGraph(4.0, skin=0.5)(data).edge_index.shape[1] == 2

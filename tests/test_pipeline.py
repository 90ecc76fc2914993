"""The potential's stages: one neighbor search for every cutoff, postprocessing pipeline, Graph fields."""

import pytest
import torch
from torch_geometric.data import Batch, Data

import equinnp
from equinnp.models.base import AtomicOutput
from equinnp.models.schnet import SchNet
from equinnp.neighbors import brute_force_radius_graph, radius_graph
from equinnp.neighbors.reverse import reverse_edges
from equinnp.nn.scatter import scatter_sum
from equinnp.postprocessing import registry
from equinnp.postprocessing.base import EnergyTerm
from equinnp.testing.strategies import random_crystal

ELEMENTS = [1, 6, 7, 8]


class PairRepulsion(EnergyTerm):
    """A test-only pair term with its own cutoff: E_i = 1/2 Σ_j a (r_c - r_ij)² / r_ij."""

    name = "pair_repulsion"

    def __init__(self, elements, cutoff: float = 6.0, strength: float = 0.01):
        super().__init__()
        self.cutoff, self.strength = float(cutoff), float(strength)
        self.seen_lengths = None

    def config(self):
        return {"cutoff": self.cutoff, "strength": self.strength}

    def forward(self, graph, atomic):
        self.seen_lengths = graph.edge_length.detach()
        r = graph.edge_length.double()
        pair = 0.5 * self.strength * (self.cutoff - r) ** 2 / r  # [E]
        return scatter_sum(pair, graph.edge_index[1], graph.species.shape[0])  # [N]


@pytest.fixture
def with_pair_term(monkeypatch):
    monkeypatch.setitem(registry.ENERGY_TERMS, PairRepulsion.name, PairRepulsion)


def build(**extra):
    torch.manual_seed(0)
    return equinnp.build_potential("schnet", elements=ELEMENTS, cutoff=4.0, dtype="float64",
                                   reference_energies={1: -13.6, 6: -1029.5, 7: -1485.3, 8: -2042.6},
                                   **equinnp.ARCHITECTURES["schnet"].tiny, **extra).eval()


def test_energy_is_the_network_part_plus_each_term(rmd17_frames):
    pot = build()
    batch = Batch.from_data_list(rmd17_frames[:3])
    out = pot(batch)
    assert set(out.energy_terms) == {"reference_energies"}
    counts = torch.stack([torch.tensor([float((d.z == z).sum()) for z in ELEMENTS]) for d in rmd17_frames[:3]]).double()
    expected_reference = counts @ pot.reference_energies.energies
    torch.testing.assert_close(out.energy_terms["reference_energies"], expected_reference, rtol=1e-15, atol=0)
    network = pot.model(pot_graph(pot, batch)).energy.double() * pot.scale_shift.scale[0]
    torch.testing.assert_close(out.energy - expected_reference, scatter_sum(network, batch.batch, 3), rtol=0, atol=1e-11)  # totals ~4e3 eV


def pot_graph(pot, batch):
    from equinnp.models.base import Graph

    nl = radius_graph(batch.pos, pot.cutoff, batch=batch.batch)
    j, i = nl.edge_index
    vec = batch.pos[j] - batch.pos[i]
    return Graph(species=pot._species(batch.z), z=batch.z, pos=batch.pos, edge_index=nl.edge_index, edge_vec=vec,
                 edge_length=vec.norm(dim=-1), batch=batch.batch, num_graphs=batch.num_graphs)


def test_one_search_at_the_largest_cutoff_and_a_view_per_consumer(with_pair_term, rmd17_frames, monkeypatch):
    import equinnp.potential as potential_module

    plain = build()
    pot = build(postprocessing={"energy_terms": ["reference_energies", {"name": "pair_repulsion", "cutoff": 6.0}]})
    pot.load_state_dict(plain.state_dict())
    assert pot.search_cutoff == 6.0 and pot.cutoff == 4.0
    calls = []
    original = potential_module.radius_graph
    monkeypatch.setattr(potential_module, "radius_graph", lambda pos, cutoff, **k: calls.append(cutoff) or original(pos, cutoff, **k))
    data = rmd17_frames[3]  # aspirin: pairs beyond 4 Å and beyond 6 Å
    out = pot(data)
    assert calls == [6.0]  # one search, at the largest cutoff
    term = pot.pair_repulsion
    lengths = torch.pdist(data.pos)
    assert term.seen_lengths.numel() == 2 * int((lengths <= 6.0).sum())  # the term sees its own pairs
    r = lengths[lengths <= 6.0]
    expected_term = (0.01 * (6.0 - r) ** 2 / r).sum()  # each pair once (two halves)
    torch.testing.assert_close(out.energy_terms["pair_repulsion"][0], expected_term, rtol=1e-12, atol=0)
    # the network sees only its 4 Å pairs: the same energy as without the term, plus the term
    torch.testing.assert_close(out.energy - expected_term, plain(data).energy, rtol=1e-13, atol=0)


def test_stages_are_saved_and_rebuilt_by_name(with_pair_term, rmd17_frames, tmp_path):
    pot = build(postprocessing={"energy_terms": ["reference_energies", {"name": "pair_repulsion", "cutoff": 5.0, "strength": 0.02}]})
    pot.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert payload["config"]["postprocessing"] == {
        "transforms": [{"name": "scale_shift"}],
        "energy_terms": [{"name": "reference_energies"}, {"name": "pair_repulsion", "cutoff": 5.0, "strength": 0.02}],
    }
    loaded = equinnp.load_potential(tmp_path / "m.pt")
    assert loaded.energy_term_names == ["reference_energies", "pair_repulsion"] and loaded.pair_repulsion.strength == 0.02
    torch.testing.assert_close(loaded(rmd17_frames[0]).energy, pot(rmd17_frames[0]).energy, rtol=0, atol=0)


def test_unknown_stage_names_are_refused():
    with pytest.raises(ValueError, match="unknown energy term 'coulmb'"):
        build(postprocessing={"energy_terms": ["coulmb"]})
    with pytest.raises(ValueError, match="unknown postprocessing key 'terms'"):
        build(postprocessing={"terms": []})


@pytest.mark.parametrize("length", [2.5, 3.5, 6.0])  # 2.5 Å: several images of every pair, and self-images
def test_reverse_edges_are_exact_in_small_cells(length):
    crystal = random_crystal(3, [1, 6, 8], 2 if length < 3 else 4, length=length)
    nl = radius_graph(crystal.pos, 4.0, cell=crystal.cell, pbc=crystal.pbc)
    reverse = reverse_edges(nl.edge_index, nl.cell_shifts, crystal.num_nodes)
    assert torch.equal(nl.edge_index[:, reverse], nl.edge_index.flip(0))
    assert torch.equal(nl.cell_shifts[reverse], -nl.cell_shifts)
    assert torch.equal(reverse[reverse], torch.arange(reverse.numel()))
    with pytest.raises(ValueError, match="has no reverse edge"):
        reverse_edges(nl.edge_index[:, 1:], nl.cell_shifts[1:], crystal.num_nodes)


def test_graph_fields_and_views(rmd17_frames):
    seen = {}

    class Recorder(SchNet):
        needs_reverse_edges = True

        def forward(self, graph):
            seen["graph"] = graph
            return super().forward(graph)

    model = Recorder(cutoff=4.0, elements=ELEMENTS, **SchNet.tiny)
    pot = equinnp.Potential(model, architecture="schnet").double()
    crystal = random_crystal(5, [1, 6, 8], 3, length=3.0)
    pot(crystal)
    graph = seen["graph"]
    assert graph.cell.shape == (1, 3, 3) and graph.pbc.shape == (1, 3) and graph.cell_shifts.shape == (graph.edge_index.shape[1], 3)
    assert torch.equal(graph.edge_index[:, graph.reverse_edge], graph.edge_index.flip(0))
    assert torch.equal(graph.edge_index[1], graph.edge_index[1].sort().values)  # sorted by center
    assert graph.charge.tolist() == [0.0] and graph.spin.tolist() == [1.0]  # the documented defaults
    view = graph.within(2.0)
    assert bool((view.edge_length <= 2.0).all()) and view.edge_length.numel() < graph.edge_length.numel()
    assert torch.equal(view.edge_index[:, view.reverse_edge], view.edge_index.flip(0))
    assert torch.equal(view.cell_shifts[view.reverse_edge], -view.cell_shifts)
    charged = Data(z=rmd17_frames[0].z, pos=rmd17_frames[0].pos, charge=torch.tensor([1.0]), spin=torch.tensor([2.0]))
    pot(charged)
    assert seen["graph"].charge.tolist() == [1.0] and seen["graph"].spin.tolist() == [2.0]


def test_a_model_that_requires_a_charge_refuses_a_batch_without_one(rmd17_frames):
    class NeedsCharge(SchNet):
        requires_charge = True

        def forward(self, graph):
            out = super().forward(graph)
            return AtomicOutput(energy=out.energy + graph.charge[graph.batch])

    pot = equinnp.Potential(NeedsCharge(cutoff=4.0, elements=ELEMENTS, **SchNet.tiny), architecture="schnet").double()
    data = Data(z=rmd17_frames[0].z, pos=rmd17_frames[0].pos)
    with pytest.raises(ValueError, match="needs the total charge of every system: set data.charge"):
        pot(data)
    data.charge = torch.tensor([-1.0])
    pot(data)
    assert not equinnp.ARCHITECTURES["schnet"].requires_charge


def test_brute_force_reference_is_symmetric():
    pos = torch.rand(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 4
    nl = brute_force_radius_graph(pos, 2.5)
    reverse = reverse_edges(nl.edge_index, nl.cell_shifts, 12)
    assert torch.equal(nl.edge_index[:, reverse], nl.edge_index.flip(0))


def test_forces_include_the_terms(with_pair_term, rmd17_frames):
    from equinnp.testing import contract

    pot = build(postprocessing={"energy_terms": ["reference_energies", {"name": "pair_repulsion", "cutoff": 6.0, "strength": 0.5}]})
    contract.check_finite_difference_forces(pot, rmd17_frames[3], atoms=range(4))

"""One validator for atoms and cells: from_arrays, the neighbor list and Potential accept and refuse alike."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import equinnp
from equinnp.data import from_arrays
from equinnp.neighbors import radius_graph

POS = np.array([[0.0, 0.0, 0.0], [1.1, 0.3, 0.2], [0.4, 1.2, 0.9]])


@pytest.fixture(scope="module")
def pot():
    return equinnp.build_potential("schnet", elements=[1, 6], cutoff=3.0, dtype="float64", **equinnp.ARCHITECTURES["schnet"].tiny)


def three_layers(pot, cell, pbc, layers=3):
    """The outcome (None or the error message) of each layer for the same structure."""
    outcomes = []
    for check in (
        lambda: from_arrays([6, 1, 1], POS, cell=cell, pbc=pbc, dtype=torch.float64),
        lambda: radius_graph(torch.tensor(POS), 3.0, cell=torch.tensor(cell).reshape(1, 3, 3), pbc=torch.tensor([pbc])),
        lambda: pot(Data(z=torch.tensor([6, 1, 1]), pos=torch.tensor(POS), cell=torch.tensor(cell).reshape(1, 3, 3),
                         pbc=torch.tensor([pbc]))),
    )[:layers]:
        try:
            check()
            outcomes.append(None)
        except ValueError as error:
            outcomes.append(str(error))
    return outcomes


@pytest.mark.parametrize("cell, pbc, refused", [
    (np.eye(3) * 4.0, [True] * 3, False),
    (np.array([[4.0, 0, 0], [4.0, 1e-12, 0], [0, 0, 4.0]]), [True] * 3, True),
    (np.array([[4.0, 0, 0], [0, 4.0, 0], [0, 0, 0.0]]), [True, True, False], False),  # a slab without vacuum row
    (np.array([[4.0, 0, 0], [0, 0, 0], [0, 0, 0.0]]), [True, True, False], True),
])
def test_layers_agree(pot, cell, pbc, refused):
    outcomes = three_layers(pot, cell, pbc)
    if refused:
        assert all(o is not None and "has zero volume in its periodic directions" in o for o in outcomes), outcomes
    else:
        assert outcomes == [None] * len(outcomes)


def test_zero_and_non_integer_atomic_numbers_are_refused(pot):
    with pytest.raises(ValueError, match="atomic number 0 is not an element"):
        from_arrays([6, 0, 1], POS)
    with pytest.raises(ValueError, match="atomic number 0 is not an element"):
        pot(Data(z=torch.tensor([6, 0, 1]), pos=torch.tensor(POS)))
    with pytest.raises(ValueError, match="atomic numbers must be integers"):
        pot(Data(z=torch.tensor([6.0, 1.0, 1.0]), pos=torch.tensor(POS)))


def test_stress_of_a_slab_without_a_vacuum_vector_is_undefined(pot):
    slab = Data(z=torch.tensor([6, 1, 1]), pos=torch.tensor(POS), cell=torch.tensor([[[4.0, 0, 0], [0, 4.0, 0], [0, 0, 0.0]]]),
                pbc=torch.tensor([[True, True, False]]))
    out = pot(slab)
    assert torch.isfinite(out.energy).all() and torch.isfinite(out.forces).all()
    assert torch.isnan(out.stress).all()
    slab.cell[0, 2, 2] = 20.0  # with a vacuum row: the cell's volume, vacuum included (as ASE)
    assert torch.isfinite(pot(slab).stress).all()


def test_a_cell_far_smaller_than_the_cutoff_is_refused_before_any_search(pot):
    tiny = np.eye(3) * 4e-3  # a cell in the wrong unit: not degenerate, but 1e9 images per atom
    assert three_layers(pot, tiny, [True] * 3, layers=1) == [None]  # a valid cell as such
    for outcome in three_layers(pot, tiny, [True] * 3)[1:]:
        assert "only 0.004 Å wide between lattice planes" in outcome and "periodic images" in outcome


def test_stress_of_a_batch_of_crystals_and_an_open_system(pot):
    from torch_geometric.data import Batch

    from equinnp.testing.strategies import random_crystal

    crystals = [random_crystal(seed, [1, 6], 3, length=4.0) for seed in range(4)]
    molecule = Data(z=torch.tensor([6, 1, 1]), pos=torch.tensor(POS), cell=torch.zeros(1, 3, 3), pbc=torch.zeros(1, 3, dtype=torch.bool))
    batch = Batch.from_data_list(crystals + [molecule])
    stress = pot(batch).stress
    assert stress.shape == (5, 3, 3) and torch.isfinite(stress).all() and stress[-1].abs().max() == 0
    for k, crystal in enumerate(crystals):
        torch.testing.assert_close(stress[k], pot(crystal).stress[0], rtol=1e-10, atol=1e-12)

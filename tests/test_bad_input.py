"""Bad input gets a ValueError naming the problem and the value."""

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import equinnp
from equinnp.data import from_arrays


@pytest.fixture(scope="module")
def pot():
    return equinnp.build_potential("schnet", elements=[1, 6, 8], **equinnp.ARCHITECTURES["schnet"].tiny).eval()


WATER = dict(z=[8, 1, 1], pos=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])


def test_unknown_element(pot):
    with pytest.raises(ValueError, match=r"element N \(Z=7\) is not one this schnet model was built for"):
        pot(from_arrays([8, 1, 7], WATER["pos"]))


def test_not_an_element():
    with pytest.raises(ValueError, match="atomic number 200 is not an element"):
        from_arrays([8, 1, 200], WATER["pos"])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_position(pot, bad):
    pos = np.array(WATER["pos"])
    pos[1, 2] = bad
    with pytest.raises(ValueError, match="position of atom 1 is not finite"):
        from_arrays(WATER["z"], pos)
    with pytest.raises(ValueError, match="position of atom 1 is not finite"):
        pot(Data(z=torch.tensor(WATER["z"]), pos=torch.tensor(pos, dtype=torch.float32)))


def test_atoms_on_top_of_each_other(pot):
    pos = np.array(WATER["pos"])
    pos[2] = pos[1] + 0.01
    with pytest.raises(ValueError, match=r"atoms \d and \d are 0.0173 Å apart"):
        pot(from_arrays(WATER["z"], pos))


def test_zero_volume_cell(pot):
    with pytest.raises(ValueError, match="zero volume"):
        from_arrays(WATER["z"], WATER["pos"], cell=[[3.0, 0, 0], [0, 3.0, 0], [0, 0, 0]], pbc=True)
    data = Data(z=torch.tensor(WATER["z"]), pos=torch.tensor(WATER["pos"]), cell=torch.zeros(1, 3, 3), pbc=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="zero volume"):
        pot(data)


def test_nan_cell():
    cell = np.eye(3) * 5.0
    cell[0, 1] = np.nan
    with pytest.raises(ValueError, match="cell of system 0 is not finite"):
        from_arrays(WATER["z"], WATER["pos"], cell=cell, pbc=True)


def test_mismatched_shapes(pot):
    with pytest.raises(ValueError, match="3 atomic numbers but 2 positions"):
        from_arrays(WATER["z"], WATER["pos"][:2])
    with pytest.raises(ValueError, match=r"positions must have shape \[N, 3\]"):
        from_arrays(WATER["z"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"forces must have shape \(3, 3\)"):
        from_arrays(WATER["z"], WATER["pos"], forces=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="3 atomic numbers but 2 positions"):
        pot(Data(z=torch.tensor(WATER["z"]), pos=torch.zeros(2, 3)))


def test_unknown_hyperparameter():
    with pytest.raises(ValueError, match="unknown hyperparameter for 'schnet': 'hiden_channels'. Did you mean 'hidden_channels'"):
        equinnp.build_potential("schnet", hiden_channels=8)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture 'pain'. Did you mean 'painn'"):
        equinnp.build_potential("pain")


def test_bad_elements_and_cutoff():
    with pytest.raises(ValueError, match="cutoff must be positive"):
        equinnp.build_potential("schnet", cutoff=-1.0)
    with pytest.raises(ValueError, match="elements has duplicates"):
        equinnp.build_potential("schnet", elements=[1, 1, 6])


def test_atomic_number_zero_is_refused_by_the_potential(pot):
    from torch_geometric.data import Data

    data = Data(z=torch.tensor([8, 0, 1]), pos=torch.tensor(WATER["pos"], dtype=torch.float32))
    with pytest.raises(ValueError, match="atomic number 0 is not an element"):
        pot(data)

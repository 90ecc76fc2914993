"""``Potential.hessian``: chunked and row-by-row equal the one-pass result, batches have zero cross blocks.

Its agreement with finite differences of the forces is part of the contract
(``test_contract.py``), for every architecture.
"""

import pytest
import torch
from torch_geometric.data import Batch

import equinnp
from equinnp.data import from_ase
from equinnp.data.bundled import ethanol_atoms
from equinnp.hessian import default_chunk_size, hessian
from equinnp.testing.strategies import random_molecule


@pytest.fixture(scope="module")
def potential():
    torch.manual_seed(0)
    return equinnp.build_potential("schnet", cutoff=4.0, elements=[1, 6, 8], dtype="float64",
                                   **equinnp.ARCHITECTURES["schnet"].tiny).eval()


def test_chunks_and_single_rows_equal_one_pass(potential):
    data = from_ase(ethanol_atoms(), dtype=torch.float64)
    full = potential.hessian(data)
    assert full.shape == (27, 27) and full.abs().max() > 1e-3
    torch.testing.assert_close(hessian(potential, data, chunk_size=5), full, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hessian(potential, data, vectorize=False), full, rtol=1e-12, atol=1e-12)


def test_batch_hessian_is_block_diagonal(potential):
    first = from_ase(ethanol_atoms(), dtype=torch.float64)
    second = random_molecule(2, [1, 6, 8], 4)
    batched = potential.hessian(Batch.from_data_list([first, second]))
    assert batched.shape == (39, 39)
    torch.testing.assert_close(batched[:27, :27], potential.hessian(first), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(batched[27:, 27:], potential.hessian(second), rtol=1e-10, atol=1e-12)
    assert batched[:27, 27:].abs().max() == 0 and batched[27:, :27].abs().max() == 0


def test_inference_mode_and_bad_chunk_size(potential):
    data = from_ase(ethanol_atoms(), dtype=torch.float64)
    with torch.inference_mode():
        inside = potential.hessian(data)
    torch.testing.assert_close(inside, potential.hessian(data))
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, got 0"):
        potential.hessian(data, chunk_size=0)


def test_default_chunk_size_shrinks_with_the_graph():
    assert default_chunk_size(27, 100) == 27
    assert 1 <= default_chunk_size(3000, 10**6) < 3000

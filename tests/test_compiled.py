"""Compiled inference equals eager to 1e-6 relative and does not recompile as the edge count changes.

The default suite compiles with ``backend="aot_eager"`` (dynamo's graph capture
with dynamic shapes and AOTAutograd's backward, without inductor's C++ build,
which takes minutes on a shared 2-core machine); the ``slow`` tests use
inductor, for every architecture. Speed: ``benchmarks/compiled_inference.py``.
"""

import numpy as np
import pytest
import torch
import torch._dynamo

import equinnp
from equinnp.calculators import EquinnpCalculator
from equinnp.compiled import INDUCTOR_WRONG_FORCES, compile_potential
from equinnp.data import from_ase
from equinnp.data.bundled import ethanol_atoms


def pair(name, backend, **overrides):
    hyper = {**equinnp.ARCHITECTURES[name].tiny, **overrides}
    torch.manual_seed(0)
    eager = equinnp.build_potential(name, cutoff=4.0, elements=[1, 6, 8], dtype="float64", **hyper).eval()
    compiled = equinnp.build_potential(name, cutoff=4.0, elements=[1, 6, 8], dtype="float64", **hyper).eval()
    compiled.load_state_dict(eager.state_dict())
    return eager, compile_potential(compiled, backend=backend)


def assert_matches_eager(eager, compiled, frames=5):
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    rng = np.random.default_rng(0)
    edge_counts = set()
    compiled_after_first = None
    for k in range(frames):
        atoms = ethanol_atoms()
        atoms.positions *= 1.0 + 0.15 * k  # stretched: fewer pairs within the cutoff each time
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        data = from_ase(atoms, dtype=torch.float64)
        e, c = eager(data), compiled(data)
        torch.testing.assert_close(c.energy, e.energy, rtol=1e-6, atol=0.0)
        torch.testing.assert_close(c.forces, e.forces, rtol=1e-6, atol=1e-6 * float(e.forces.abs().max()))
        from equinnp.neighbors import radius_graph

        edge_counts.add(radius_graph(data.pos, 4.0).edge_index.shape[1])
        if k == 0:
            compiled_after_first = torch._dynamo.utils.counters["frames"]["total"]  # frames dynamo compiled
    assert len(edge_counts) >= 3
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    # recompilations: the first frame compiles; dynamic shapes keep later edge counts on the same graphs
    # (at most one recompiled frame: MACE's one-time avg_num_neighbors check flips a guard on frame 2)
    assert compiled_after_first >= 1
    assert torch._dynamo.utils.counters["frames"]["total"] - compiled_after_first <= 1


def test_calculator_compile_option_equals_eager_without_recompiling():
    # through the calculator: the weights keep their names, results equal eager's, no recompilation
    eager, _ = pair("schnet", "aot_eager")
    calculator = EquinnpCalculator(pair("schnet", "aot_eager")[0], compile="aot_eager", skin=0.0)
    assert set(calculator.potential.state_dict()) == set(eager.state_dict())
    assert_matches_eager(eager, calculator.potential)


@pytest.mark.slow  # dynamo traces MACE's 14 graphs: 30-40 s of CPU even with aot_eager
def test_mace_compiles_equal_to_eager_without_recompiling():
    # e3nn Irreps stay out of MACE's forward pass (dynamo cannot guard on them); graph breaks remain
    # (smaller than the tiny set, l_max 1, to keep dynamo's tracing short; vectors 1o stay in the features)
    assert_matches_eager(*pair("mace", "aot_eager", max_ell=1, hidden_irreps="4x0e + 4x1o"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(equinnp.ARCHITECTURES))
def test_inductor_equals_eager(name):
    if name in INDUCTOR_WRONG_FORCES:  # refused (test_inductor_refused_where_its_forces_are_wrong)
        with pytest.raises(ValueError, match=f"wrong forces for {name}"):
            pair(name, "inductor")
        return
    assert_matches_eager(*pair(name, "inductor"))


def test_inductor_refused_where_its_forces_are_wrong():
    # SAKE under inductor: energies equal eager's, forces up to 3e-2 off (float64 too; torch 2.13 CPU)
    with pytest.raises(ValueError, match="inductor gives wrong forces for sake .* compile='aot_eager'"):
        pair("sake", "inductor")
    with pytest.raises(ValueError, match="wrong forces for sake"):
        EquinnpCalculator(equinnp.build_potential("sake", elements=[1, 6, 8]), compile=True)
    eager, compiled = pair("sake", "aot_eager")  # the other backends are allowed
    assert_matches_eager(eager, compiled)


def test_mace_traces_under_dynamo():
    # The default run's check of the slow test above: dynamo traces MACE's forward pass (it used to
    # stop at its first call, guarding on an e3nn Irrep) and gives eager's numbers; backend "eager"
    # skips the graph compilers, so this takes seconds.
    assert_matches_eager(*pair("mace", "eager", max_ell=1, hidden_irreps="4x0e + 4x1o"), frames=3)

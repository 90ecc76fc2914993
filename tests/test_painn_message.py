"""The fused PaiNN message (``equinnp.nn.painn_message``) against its composite definition:
values, first and second derivatives (gradcheck, gradgradcheck), vectorized Hessians, and the model both ways
(eval mode; training mode runs the composite)."""

import copy

import pytest
import torch

import equinnp
from equinnp.models import painn
from equinnp.data import from_ase
from equinnp.data.bundled import ethanol_atoms
from equinnp.hessian import hessian
from equinnp.nn.painn_message import painn_message_sum, painn_message_sum_reference


def inputs(num_nodes=5, num_edges=11, F=4, seed=0, zero_vectors=False):
    g = torch.Generator().manual_seed(seed)
    j = torch.randint(0, num_nodes, (num_edges,), generator=g)
    i = torch.randint(0, num_nodes, (num_edges,), generator=g)
    context = torch.randn(num_nodes, 3 * F, generator=g, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(num_edges, 3 * F, generator=g, dtype=torch.float64, requires_grad=True)
    mu = None if zero_vectors else torch.randn(num_nodes, 3, F, generator=g, dtype=torch.float64, requires_grad=True)
    edge_dir = torch.randn(num_edges, 3, generator=g, dtype=torch.float64, requires_grad=True)
    return context, filters, mu, edge_dir, j, i, num_nodes


@pytest.mark.parametrize("zero_vectors", [False, True])
def test_values_and_derivatives_equal_the_composite(zero_vectors):
    args = inputs(zero_vectors=zero_vectors)
    for fused, reference in zip(painn_message_sum(*args), painn_message_sum_reference(*args)):
        torch.testing.assert_close(fused, reference, rtol=1e-13, atol=1e-13)
    differentiable = [a for a in args[:4] if a is not None]

    def fused(*tensors):
        full = list(tensors)
        if zero_vectors:
            full.insert(2, None)
        return painn_message_sum(*full, *args[4:])

    assert torch.autograd.gradcheck(fused, differentiable)
    assert torch.autograd.gradgradcheck(fused, differentiable)
    # the derivatives equal autograd's of the definition, not only finite differences
    weights = [torch.randn_like(out) for out in painn_message_sum(*args)]
    ours = torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, painn_message_sum(*args))), differentiable)
    theirs = torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, painn_message_sum_reference(*args))),
                                 differentiable)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-13)


def test_painn_fused_and_propagate_give_the_same_energy_forces_and_hessian(monkeypatch):
    monkeypatch.setattr(painn, "FUSED_MIN_EDGES", 1)  # ethanol's 72 edges take the fused path
    calls = []
    original = painn.painn_message_sum
    monkeypatch.setattr(painn, "painn_message_sum", lambda *args: calls.append(1) or original(*args))
    torch.manual_seed(0)
    fused = equinnp.build_potential("painn", elements=[1, 6, 8], dtype="float64",
                                    **equinnp.ARCHITECTURES["painn"].tiny).eval()
    plain = copy.deepcopy(fused)
    for message in plain.model.messages:
        message.fused = False
    data = from_ase(ethanol_atoms(), dtype=torch.float64)
    a, b = fused(data), plain(data)
    assert len(calls) == len(fused.model.messages)
    torch.testing.assert_close(a.energy, b.energy, rtol=1e-13, atol=0)
    torch.testing.assert_close(a.forces, b.forces, rtol=1e-12, atol=1e-13)
    # vmap batches the fused backward: the vectorized Hessian needs no row-by-row fallback
    torch.testing.assert_close(hessian(fused, data, vectorize=True), plain.hessian(data), rtol=1e-10, atol=1e-11)
    fused.train()  # training mode runs the composite (the faster one under create_graph)
    before = len(calls)
    fused(data)
    assert len(calls) == before

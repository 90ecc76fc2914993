"""Deliberately broken layers: each contract check must reject the one made for it.

Each is SchNet (or its potential) with one bug of a kind seen in real
potentials, small enough that the energies stay plausible.
``test_contract_controls.py`` lists which checks must reject each one and
shows that the other checks let it through, so that the checks are specific.
"""

import math

import torch
from torch import nn

import equinnp
from equinnp.models.base import AtomicOutput
from equinnp.models.schnet import SchNet
from equinnp.nn.scatter import scatter_sum

CUTOFF = 4.0
ELEMENTS = [1, 6, 7, 8]


class StepCutoff(nn.Module):
    """No envelope at all: 1 inside the cutoff, 0 beyond (the energy jumps as a pair enters)."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, r):
        return (r < self.cutoff).to(r.dtype)


class LinearCutoff(nn.Module):
    """An envelope that reaches zero with a non-zero slope, 1 - r / r_c: continuous energy, jumping forces."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = cutoff

    def forward(self, r):
        return (1.0 - r / self.cutoff) * (r < self.cutoff).to(r.dtype)


class Detached(nn.Module):
    """Applies a module to a detached input: gradients do not flow through it."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x.detach())


class NoEnvelopeSchNet(SchNet):
    """SchNet without a cutoff envelope (filters multiplied by a step function)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cutoff_fn = StepCutoff(self.cutoff)


class C0EnvelopeSchNet(SchNet):
    """SchNet with an envelope that is continuous but not differentiable at the cutoff."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cutoff_fn = LinearCutoff(self.cutoff)


class DetachedDistanceSchNet(SchNet):
    """SchNet whose radial basis sees detached distances (a ``.detach()`` left on the edge vectors):
    the energy is right, the forces miss the radial basis' share."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.distance_expansion = Detached(self.distance_expansion)


class AtomIndexSchNet(SchNet):
    """SchNet whose atomic energies are weighted by the atom's row in the batch, 1 + 0.01 i:
    changed by relabelling atoms and by putting the system after others in a batch."""

    def forward(self, graph):
        out = super().forward(graph)
        index = torch.arange(out.energy.shape[0], dtype=out.energy.dtype, device=out.energy.device)
        return AtomicOutput(energy=out.energy * (1.0 + 0.01 * index))


class AbsolutePositionSchNet(SchNet):
    """SchNet with a term in the atoms' absolute positions, 0.01 |r_i|²: invariant under rotations
    about the origin and under permutations, but not under translations."""

    def forward(self, graph):
        out = super().forward(graph)
        return AtomicOutput(energy=out.energy + 0.01 * (graph.pos**2).sum(dim=-1))


class OctahedralLeakSchNet(SchNet):
    """SchNet whose distances leak 0.05 (x⁴ + y⁴ + z⁴) / r³ of the pair vector, times the envelope:
    invariant under the 48 signed permutations of the axes (the octahedral group, reflections
    included) and under translations and permutations, changed by every other orthogonal matrix."""

    def forward(self, graph):
        x, y, z = graph.edge_vec.unbind(-1)
        leak = 0.05 * (x**4 + y**4 + z**4) / graph.edge_length**3 * self.cutoff_fn(graph.edge_length)
        return super().forward(graph._replace(edge_length=graph.edge_length + leak))


class CrossTalkSchNet(SchNet):
    """SchNet that adds the mean position of the whole batch to each atomic energy."""

    def forward(self, graph):
        out = super().forward(graph)
        return AtomicOutput(energy=out.energy + 0.01 * graph.pos.mean(dim=0).norm())


class MeanReadoutSchNet(SchNet):
    """SchNet with an intensive readout: atomic energies divided by the number of atoms of their
    system, so that energies do not add over separated parts, supercells or distant atoms."""

    def forward(self, graph):
        out = super().forward(graph)
        ones = torch.ones_like(out.energy)
        count = scatter_sum(ones, graph.batch, graph.num_graphs)  # [B]
        return AtomicOutput(energy=out.energy / count[graph.batch])


class _FirstOrderSoftplusFunction(torch.autograd.Function):
    """ssp(x) with a hand-written backward that is right once but not differentiable again
    (it reads a detached input), as custom kernels without a double backward are."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.nn.functional.softplus(x) - math.log(2.0)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(x.detach())


class FirstOrderSoftplus(nn.Module):
    def forward(self, x):
        return _FirstOrderSoftplusFunction.apply(x)


class FirstOrderFilterSchNet(SchNet):
    """SchNet whose filter networks' activation has a backward without a second derivative:
    energy and forces are right, the Hessian misses the activation's curvature."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for interaction in self.interactions:
            interaction.conv.filter_net[1] = FirstOrderSoftplus()


class VirialSignPotential(equinnp.Potential):
    """A potential that returns the virial, :math:`-\\partial E / \\partial \\varepsilon / V`, as the stress:
    the sign convention confused (positive under compression instead of tension)."""

    def forward(self, data, compute_forces=True, compute_stress=None):
        out = super().forward(data, compute_forces, compute_stress)
        return out if out.stress is None else out._replace(stress=-out.stress)


def broken_potential(cls, potential_cls=equinnp.Potential, **hyperparameters):
    """A float64 potential around ``cls`` (a SchNet variant) with tiny hyperparameters and
    non-zero biases, scale, shift and reference energies, like the contract's potentials."""
    torch.manual_seed(0)
    model = cls(cutoff=CUTOFF, elements=ELEMENTS, **{**SchNet.tiny, **hyperparameters})
    potential = potential_cls(
        model, architecture="broken", scale=[0.5, 1.5, 1.2, 0.8], shift=[-0.1, 0.2, 0.0, 0.3],
        reference_energies={1: -13.6, 6: -1030.0, 7: -1485.0, 8: -2040.0},
    ).double()
    with torch.no_grad():
        for parameter in potential.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return potential.eval()


# ------------------------------------------------------- charge-predicting layers
class PositionalChargeSchNet(SchNet):
    """SchNet with a charge head whose raw charges read the absolute x coordinate: the total
    charge is still conserved (by the transform), but the charges are not invariant."""

    def forward(self, graph):
        out = super().forward(graph)
        return out._replace(charges=out.charges + 0.05 * graph.pos[:, 0])


class OriginDipolePotential(equinnp.Potential):
    """A potential whose dipole is :math:`\\sum_i q_i \\mathbf r_i` about the coordinate origin: it moves
    with a charged molecule (not translation invariant)."""

    def forward(self, data, compute_forces=True, compute_stress=None):
        out = super().forward(data, compute_forces, compute_stress)
        batch = getattr(data, "batch", None)
        batch = torch.zeros_like(data.z) if batch is None else batch
        dipole = scatter_sum(out.charges.unsqueeze(-1) * data.pos.double(), batch, out.energy.shape[0])  # [B, 3]
        return out._replace(dipole=dipole)


def broken_charge_potential(cls=SchNet, potential_cls=equinnp.Potential, conserve: bool = True):
    """A float64 potential around ``cls`` with a charge head and (``conserve``) the uniform
    charge-conservation transform, like the contract's charge potentials."""
    from equinnp.postprocessing import ElementScaleShift, UniformChargeConservation

    torch.manual_seed(0)
    model = cls(cutoff=CUTOFF, elements=ELEMENTS, charge_head=True, charge_embedding=True, **SchNet.tiny)
    transforms = [ElementScaleShift(len(ELEMENTS))] + ([UniformChargeConservation()] if conserve else [])
    potential = potential_cls(model, architecture="broken", transforms=transforms).double()
    with torch.no_grad():
        for parameter in potential.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return potential.eval()

"""Deliberately broken architectures: the contract checks must reject each of them."""

from equinnp.models.base import AtomicOutput
from equinnp.models.schnet import SchNet


class RotationBrokenSchNet(SchNet):
    """SchNet whose distances leak the x component of the pair vector: translation- and
    permutation-invariant, but not rotation-invariant."""

    def forward(self, graph):
        leaky = graph._replace(edge_length=graph.edge_length + 0.05 * graph.edge_vec[:, 0] * self.cutoff_fn(graph.edge_length))
        return super().forward(leaky)


class CrossTalkSchNet(SchNet):
    """SchNet that adds the mean position of the whole batch to each atomic energy."""

    def forward(self, graph):
        out = super().forward(graph)
        return AtomicOutput(energy=out.energy + 0.01 * graph.pos.mean(dim=0).norm())

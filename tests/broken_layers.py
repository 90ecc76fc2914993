"""Deliberately broken architectures: the contract checks must reject each of them."""

from equinnp.models.base import AtomicOutput
from equinnp.models.schnet import SchNet


class RotationBrokenSchNet(SchNet):
    """SchNet whose distances leak f(r_ij) = x + y² + z³ of the pair vector: translation- and
    permutation-invariant, but changed by every orthogonal matrix other than the identity
    and the diagonal sign flips (f would be unchanged by a rotation about one axis if it
    used only one component)."""

    def forward(self, graph):
        x, y, z = graph.edge_vec.unbind(-1)
        leak = 0.05 * (x + y**2 + z**3) * self.cutoff_fn(graph.edge_length)
        return super().forward(graph._replace(edge_length=graph.edge_length + leak))


class CrossTalkSchNet(SchNet):
    """SchNet that adds the mean position of the whole batch to each atomic energy."""

    def forward(self, graph):
        out = super().forward(graph)
        return AtomicOutput(energy=out.energy + 0.01 * graph.pos.mean(dim=0).norm())

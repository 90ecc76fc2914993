r"""MACE: higher-order equivariant message passing (Batatia, Kovács, Simm, Ortner,
Csányi, NeurIPS 2022, "MACE: Higher Order Equivariant Message Passing Neural
Networks for Fast and Accurate Force Fields"), an atomic cluster expansion
(Drautz 2019) with learned, message-passed one-particle bases.

Per layer t (paper eq. 8-13; blocks in ``equinnp.nn.mace_blocks``):

.. math::
    A^{(t)}_{i} = \frac{1}{\bar n}\, W \sum_j R^{(t)}(r_{ij}) \left(Y(\hat r_{ij}) \otimes U h^{(t)}_j\right)
    \qquad
    h^{(t+1)}_i = W' \sum_{\nu \le \nu_{max}} \mathcal{U}^{(\nu)} w^{(\nu)}_{z_i} A_i^{\otimes\nu}
                  + \mathrm{FCTP}(h^{(t)}_i, \delta_{z_i})

    E_i = \sum_t \mathcal{R}^{(t)}(h^{(t+1)}_i)

with :math:`Y` real spherical harmonics (component normalization) of the
edge direction, :math:`R` an MLP of the Bessel basis times the polynomial
envelope, :math:`\bar n` the average number of neighbors (a buffer the
trainer sets, :meth:`MACE.set_avg_num_neighbors`), readouts :math:`\mathcal R`
linear except the last (MLP with SiLU). The last layer keeps only scalars. The
element reference energies E0 and any scale/shift belong to ``Potential``.

Differences from mace-torch 0.3.16 (``ScaleShiftMACE`` with the default
``RealAgnosticResidualInteractionBlock`` in every layer), none of which changes
the functions the model can represent:

- The symmetric contraction uses its own basis (``equinnp.nn.symmetric_contraction``):
  independent symmetrized coupling paths, unit norm, evaluated path by path.
  mace-torch stacks all coupling paths (more weights, linearly dependent).
  Weights map exactly from mace-torch's basis (``tests/test_mace.py``).
- Edge vectors follow equinnp: :math:`Y(\hat r_{ij})` with
  ``r_ij = pos[j] - pos[i]``; mace-torch uses ``pos[i] - pos[j]``, i.e. the
  odd-l harmonics change sign, which the radial MLP's last layer absorbs
  (columns of odd-l paths negated when importing weights).
- The Bessel frequencies are trainable (mace-torch's default keeps them fixed).
- Same numbers, different evaluation order: features between the blocks are
  component-major [2l+1, N, C]; the neighbor sum is fused (padded neighbor
  table, batched matrix products, Clebsch-Gordan contraction per atom), see
  ``AtomicBasis.message_and_aggregate``.

``avg_num_neighbors`` is a buffer (saved with the weights): a trainer sets it to
the training set's mean number of neighbors within the cutoff with
``model.set_avg_num_neighbors(value)``; the constructor argument is its
initial value.

Shapes: ``Graph`` with N atoms, E edges → ``AtomicOutput.energy`` [N].
"""

from __future__ import annotations

import warnings
from typing import List, Sequence, Tuple

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import Tensor, nn

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn import BesselRBF, PolynomialCutoff
from equinnp.nn.irreps import from_components, refresh_wigner_3j
from equinnp.nn.mace_blocks import AtomicBasis, ProductBasis

__all__ = ["MACE"]


class MACE(AtomisticModel):
    r"""MACE potential (see the module docstring for the equations).

    Parameters
    ----------
    cutoff : float
        Cutoff (Å) of the radial basis and the envelope (paper: 5 Å).
    elements : sequence of int
        Atomic numbers the model accepts.
    hidden_irreps : str
        Irreps of the node features, one multiplicity for all (paper:
        ``128x0e + 128x1o``; ``128x0e`` for the invariant-message variant).
    max_ell : int
        Highest degree of the spherical harmonics (paper: 3).
    correlation : int
        Highest power ν of the product basis; body order ν + 1 (paper: 3).
    num_interactions : int
        Number of layers (paper: 2).
    num_bessel : int
        Bessel functions of the radial basis (paper: 8).
    num_polynomial_cutoff : int
        Exponent p of the polynomial envelope (paper: 5).
    radial_mlp : list of int
        Hidden widths of the radial MLP (paper: [64, 64, 64]).
    readout_mlp : int
        Width of the last layer's readout MLP (mace-torch: 16).
    avg_num_neighbors : float
        Initial value of the neighbor-sum normalization; trainers overwrite it
        with the training set's mean with :meth:`set_avg_num_neighbors`. The
        value in effect is the buffer ``avg_num_neighbors`` (saved with the weights).
    """

    paper = (
        "Batatia, Kovács, Simm, Ortner, Csányi, MACE: Higher Order Equivariant Message Passing "
        "Neural Networks for Fast and Accurate Force Fields, NeurIPS 2022"
    )
    tiny = dict(hidden_irreps="8x0e + 8x1o", max_ell=2, correlation=2, num_interactions=2, num_bessel=6, radial_mlp=[16, 16])

    def __init__(
        self,
        *,
        cutoff: float = 5.0,
        elements: Sequence[int] = (1, 6, 7, 8),
        hidden_irreps: str = "128x0e + 128x1o",
        max_ell: int = 3,
        correlation: int = 3,
        num_interactions: int = 2,
        num_bessel: int = 8,
        num_polynomial_cutoff: int = 5,
        radial_mlp: Sequence[int] = (64, 64, 64),
        readout_mlp: int = 16,
        avg_num_neighbors: float = 1.0,
    ):
        super().__init__(cutoff=cutoff, elements=elements)
        hidden = o3.Irreps(hidden_irreps).simplify()
        channels = {mul for mul, _ in hidden}
        if len(channels) != 1 or hidden.count("0e") == 0:
            raise ValueError(f"hidden_irreps must have scalars (0e) and one multiplicity for every irrep, got {hidden_irreps!r}")
        if num_interactions < 1:
            raise ValueError(f"num_interactions must be >= 1, got {num_interactions}")
        if max_ell < 0:
            raise ValueError(f"max_ell must be >= 0, got {max_ell}")
        if not avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors}")
        C = channels.pop()
        E = self.num_elements
        self.hidden_irreps = hidden
        self.num_interactions = num_interactions
        self.register_buffer("avg_num_neighbors", torch.tensor(float(avg_num_neighbors)))

        irreps_sh = o3.Irreps.spherical_harmonics(max_ell)
        if hidden.count("0o") > 0:  # pseudo-scalars need both parities of every l
            irreps_sh_inter = o3.Irreps("+".join(f"1x{l}e+1x{l}o" for l in range(max_ell + 1)))
        else:
            irreps_sh_inter = irreps_sh
        irreps_A = (irreps_sh_inter * C).sort().irreps.simplify()
        scalars = o3.Irreps(f"{C}x0e")

        self.node_embedding = o3.Linear(o3.Irreps(f"{E}x0e"), scalars)
        self.radial_basis = BesselRBF(num_bessel, cutoff, normalize=True, trainable=True)
        self.envelope = PolynomialCutoff(cutoff, p=num_polynomial_cutoff)
        self.spherical_harmonics = o3.SphericalHarmonics(irreps_sh, normalize=True, normalization="component")

        self.interactions, self.products, self.readouts = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.irreps_A: List[o3.Irreps] = []
        self.irreps_h: List[o3.Irreps] = []
        irreps_in = scalars
        for t in range(num_interactions):
            last = t == num_interactions - 1
            irreps_out = scalars if last else hidden
            self.interactions.append(
                AtomicBasis(irreps_in, irreps_sh, irreps_A if t > 0 else (irreps_sh * C).sort().irreps.simplify(), irreps_out, E, num_bessel, list(radial_mlp))
            )
            self.products.append(ProductBasis(self.interactions[-1].irreps_target, irreps_out, correlation, E))
            if last:
                mlp = o3.Irreps(f"{readout_mlp}x0e")
                self.readouts.append(
                    nn.Sequential(o3.Linear(irreps_out, mlp), e3nn_nn.Activation(mlp, [torch.nn.functional.silu]), o3.Linear(mlp, o3.Irreps("0e")))
                )
            else:
                self.readouts.append(o3.Linear(irreps_out, o3.Irreps("0e")))
            self.irreps_A.append(self.interactions[-1].irreps_target)
            self.irreps_h.append(irreps_out)
            irreps_in = irreps_out

    def _apply(self, fn, *args, **kwargs):
        super()._apply(fn, *args, **kwargs)
        refresh_wigner_3j(self)  # exact Clebsch-Gordan coefficients after a dtype change
        return self

    @torch.no_grad()
    def set_avg_num_neighbors(self, value: float) -> None:
        """Set :math:`\\bar n`, the normalization of the neighbor sum (the training set's mean)."""
        if not value > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {value}")
        self.avg_num_neighbors.fill_(float(value))

    def features(self, graph: Graph) -> List[Tuple[Tensor, Tensor]]:
        """``(A, h)`` of every layer: atomic basis [N, irreps_A[t].dim] and updated node features [N, irreps_h[t].dim]."""
        return [(from_components(A, irreps), h) for (A, h), irreps in zip(self._run(graph)[1], self.irreps_A)]

    def _run(self, graph: Graph):
        node_attrs = torch.nn.functional.one_hot(graph.species, self.num_elements).to(graph.pos.dtype)  # [N, K]
        length = graph.edge_length
        edge_radial = self.radial_basis(length) * self.envelope(length).unsqueeze(-1)  # [E, num_bessel]
        edge_sh = self.spherical_harmonics(graph.edge_vec)  # [E, (l_max+1)^2]
        h = self.node_embedding(node_attrs)  # [N, C]
        # Neighbors as a CSR adjacency (rows: centers i); edge features in its order.
        N = graph.species.shape[0]
        j, i = graph.edge_index
        order = torch.argsort(i * N + j)
        rowptr = torch.zeros(N + 1, dtype=torch.long, device=i.device)
        rowptr[1:] = torch.cumsum(torch.bincount(i, minlength=N), dim=0)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": only its index arrays are used
            warnings.simplefilter("ignore", UserWarning)
            adjacency = torch.sparse_csr_tensor(
                rowptr, j[order], torch.ones_like(order, dtype=graph.pos.dtype), size=(N, N), check_invariants=False
            )
        edge_sh, edge_radial = edge_sh[order], edge_radial[order]  # [E, S], [E, num_bessel]
        energy = graph.pos.new_zeros(graph.species.shape[0])  # [N]
        features = []
        for interaction, product, readout in zip(self.interactions, self.products, self.readouts):
            A, s = interaction(h, node_attrs, adjacency, edge_sh, edge_radial, self.avg_num_neighbors)
            h = product(A, graph.species, s)  # [N, irreps_h.dim]
            energy = energy + readout(h).squeeze(-1)  # [N]
            features.append((A, h))  # A component-major [D, N, C]
        return energy, features

    def forward(self, graph: Graph) -> AtomicOutput:
        return AtomicOutput(energy=self._run(graph)[0])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_irreps={self.hidden_irreps}, num_interactions={self.num_interactions}, "
            f"cutoff={self.cutoff:g}, elements={self.elements})"
        )

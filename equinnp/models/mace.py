r"""MACE: higher-order equivariant message passing (Batatia, Kovács, Simm, Ortner,
Csányi, NeurIPS 2022, "MACE: Higher Order Equivariant Message Passing Neural
Networks for Fast and Accurate Force Fields"), an atomic cluster expansion
(Drautz 2019) with learned, message-passed one-particle bases.

Per layer t (paper eq. 8-13; blocks in ``equinnp.nn.mace_blocks``):

.. math::
    M^{(t)}_{i} = \frac{1}{\bar n}\, W \sum_j R^{(t)}(r_{ij}) \left(Y(\hat r_{ij}) \otimes U h^{(t)}_j\right)

    h^{(t+1)}_i = W' \sum_{\nu \le \nu_{max}} \mathcal{U}^{(\nu)} w^{(\nu)}_{z_i} (A^{(t)}_i)^{\otimes\nu}
                  \;[+\, s^{(t)}_i]

    E_i = \sum_t \mathcal{R}^{(t)}(h^{(t+1)}_i)

with :math:`Y` real spherical harmonics (component normalization) of the
edge direction, :math:`R` an MLP of the Bessel basis times the polynomial
envelope, :math:`\bar n` the average number of neighbors, readouts
:math:`\mathcal R` linear except the last (MLP with SiLU). The last layer keeps
only scalars. The element reference energies E0 and any scale/shift belong to
``Potential``.

Two layouts of the element-dependent connection :math:`\mathrm{FCTP}(\cdot, \delta_{z_i})`
(a linear map of the channels per irrep and element):

- layers t >= 1 are always residual (mace-torch's ``RealAgnosticResidualInteractionBlock``):
  :math:`A^{(t)}_i = M^{(t)}_i` and :math:`s^{(t)}_i = \mathrm{FCTP}(h^{(t)}_i, \delta_{z_i})`;
- the first layer, by default (``residual_first_layer=False``), is mace-torch's
  ``RealAgnosticInteractionBlock``: :math:`A^{(0)}_i = \mathrm{FCTP}(M^{(0)}_i, \delta_{z_i})`
  and no :math:`s^{(0)}`. This is the layout of mace-torch 0.3.16's ``MACE``
  class used as ``MACE(interaction_cls_first=RealAgnosticInteractionBlock,
  interaction_cls=RealAgnosticResidualInteractionBlock)``, and of the
  ``ScaleShiftMACE`` that ``mace_run_train --model MACE`` (its default model)
  builds. An atom without neighbors then has :math:`M = A = h = 0` in every
  layer and a network energy of exactly 0: its energy is exactly its E0 (plus
  any shift of ``Potential``).
- ``residual_first_layer=True`` makes the first layer residual as well
  (mace-torch's ``ScaleShiftMACE`` with ``interaction_cls_first=RealAgnosticResidualInteractionBlock``,
  which is what ``mace_run_train --model ScaleShiftMACE`` builds by default).
  :math:`s^{(0)}_i` depends on the element only, so an isolated atom gets a
  learned, element-dependent energy on top of E0. This was the only layout of
  equinnp 0.1.0; its saved files load with it (``legacy_hyperparameters``).

Both layouts match mace-torch number for number with its weights mapped
(``tests/test_mace.py``, ``tests/data/mace_golden*.pt``). Differences in how
the functions are evaluated and parametrized, none of which changes the
functions the model can represent:

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

Defaults. Every default hyperparameter is the default of mace-torch 0.3.16's
training script (``mace_run_train``, its argument parser; its names in
parentheses): ``cutoff`` 5 Å (``r_max``), ``num_bessel`` 8
(``num_radial_basis``), ``num_polynomial_cutoff`` 5 (``num_cutoff_basis``),
``max_ell`` 3, ``correlation`` 3, ``num_interactions`` 2, ``hidden_irreps``
``128x0e + 128x1o`` (its fallback when neither hidden irreps nor channels are
given), ``radial_mlp`` [64, 64, 64] (``radial_MLP``), ``readout_mlp`` 16
(``MLP_irreps=16x0e``), SiLU (``gate``), ``residual_first_layer=False``
(``--model MACE``), and ``avg_num_neighbors`` computed from the training set
(``compute_avg_num_neighbors``). The paper defines the architecture these
hyperparameters parametrize (eq. 8-13: Bessel radial basis with polynomial
envelope, radial MLP, symmetric contraction of correlation order ν, linear and
MLP readouts); the settings of its experiments are given there per dataset and
are not restated here. ``elements`` (H, C, N, O) is equinnp's choice for
organic molecules; the trainable Bessel frequencies are equinnp's (see above).

``avg_num_neighbors`` (:math:`\bar n`) is data: a buffer saved with the weights.
Left at None, the model refuses to run until it is set, by
``Potential.fit(dataset)`` (which calls :meth:`MACE.fit`: the training set's
mean number of neighbors within the cutoff, over atoms that have neighbors, as
mace-torch computes it) or by :meth:`MACE.set_avg_num_neighbors`. A number
given to the constructor is kept by ``fit``.

Shapes: ``Graph`` with N atoms, E edges → ``AtomicOutput.energy`` [N].
"""

from __future__ import annotations

import warnings
from typing import List, Optional, Sequence, Tuple

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import Tensor, nn

from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.nn import BesselRBF, PolynomialCutoff
from equinnp.nn.irreps import from_components, refresh_wigner_3j
from equinnp.nn.mace_blocks import AtomicBasis, ProductBasis, fully_connected

__all__ = ["MACE"]


class MACE(AtomisticModel):
    r"""MACE potential (see the module docstring for the equations, the two layouts
    and where each default comes from: all are mace-torch 0.3.16's training defaults).

    Parameters
    ----------
    cutoff : float
        Cutoff (Å) of the radial basis and the envelope.
    elements : sequence of int
        Atomic numbers the model accepts.
    hidden_irreps : str
        Irreps of the node features, one multiplicity for all (e.g.
        ``128x0e + 128x1o``; ``128x0e`` for invariant messages).
    max_ell : int
        Highest degree of the spherical harmonics.
    correlation : int
        Highest power ν of the product basis; body order ν + 1.
    num_interactions : int
        Number of layers.
    num_bessel : int
        Bessel functions of the radial basis.
    num_polynomial_cutoff : int
        Exponent p of the polynomial envelope.
    radial_mlp : list of int
        Hidden widths of the radial MLP.
    readout_mlp : int
        Width of the last layer's readout MLP (mace-torch: ``MLP_irreps=16x0e``).
    avg_num_neighbors : float or None
        Normalization :math:`\bar n` of the neighbor sum. None (default): fitted
        from data by :meth:`fit` (``Potential.fit``) or set with
        :meth:`set_avg_num_neighbors`; the model raises ``ValueError`` when run
        before. A number is used as it is (and kept by :meth:`fit`). The value
        in effect is the buffer ``avg_num_neighbors`` (saved with the weights).
    residual_first_layer : bool
        False (default, mace-torch's ``MACE``): the first layer applies the
        element-dependent map to its message and has no residual, so that an
        isolated atom's energy is its reference energy. True: the first layer
        is residual like the others (equinnp 0.1.0's only layout; mace-torch's
        ``ScaleShiftMACE`` with a residual first block). The parameters differ
        in the shape of ``interactions.0.skip_tp.weight`` only.
    charge_embedding, spin_embedding : bool
        Add the total charge / spin multiplicity of each system to the initial
        scalar node features (the C channels of the node embedding) (``equinnp.nn.TotalChargeSpinEmbedding``; not in the paper, off by
        default). The potential then requires ``data.charge`` / ``data.spin``.
    charge_head : bool
        Also predict partial charges from the last layer's scalar features [N, C] (``equinnp.nn.ChargeHead``;
        not in the paper, off by default): ``outputs`` then includes "charges". Pair
        it with ``uniform_charges`` or ``weighted_charges``.
    """

    paper = (
        "Batatia, Kovács, Simm, Ortner, Csányi, MACE: Higher Order Equivariant Message Passing "
        "Neural Networks for Fast and Accurate Force Fields, NeurIPS 2022"
    )
    # avg_num_neighbors given, so that tiny test models run without fitting; 1 (no normalization)
    # keeps their forces on small test molecules well above the round-off of finite differences.
    tabulatable = True
    tiny = dict(
        hidden_irreps="8x0e + 8x1o", max_ell=2, correlation=2, num_interactions=2, num_bessel=6, radial_mlp=[16, 16], avg_num_neighbors=1.0
    )
    #: Saved configs without ``residual_first_layer`` (equinnp 0.1.0) were trained with a residual first layer.
    legacy_hyperparameters = {"residual_first_layer": True}

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
        avg_num_neighbors: Optional[float] = None,
        residual_first_layer: bool = False,
        charge_embedding: bool = False,
        spin_embedding: bool = False,
        charge_head: bool = False,
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
        if avg_num_neighbors is not None and not avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be positive (or None, to be fitted), got {avg_num_neighbors}")
        C = channels.pop()
        E = self.num_elements
        self.hidden_irreps = hidden
        self.num_interactions = num_interactions
        self.residual_first_layer = bool(residual_first_layer)
        # NaN until fitted; ``_avg_num_neighbors_valid`` records that the buffer holds a
        # positive value, so that forward needs no device -> host read to check it.
        self.register_buffer("avg_num_neighbors", torch.tensor(float("nan") if avg_num_neighbors is None else float(avg_num_neighbors)))
        self._avg_num_neighbors_valid = avg_num_neighbors is not None

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
            target = irreps_A if t > 0 else (irreps_sh * C).sort().irreps.simplify()
            residual = t > 0 or self.residual_first_layer
            self.interactions.append(
                AtomicBasis(irreps_in, irreps_sh, target, irreps_out, E, num_bessel, list(radial_mlp), residual=residual)
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
        self.add_electronic_blocks(C, charge_embedding, spin_embedding, charge_head)

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
        self._avg_num_neighbors_valid = True

    def fit(self, statistics) -> dict:
        """Set :math:`\\bar n` from an ``equinnp.data.DatasetStatistics``, unless it was given.

        With ``avg_num_neighbors=None`` at construction: the mean number of
        neighbors within the cutoff over the atoms that have any
        (``statistics.avg_num_neighbors(cutoff)``); returns ``{"avg_num_neighbors": value}``.
        With a number given: keeps it and returns ``{}``.
        """
        if self.hyperparameters.get("avg_num_neighbors") is not None:
            return {}
        value = float(statistics.avg_num_neighbors(self.cutoff))
        self.set_avg_num_neighbors(value)
        return {"avg_num_neighbors": value}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if prefix + "avg_num_neighbors" in state_dict:
            self._avg_num_neighbors_valid = False  # checked (once) by the next forward

    def _check_avg_num_neighbors(self) -> None:
        if self._avg_num_neighbors_valid:
            return
        value = self.avg_num_neighbors
        if value.device.type != "meta" and bool(torch.isfinite(value) & (value > 0)):
            self._avg_num_neighbors_valid = True  # set by a load or written directly into the buffer
            return
        raise ValueError(
            "MACE's average number of neighbors (avg_num_neighbors) is not set: fit it to the training "
            "structures with pot.fit(dataset) (Potential.fit, or model.fit(DatasetStatistics(dataset))), "
            "or give it when building the model, build_potential('mace', avg_num_neighbors=...)"
        )

    def radial_network(self, r: Tensor) -> Tensor:
        """Every layer's radial MLP of the Bessel basis times the envelope, side by side:
        ``r`` [E] → [E, sum of the layers' weight counts] (what ``tabulate_radial`` tabulates).

        The MLPs are evaluated by :func:`equinnp.nn.mace_blocks.fully_connected`, whose SiLU
        admits forward-mode derivatives of every order (the table builder's); the numbers are
        those of ``radial_mlp`` (tested).
        """
        edge_radial = self.radial_basis(r) * self.envelope(r).unsqueeze(-1)  # [E, num_bessel]
        return torch.cat([fully_connected(block.radial_mlp, edge_radial) for block in self.interactions], dim=-1)

    def radial_modules(self) -> list:
        return [self.radial_basis, self.envelope] + [block.radial_mlp for block in self.interactions]

    def features(self, graph: Graph) -> List[Tuple[Tensor, Tensor]]:
        """``(A, h)`` of every layer: atomic basis [N, irreps_A[t].dim] and updated node features [N, irreps_h[t].dim]."""
        return [(from_components(A, irreps), h) for (A, h), irreps in zip(self._run(graph)[1], self.irreps_A)]

    def _run(self, graph: Graph):
        self._check_avg_num_neighbors()
        node_attrs = torch.nn.functional.one_hot(graph.species, self.num_elements).to(graph.pos.dtype)  # [N, K]
        length = graph.edge_length
        if self.uses_table():  # every layer's radial MLP output by the table (inference option)
            edge_radial = None
            radial_weights = list(self.radial_parts(length, [b.radial_mlp.hs[-1] for b in self.interactions]))
        else:
            edge_radial = self.radial_basis(length) * self.envelope(length).unsqueeze(-1)  # [E, num_bessel]
            radial_weights = [None] * len(self.interactions)
        edge_sh = self.spherical_harmonics(graph.edge_vec)  # [E, (l_max+1)^2]
        h = self.embed_totals(self.node_embedding(node_attrs), graph)  # [N, C]
        # Neighbors as a CSR adjacency (rows: centers i). Graph edges come sorted by
        # center, then neighbor: they are already in its order.
        N = graph.species.shape[0]
        j, i = graph.edge_index
        if not bool((i[1:] >= i[:-1]).all()):  # a graph built by hand
            order = torch.argsort(i, stable=True)
            i, j, edge_sh = i[order], j[order], edge_sh[order]
            edge_radial = None if edge_radial is None else edge_radial[order]
            radial_weights = [None if w is None else w[order] for w in radial_weights]
        rowptr = torch.zeros(N + 1, dtype=torch.long, device=i.device)
        rowptr[1:] = torch.cumsum(torch.bincount(i, minlength=N), dim=0)
        with warnings.catch_warnings():  # "sparse CSR support is in beta": only its index arrays are used
            warnings.simplefilter("ignore", UserWarning)
            adjacency = torch.sparse_csr_tensor(
                rowptr, j, torch.ones_like(j, dtype=graph.pos.dtype), size=(N, N), check_invariants=False
            )
        energy = graph.pos.new_zeros(graph.species.shape[0])  # [N]
        features = []
        for interaction, product, readout, weights in zip(self.interactions, self.products, self.readouts, radial_weights):
            A, s = interaction(h, node_attrs, adjacency, edge_sh, edge_radial, self.avg_num_neighbors, graph.species,
                               radial_weights=weights)
            h = product(A, graph.species, s)  # [N, irreps_h.dim]
            energy = energy + readout(h).squeeze(-1)  # [N]
            features.append((A, h))  # A component-major [D, N, C]
        return energy, features

    def forward(self, graph: Graph) -> AtomicOutput:
        energy, features = self._run(graph)
        return self.atomic_output(energy, features[-1][1])  # the last layer's h: C scalars [N, C]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(hidden_irreps={self.hidden_irreps}, num_interactions={self.num_interactions}, "
            f"residual_first_layer={self.residual_first_layer}, cutoff={self.cutoff:g}, elements={self.elements})"
        )
